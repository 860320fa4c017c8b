"""Bearer tokens (JWT, HS256, signed with the settings' secret) and the role check every route uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from pydantic import BaseModel

from domain.enums import Role

ALGORITHM = "HS256"
AUDIENCE = "lotline-api"


class Principal(BaseModel):
    """Who is calling: the user a token was issued to, and their roles."""

    username: str
    full_name: str = ""
    roles: list[Role] = []

    def has_any(self, roles: set[Role]) -> bool:
        """True when the user holds one of the roles (admin holds all)."""
        return Role.admin in self.roles or bool(roles.intersection(self.roles))


def issue_token(principal: Principal, *, secret: str, minutes: int) -> str:
    """A signed access token for the principal, valid for ``minutes``."""
    now = datetime.now(UTC)
    claims = {
        "sub": principal.username,
        "name": principal.full_name,
        "roles": [r.value for r in principal.roles],
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(token: str, *, secret: str) -> Principal:
    """The principal a token names; jwt.InvalidTokenError when forged, expired or malformed."""
    claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=AUDIENCE)
    return Principal(username=claims["sub"], full_name=claims.get("name", ""), roles=claims.get("roles", []))
