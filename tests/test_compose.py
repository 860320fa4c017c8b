"""docker-compose.yml agrees with the code: the settings it sets exist, and its services wire up.

No Docker engine runs here, so the file is checked as data; when Debian's `docker-compose` is
installed (CI installs it), its own validator runs too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer.main
import yaml
from sqlalchemy.engine import make_url

from lotline.cli import app
from lotline.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
APP_SERVICES = ("api", "worker", "migrate")
PRODUCTION_NEEDS = ("database_url", "temporal_address", "smtp_host", "secret_key", "public_base_url")
# What the operator supplies when starting the stack (the file demands LOTLINE_SECRET_KEY).
OPERATOR_ENV = {"LOTLINE_SECRET_KEY": "a-long-random-production-secret-0123456789abcdef"}
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as data (YAML anchors and merge keys resolved)."""
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default} and ${VAR:?error}, resolved against env."""

    def resolve(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        have = env.get(name)
        if op in (":-", ":?"):
            if have:
                return have
            if op == ":?":
                raise AssertionError(f"compose would refuse to start: {arg}")
            return arg
        if op == "-":
            return arg if have is None else have
        return have or ""

    return INTERPOLATION.sub(resolve, value)


def lotline_env(service: dict) -> dict[str, str]:
    """The LOTLINE_* variables a service sets, as written in the file."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items() if k.startswith("LOTLINE_")}


def settings_from(service: dict, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a container of this service would read."""
    for name in list(os.environ):
        if name.startswith("LOTLINE_"):
            monkeypatch.delenv(name)
    for name, raw in lotline_env(service).items():
        monkeypatch.setenv(name, interpolate(raw, OPERATOR_ENV))
    return Settings(_env_file=None)


def test_every_lotline_variable_is_a_setting(compose: dict) -> None:
    fields = set(Settings.model_fields)
    for name in APP_SERVICES:
        unknown = [
            k for k in lotline_env(compose["services"][name]) if k[len("LOTLINE_") :].lower() not in fields
        ]
        assert not unknown, f"{name} sets variables that lotline.settings.Settings does not read: {unknown}"


def test_production_settings_are_set_in_api_and_worker(compose: dict) -> None:
    for name in ("api", "worker"):
        env = lotline_env(compose["services"][name])
        missing = [f for f in PRODUCTION_NEEDS if f"LOTLINE_{f.upper()}" not in env]
        assert not missing, f"{name} leaves {missing} at the embedded defaults"
    # The signing secret has no default in the file: compose refuses to start without one.
    assert ":?" in lotline_env(compose["services"]["api"])["LOTLINE_SECRET_KEY"]
    with pytest.raises(AssertionError, match="LOTLINE_SECRET_KEY"):
        interpolate(lotline_env(compose["services"]["api"])["LOTLINE_SECRET_KEY"], {})


def test_app_settings_point_at_the_services_in_the_file(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    postgres_env = services["postgres"]["environment"]
    for name in APP_SERVICES:
        settings = settings_from(services[name], monkeypatch)
        db = make_url(settings.database_url)
        assert db.drivername == "postgresql+asyncpg"
        assert db.host in services and services[db.host]["image"].startswith("postgres:16")
        assert db.database == postgres_env["POSTGRES_DB"]
        if name == "migrate":  # the schema owner: it migrates, then creates and grants the app role
            assert db.username == postgres_env["POSTGRES_USER"]
            assert db.password == interpolate(postgres_env["POSTGRES_PASSWORD"], OPERATOR_ENV)
        else:  # the role the migrate job grants: it owns nothing and cannot change the audit trail
            migrate = services["migrate"]
            command = migrate["command"]
            assert db.username == command[command.index("--app-role") + 1] != postgres_env["POSTGRES_USER"]
            assert db.password == interpolate(migrate["environment"]["POSTGRES_APP_PASSWORD"], OPERATOR_ENV)

        t_host, t_port = settings.temporal_address.rsplit(":", 1)
        assert services[t_host]["image"].startswith("temporalio/auto-setup:")
        assert t_port == "7233"

        assert services[settings.smtp_host]["image"].startswith("axllent/mailpit:")
        assert settings.smtp_port == 1025  # mailpit's SMTP port
        assert settings.secret_key == OPERATOR_ENV["LOTLINE_SECRET_KEY"]
        assert settings.public_base_url.startswith("http")
        # Production sends SMS through Twilio's cloud and serves no dev pages or demo data.
        assert not settings.twilio_base_url
        assert settings.seed_demo_data is False
        assert settings.dev_endpoints is False


def test_api_listens_where_its_port_and_healthcheck_say(
    compose: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = compose["services"]["api"]
    settings = settings_from(api, monkeypatch)
    assert settings.api_host == "0.0.0.0"
    assert f"{settings.api_port}:{settings.api_port}" in [str(p) for p in api["ports"]]
    check = " ".join(api["healthcheck"]["test"])
    assert f"http://127.0.0.1:{settings.api_port}/api/health" in check


def test_services_run_commands_the_cli_has(compose: dict) -> None:
    cli = typer.main.get_command(app)
    for name in APP_SERVICES:
        command = compose["services"][name]["command"]
        assert command[0] == "lotline", f"{name} does not run the lotline console script"
        group = cli
        words = command[1:]
        while words and not words[0].startswith("-"):
            word, words = words[0], words[1:]
            assert word in group.commands, f"{name} runs `{' '.join(command)}` but `{word}` is no command"
            group = group.commands[word]
        options = {opt for param in group.params for opt in param.opts}
        unknown = [w for w in words if w.startswith("-") and w not in options]
        assert not unknown, f"{name} runs `{' '.join(command)}` but {unknown} are no options of it"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("# ") and "FROM python:3.11-slim" in dockerfile
    assert "pip install ." in dockerfile


def test_temporal_runs_on_the_postgres_service(compose: dict) -> None:
    services = compose["services"]
    temporal = services["temporal"]["environment"]
    assert temporal["DB"] == "postgres12"
    assert temporal["POSTGRES_SEEDS"] in services
    assert temporal["POSTGRES_USER"] == services["postgres"]["environment"]["POSTGRES_USER"]
    assert services["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_dependencies_exist_and_wait_for_health_or_completion(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on must state a condition for each service"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on {target}, which the file does not define"
            condition = rule.get("condition")
            if condition == "service_healthy":
                test = services[target].get("healthcheck", {}).get("test")
                assert test, f"{name} waits for {target} to be healthy, but {target} has no healthcheck"
            else:
                assert condition == "service_completed_successfully", (
                    f"{name} starts as soon as {target} has started ({condition!r}); wait for health"
                )
                assert services[target].get("restart") == "no", f"{target} is a one-shot job"
    for name in ("postgres", "temporal", "mailpit", "api"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]


def test_docker_compose_validates_the_file() -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("Debian's docker-compose is not installed (.ci/run installs it); the YAML tests ran")
    env = {**os.environ, **OPERATOR_ENV}
    done = subprocess.run(
        [tool, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # ... and it refuses to start production without a signing secret.
    env.pop("LOTLINE_SECRET_KEY")
    refused = subprocess.run(
        [tool, "-f", str(COMPOSE), "config", "-q"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "LOTLINE_SECRET_KEY" in refused.stderr


def test_every_connection_the_stack_may_open_fits_max_connections(compose: dict, monkeypatch) -> None:
    from domain.db import MAX_OVERFLOW

    services = compose["services"]
    command = services["postgres"]["command"]
    max_connections = int(next(a.split("=", 1)[1] for a in command if a.startswith("max_connections=")))
    lotline = sum(
        settings_from(services[name], monkeypatch).db_pool_size + MAX_OVERFLOW for name in ("api", "worker")
    )
    temporal_env = services["temporal"]["environment"]
    # Temporal's container runs four services; counted as a pool pair each, to be safe.
    temporal = 4 * (int(temporal_env["SQL_MAX_CONNS"]) + int(temporal_env["SQL_VIS_MAX_CONNS"]))
    migrate, reserved = 1, 3  # the migrate job; PostgreSQL's superuser_reserved_connections
    assert lotline + temporal + migrate + reserved <= max_connections
