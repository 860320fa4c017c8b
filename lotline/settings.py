"""One settings object for every process, read from environment variables prefixed ``LOTLINE_``.

The defaults run the embedded stack (``make run``) with no set-up: a SQLite file and the Temporal
dev server under ``var/``, a local SMTP server and a Twilio-compatible endpoint on loopback.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

VAR_DIR = Path("var")


class Settings(BaseSettings):
    """Everything a Lotline process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="LOTLINE_", env_file=".env", extra="ignore")

    # Store
    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{VAR_DIR / 'lotline.db'}",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///file or postgresql+asyncpg://...",
    )
    db_pool_size: int = Field(
        default=32,
        ge=1,  # 0 would mean no limit at all to SQLAlchemy
        description="PostgreSQL connections each API or worker process keeps open (up to 8 more under a "
        "burst; a large trace reads on 3 at once when 2 are free); their sum over all processes must fit "
        "the server's max_connections",
    )

    # Temporal
    temporal_address: str = Field(default="127.0.0.1:7233", description="host:port of the Temporal frontend")
    temporal_namespace: str = "default"
    temporal_task_queue: str = "lotline"
    temporal_ui_port: int = 8233

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_base_url: str = Field(
        default="http://127.0.0.1:8000", description="base of links sent to consignees"
    )
    secret_key: str = Field(
        default="dev-only-secret-change-me-in-production-0123456789",
        description="signs access tokens and acknowledgement links",
    )
    access_token_minutes: int = 60

    # E-mail
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "Lotline Recalls <recalls@lotline.local>"
    email_rate_per_second: float = Field(default=0.0, ge=0, description="messages per second; 0 = unlimited")

    # SMS (Twilio, or the local Twilio-compatible endpoint when twilio_base_url is set)
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: str = "dev-twilio-auth-token"
    twilio_from_number: str = "+15005550006"
    twilio_base_url: str | None = Field(
        default="http://127.0.0.1:8000/dev/twilio",
        description="where the twilio SDK is pointed; unset for Twilio's cloud",
    )
    sms_concurrency: int = Field(default=32, ge=1, description="SMS requests in flight at once")
    sms_rate_per_second: float = Field(default=0.0, ge=0, description="messages per second; 0 = unlimited")
    sms_429_retries: int = Field(default=3, ge=0, description="times a request answered 429 is retried")

    # Policy defaults
    default_jurisdiction: str = "CN"
    default_language: str = "zh-CN"
    trace_max_depth: int = Field(default=200, description="genealogy levels a trace follows at most")

    # Operations
    loop_stall_warn_ms: int = Field(
        default=250, ge=0, description="warn, with the stack, when the event loop stalls longer; 0 = off"
    )

    # Embedded stack
    var_dir: Path = VAR_DIR
    seed_demo_data: bool = True
    dev_endpoints: bool = Field(default=True, description="serve /dev/twilio, /dev/phone, /dev/mailbox")

    # Who the notices say they come from
    manufacturer_name: str = "Lotline Demo Medical Devices Co., Ltd."
    manufacturer_address: str = "Shanghai, China"
    recall_contact_name: str = "Recall coordinator"
    recall_contact_email: str = "recalls@lotline.local"
    recall_contact_phone: str = "+862100000000"
    notice_page_size: int = Field(default=200, ge=1, description="notices sent per batch in a sending round")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()


def store_engine(settings: Settings) -> AsyncEngine:
    """The engine a long-running process (the API, the worker) opens on the store, its pool sized by
    ``db_pool_size``."""
    from domain.db import make_engine  # here: reading the settings needs no database driver

    return make_engine(settings.database_url, pool_size=settings.db_pool_size)
