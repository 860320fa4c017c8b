"""Sign-in (OAuth2 password flow) and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.deps import SessionDep, SettingsDep, require_roles
from api.security import Principal, issue_token
from domain.enums import Role
from domain.users import InactiveUser, authenticate

router = APIRouter(prefix="/api/auth", tags=["auth"])

_KNOWN_ROLES = {r.value for r in Role}

# Any signed-in user, whatever their role.
SignedIn = Annotated[Principal, Depends(require_roles(*Role))]


class TokenPublic(BaseModel):
    """A bearer token and how many seconds it stays valid."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int


class MePublic(BaseModel):
    """The signed-in user."""

    username: str
    full_name: str
    roles: list[Role]


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=[{"field": "username", "reason": reason}],
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.post("/token", response_model=TokenPublic)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep
) -> TokenPublic:
    """Exchange a username and password for a bearer token (OAuth2 password flow)."""
    try:
        user = await authenticate(session, username=form.username, password=form.password)
    except InactiveUser as exc:
        raise _unauthorized("this account is deactivated; ask an administrator") from exc
    if user is None:
        raise _unauthorized("wrong username or password")
    await session.commit()  # keeps a password hash upgraded to the current parameters
    principal = Principal(
        username=user.username,
        full_name=user.full_name,
        roles=[Role(r) for r in user.roles if r in _KNOWN_ROLES],  # ignore roles retired since
    )
    minutes = settings.access_token_minutes
    return TokenPublic(
        access_token=issue_token(principal, secret=settings.secret_key, minutes=minutes),
        expires_in=minutes * 60,
    )


@router.get("/me", response_model=MePublic)
async def me(user: SignedIn) -> MePublic:
    """Who the bearer token belongs to."""
    return MePublic(username=user.username, full_name=user.full_name, roles=user.roles)
