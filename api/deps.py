"""Dependencies as ``Annotated`` aliases: a session per request, the settings, and the caller.

Every ``/api`` route except health and the token endpoint depends on :func:`require_roles`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.security import Principal, read_token
from domain.audit import acting_as
from domain.enums import Role
from lotline.settings import Settings
from lotline.temporal import connect

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/auth/token", auto_error=False)


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


async def _settings(request: Request) -> Settings:
    # async: FastAPI runs a plain ``def`` dependency on a worker thread, a hop per request for nothing.
    return request.app.state.settings


SessionDep = Annotated[AsyncSession, Depends(_session)]
SettingsDep = Annotated[Settings, Depends(_settings)]


async def _principal(request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]) -> Principal:
    unauthorized = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=[{"field": "Authorization", "reason": "a valid bearer token is required"}],
        headers={"WWW-Authenticate": "Bearer"},
    )
    if not token:
        raise unauthorized
    try:
        return read_token(token, secret=request.app.state.settings.secret_key)
    except jwt.InvalidTokenError as exc:
        raise unauthorized from exc


CurrentUser = Annotated[Principal, Depends(_principal)]


async def _acting(user: CurrentUser) -> AsyncIterator[Principal]:
    """The caller is the actor of every audited change this request makes (reset when it ends)."""
    with acting_as(user.username):
        yield user


ALL_ROLES = frozenset(Role)


def require_roles(*roles: Role) -> Callable[..., Principal]:
    """A dependency that admits a signed-in user holding one of ``roles`` (or admin), else 403."""
    wanted = set(roles)

    async def _check(user: Annotated[Principal, Depends(_acting)]) -> Principal:
        if not user.has_any(wanted):
            names = ", ".join(sorted(r.value for r in wanted))
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=[{"field": "role", "reason": f"this needs one of the roles: {names}"}],
            )
        return user

    _check.required_roles = wanted  # type: ignore[attr-defined]  # read by the access-matrix test
    return _check


async def _temporal(request: Request) -> Client:
    """The app's Temporal client, connected on first use (the API may start before Temporal)."""
    state = request.app.state
    client: Client | None = getattr(state, "temporal", None)
    if client is None:
        try:
            client = await connect(state.settings, wait=5.0)
        except RuntimeError as exc:
            raise HTTPException(
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=[{"field": None, "reason": f"the workflow engine is not reachable: {exc}"}],
            ) from exc
        state.temporal = client
    return client


TemporalDep = Annotated[Client, Depends(_temporal)]


async def reauthenticate(session: AsyncSession, user: Principal, password: str) -> None:
    """Part 11 signing: the signer enters their password again; refuse the signature otherwise."""
    from domain.users import authenticate

    if not password or await authenticate(session, username=user.username, password=password) is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=[{"field": "password", "reason": "re-authentication failed: the password is wrong"}],
        )
