"""Users: argon2 hashes, roles, unique usernames, sign-in checks that reveal nothing, hash upgrades."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from sqlalchemy import func, select

from domain.enums import Role
from domain.errors import Conflict, InvalidInput
from domain.models import User
from domain.users import (
    InactiveUser,
    authenticate,
    create_user,
    hash_password,
    set_active,
    verify_password,
)

# Fast argon2 parameters where the cost does not matter to the test (argon2 still runs for real).
CHEAP = PasswordHasher.from_parameters(CHEAPEST)


async def _add(s, username="wang", password="correct horse", roles=("qa",), **kw):
    return await create_user(
        s,
        username=username,
        full_name="王芳",
        roles=list(roles),
        password=password,
        password_hasher=CHEAP,
        **kw,
    )


async def _count(store) -> int:
    async with store.sessions() as s:
        return await s.scalar(select(func.count()).select_from(User))


async def test_a_user_is_stored_with_roles_and_an_argon2id_hash_not_the_password(store):
    async with store.sessions() as s, s.begin():
        await create_user(
            s,
            username="li.jing",
            full_name="李静",
            roles=["qa", Role.releaser, "qa"],
            password="s3cret-pass",
            email="li.jing@example.org",
        )
    async with store.sessions() as s:
        user = await s.scalar(select(User).where(User.username == "li.jing"))
        assert user is not None and user.active
        assert user.full_name == "李静" and user.email == "li.jing@example.org"
        assert user.roles == ["qa", "releaser"]  # repeats dropped, order kept
        assert user.password_hash.startswith("$argon2id$") and "s3cret-pass" not in user.password_hash
        assert verify_password(password_hash=user.password_hash, password="s3cret-pass")
        assert not verify_password(password_hash=user.password_hash, password="s3cret-pasS")


async def test_a_taken_username_is_a_conflict_and_adds_nobody(store):
    async with store.sessions() as s, s.begin():
        await _add(s)
    async with store.sessions() as s, s.begin():
        with pytest.raises(Conflict) as err:
            await _add(s, roles=("admin",))
        assert err.value.field == "username" and "already exists" in err.value.reason
    assert await _count(store) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"roles": ("qa", "boss")}, "role"),
        ({"roles": ()}, "role"),
        ({"password": "short7!"}, "password"),
        ({"username": "  "}, "username"),
        ({"username": "two words"}, "username"),
        ({"email": "not-an-address"}, "email"),
    ],
)
async def test_bad_input_names_the_field_and_adds_nobody(store, kwargs, field):
    async with store.sessions() as s, s.begin():
        with pytest.raises(InvalidInput) as err:
            await _add(s, **kwargs)
    assert err.value.field == field
    if field == "role" and kwargs["roles"]:
        assert "boss" in err.value.reason and "qa_manager" in err.value.reason  # says what is allowed
    assert await _count(store) == 0


async def test_authenticate_returns_the_user_only_for_the_right_password(store):
    async with store.sessions() as s, s.begin():
        await _add(s, username="zhao", password="right password")
    async with store.sessions() as s, s.begin():
        user = await authenticate(s, username="zhao", password="right password")
        assert user is not None and user.username == "zhao"
        assert await authenticate(s, username="zhao", password="wrong password") is None
        assert await authenticate(s, username="zhao", password="") is None
        assert await authenticate(s, username="nobody", password="right password") is None


async def test_a_deactivated_user_is_refused_but_only_told_so_with_the_right_password(store):
    async with store.sessions() as s, s.begin():
        await _add(s, username="chen", password="right password")
        await set_active(s, username="chen", active=False)
    async with store.sessions() as s, s.begin():
        with pytest.raises(InactiveUser) as err:
            await authenticate(s, username="chen", password="right password")
        assert err.value.status_code == 401 and err.value.field == "username"
        assert await authenticate(s, username="chen", password="guess") is None
        await set_active(s, username="chen", active=True)
        assert await authenticate(s, username="chen", password="right password") is not None


async def test_a_hash_with_old_parameters_is_upgraded_at_sign_in(store):
    standard = PasswordHasher()
    async with store.sessions() as s, s.begin():
        await _add(s, username="liu", password="right password")  # cheap parameters
    async with store.sessions() as s, s.begin():
        old = (await s.scalar(select(User).where(User.username == "liu"))).password_hash
        assert standard.check_needs_rehash(old)
        assert await authenticate(s, username="liu", password="right password") is not None
    async with store.sessions() as s, s.begin():
        new = (await s.scalar(select(User).where(User.username == "liu"))).password_hash
        assert new != old and not standard.check_needs_rehash(new)
        assert await authenticate(s, username="liu", password="right password") is not None
        # A hash with the current parameters is left alone.
        assert (await s.scalar(select(User).where(User.username == "liu"))).password_hash == new


def test_a_damaged_hash_never_verifies():
    good = hash_password("right password", hasher=CHEAP)
    assert verify_password(password_hash=good, password="right password")
    for damaged in ("", "plain text", good[:-4], "$argon2id$v=19$m=8,t=1,p=1$broken"):
        assert not verify_password(password_hash=damaged, password="right password")
