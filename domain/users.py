"""People who sign in: accounts with roles and argon2 password hashes.

Passwords are hashed with argon2id (argon2-cffi's :class:`PasswordHasher`, its recommended
parameters). :func:`authenticate` checks a username and password for sign-in and is the same check
a Part 11 signature uses to re-authenticate the signer (user id and password, DOMAIN.md).
Hashing is deliberately slow, so it runs on a worker thread and never stalls the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.enums import Role
from domain.errors import Conflict, DomainError, InvalidInput
from domain.models import User

MIN_PASSWORD_LENGTH = 8
MAX_USERNAME_LENGTH = 64  # the users.username column

# argon2-cffi's recommended parameters (RFC 9106). A stored hash made with other parameters is
# upgraded at the next sign-in.
_hasher = PasswordHasher()


class InactiveUser(DomainError):
    """The password was right but the account is deactivated: it may neither sign in nor sign."""

    status_code = 401


def hash_password(password: str, *, hasher: PasswordHasher | None = None) -> str:
    """An argon2id hash of the password, salted, in the PHC string format."""
    return (hasher or _hasher).hash(password)


def verify_password(*, password_hash: str, password: str) -> bool:
    """True when the password matches the stored hash; False for a mismatch or a damaged hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verified against when the username is unknown, so that a wrong username costs the same time
    # as a wrong password and response times do not reveal which usernames exist.
    return hash_password("not-a-password-of-anyone")


def parse_roles(roles: Iterable[str | Role]) -> list[Role]:
    """The roles as :class:`Role` members, in the given order without repeats; InvalidInput names `role`."""
    result: list[Role] = []
    for value in roles:
        try:
            role = Role(value.strip() if isinstance(value, str) else value)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise InvalidInput(f"unknown role {value!r}; known roles: {known}", field="role") from None
        if role not in result:
            result.append(role)
    if not result:
        raise InvalidInput("a user needs at least one role", field="role")
    return result


def _check_username(username: str) -> str:
    name = (username or "").strip()
    if not name:
        raise InvalidInput("username must not be empty", field="username")
    if len(name) > MAX_USERNAME_LENGTH or any(c.isspace() for c in name):
        raise InvalidInput(
            f"username must be at most {MAX_USERNAME_LENGTH} characters without spaces, got {username!r}",
            field="username",
        )
    return name


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters long", field="password"
        )


def _check_email(email: str | None) -> str | None:
    if email is None or not email.strip():
        return None
    value = email.strip()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in value):
        raise InvalidInput(f"not an e-mail address: {email!r}", field="email")
    return value


async def get_user(session: AsyncSession, *, username: str) -> User | None:
    """The user with this username, or None."""
    return await session.scalar(select(User).where(User.username == username))


async def list_users(session: AsyncSession) -> list[User]:
    """Every user, by username."""
    return list(await session.scalars(select(User).order_by(User.username)))


async def create_user(
    session: AsyncSession,
    *,
    username: str,
    full_name: str,
    roles: Iterable[str | Role],
    password: str,
    email: str | None = None,
    password_hasher: PasswordHasher | None = None,
) -> User:
    """Add a user with roles and a hashed password; Conflict if the username is taken.

    ``password_hasher`` overrides the standard argon2 parameters; only for passwords that are public
    anyway (the demo's), whose hash protects nothing and is upgraded at the first sign-in.
    """
    name = _check_username(username)
    role_list = parse_roles(roles)
    _check_password(password)
    mail = _check_email(email)
    if await get_user(session, username=name) is not None:
        raise Conflict(f"user {name!r} already exists", field="username")
    user = User(
        username=name,
        full_name=(full_name or "").strip() or name,
        email=mail,
        password_hash=await asyncio.to_thread(hash_password, password, hasher=password_hasher),
        roles=[r.value for r in role_list],
        active=True,
    )
    try:
        # A savepoint, so a concurrent insert of the same name leaves the caller's transaction usable.
        async with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:
        raise Conflict(f"user {name!r} already exists", field="username") from exc
    return user


async def set_active(session: AsyncSession, *, username: str, active: bool) -> User | None:
    """Activate or deactivate a user (users are never deleted: signatures refer to them); None if unknown."""
    user = await get_user(session, username=username)
    if user is not None:
        user.active = active
        await session.flush()
    return user


async def authenticate(session: AsyncSession, *, username: str, password: str) -> User | None:
    """The user when the username and password match, else None; InactiveUser for a deactivated account.

    The account state is revealed only to someone who knows the password. A hash made with older
    parameters is replaced by one with the current parameters (the caller commits).
    """
    user = await get_user(session, username=(username or "").strip())
    stored = user.password_hash if user is not None else await asyncio.to_thread(_dummy_hash)
    ok = await asyncio.to_thread(verify_password, password_hash=stored, password=password or "")
    if user is None or not ok:
        return None
    if not user.active:
        raise InactiveUser(f"user {user.username!r} is deactivated", field="username")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = await asyncio.to_thread(hash_password, password)
        await session.flush()
    return user
