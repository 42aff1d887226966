"""Operator accounts on both backends: hashing, bad input, sign-in that leaks nothing, the lockout, sessions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.settings import Settings
from monitor.ui.accounts import (
    AccountError,
    SignInRefused,
    authenticate,
    create_operator,
    end_session,
    hash_password,
    resolve_session,
    set_disabled,
    set_password,
    start_session,
    verify_password,
)
from monitor.ui.models import LoginAttempt, Operator, OperatorSession
from tests.support.factories import unique_slug
from tests.support.ui_seed import PASSWORD


def test_password_hashes_are_salted_and_verify_only_the_right_password() -> None:
    a, b = hash_password(PASSWORD), hash_password(PASSWORD)
    assert a != b and a.startswith("scrypt$") and PASSWORD not in a
    assert verify_password(PASSWORD, a) and verify_password(PASSWORD, b)
    assert not verify_password(PASSWORD + "!", a)
    assert not verify_password(PASSWORD, "md5$whatever") and not verify_password(PASSWORD, "garbage")


@pytest.mark.parametrize(("username", "password", "field"), [
    ("Alice", PASSWORD, "username"), ("a b", PASSWORD, "username"), ("", PASSWORD, "username"),
    ("x" * 65, PASSWORD, "username"), ("alice", "short", "password"), ("alice", "p" * 1025, "password"),
])
def test_bad_account_input_names_the_field_and_creates_nothing(session: Session, username: str, password: str,
                                                               field: str) -> None:
    before = session.scalar(select(func.count()).select_from(Operator))
    with pytest.raises(AccountError) as caught:
        create_operator(session, username, password)
    assert caught.value.field == field
    assert session.scalar(select(func.count()).select_from(Operator)) == before


def test_duplicate_username_is_refused(session: Session) -> None:
    name = unique_slug("op")
    create_operator(session, name, PASSWORD)
    with pytest.raises(AccountError, match="already exists"):
        create_operator(session, name, "another password 123")
    assert verify_password(PASSWORD, session.scalars(select(Operator).where(Operator.username == name)).one()
                           .password_hash)


def test_sign_in_failure_does_not_say_which_part_was_wrong(session: Session, settings: Settings) -> None:
    name = unique_slug("op")
    create_operator(session, name, PASSWORD)
    with pytest.raises(SignInRefused) as wrong_password:
        authenticate(session, name, "not the password", settings=settings)
    with pytest.raises(SignInRefused) as unknown_user:
        authenticate(session, unique_slug("nobody"), PASSWORD, settings=settings)
    assert str(wrong_password.value) == str(unknown_user.value) == "wrong username or password"
    assert authenticate(session, name, PASSWORD, settings=settings).username == name


def test_lockout_after_failures_counts_unknown_usernames_too(session: Session, settings: Settings) -> None:
    assert settings.ui_login_max_failures == 3
    name, ghost = unique_slug("op"), unique_slug("ghost")
    create_operator(session, name, PASSWORD)
    for who in (name, ghost):
        for _ in range(3):
            with pytest.raises(SignInRefused, match="wrong username or password"):
                authenticate(session, who, "nope nope nope", settings=settings)
        # Locked: even the right password is refused now, and an unknown name looks exactly the same.
        with pytest.raises(SignInRefused, match="too many failed sign-ins") as locked:
            authenticate(session, who, PASSWORD, settings=settings)
        assert name not in str(locked.value) and ghost not in str(locked.value)


def test_a_success_resets_the_failure_count(session: Session, settings: Settings) -> None:
    name = unique_slug("op")
    create_operator(session, name, PASSWORD)
    for _ in range(2):
        with pytest.raises(SignInRefused):
            authenticate(session, name, "nope nope nope", settings=settings)
    authenticate(session, name, PASSWORD, settings=settings)
    for _ in range(2):
        with pytest.raises(SignInRefused, match="wrong username"):
            authenticate(session, name, "nope nope nope", settings=settings)
    assert authenticate(session, name, PASSWORD, settings=settings).username == name


def test_sessions_resolve_expire_end_and_die_with_password_change_or_disable(session: Session,
                                                                             settings: Settings) -> None:
    name = unique_slug("op")
    op = create_operator(session, name, PASSWORD)
    first = start_session(session, op, settings=settings)
    current = resolve_session(session, first.token)
    assert current is not None and current.username == name and current.csrf_token == first.csrf_token
    assert resolve_session(session, first.token + "x") is None
    # Only a hash of the token is stored.
    assert session.scalar(select(func.count()).select_from(OperatorSession)
                          .where(OperatorSession.token_hash == first.token)) == 0

    row = session.get(OperatorSession, first.session_id)
    assert row is not None
    row.expires_at = row.created_at - timedelta(seconds=1)
    session.flush()
    assert resolve_session(session, first.token) is None

    second = start_session(session, op, settings=settings)
    end_session(session, second.session_id)
    assert resolve_session(session, second.token) is None

    third = start_session(session, op, settings=settings)
    set_password(session, name, "a brand new password")
    assert resolve_session(session, third.token) is None

    fourth = start_session(session, op, settings=settings)
    set_disabled(session, name, True)
    assert resolve_session(session, fourth.token) is None
    with pytest.raises(SignInRefused, match="wrong username or password"):
        authenticate(session, name, "a brand new password", settings=settings)
    set_disabled(session, name, False)
    assert authenticate(session, name, "a brand new password", settings=settings).username == name


@pytest.mark.parametrize("engine_fixture", ["pg_engine", "sqlite_engine"])
def test_parallel_guesses_cannot_race_the_lockout(engine_fixture: str, request: pytest.FixtureRequest) -> None:
    """Issue #18 finding 3: 20 guesses at once against a limit of 5 (each its own connection and
    transaction, committed as the sign-in route does) - only 5 are evaluated, and the right password
    afterwards is refused. Before the fix the count was read before any parallel attempt was written, so
    every guess was evaluated."""
    engine: Engine = request.getfixturevalue(engine_fixture)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    settings = Settings(database_url=str(engine.url), ui_login_max_failures=5)
    name = unique_slug("raced")
    with factory() as s:
        create_operator(s, name, PASSWORD)
        s.commit()
    barrier = threading.Barrier(20)

    def guess(i: int) -> str:
        with factory() as s:
            barrier.wait(timeout=30)
            try:
                authenticate(s, name, f"wrong guess number {i}", settings=settings)
            except SignInRefused as exc:
                s.commit()
                return str(exc)
            finally:
                s.rollback()
            return "signed in"

    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            outcomes = list(pool.map(guess, range(20)))
        evaluated = [o for o in outcomes if o == "wrong username or password"]
        assert len(evaluated) == 5, outcomes
        assert all(o.startswith("too many failed sign-ins") for o in outcomes if o not in evaluated)
        with factory() as s:
            assert s.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.username == name)) == 5
            with pytest.raises(SignInRefused, match="too many failed sign-ins"):
                authenticate(s, name, PASSWORD, settings=settings)
            s.commit()
    finally:
        with factory() as s:
            s.execute(delete(LoginAttempt).where(LoginAttempt.username == name))
            s.execute(delete(Operator).where(Operator.username == name))
            s.commit()
