"""Operator accounts, password hashing, sign-in (throttled) and sessions. Service functions: session first,
never commit (the request handler or CLI command commits once).

Passwords are hashed with scrypt (stdlib `hashlib.scrypt`, memory-hard, salted per password). A sign-in
failure says the same thing whether the username or the password was wrong, and costs the same time (an
unknown username is checked against a dummy hash). Failed attempts are counted per username as typed,
existing or not, so the lockout reveals nothing about which accounts exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from monitor.db import utcnow
from monitor.settings import Settings
from monitor.ui.models import LoginAttempt, Operator, OperatorSession

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024
# scrypt cost: 2**14 * 8 * 128 bytes = 16 MiB and ~50 ms per hash here; the parameters are stored with each
# hash, so raising them later only affects new passwords.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SALT_BYTES, _HASH_BYTES = 16, 32


class AccountError(ValueError):
    """Bad input for an account (which field, why)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class SignInRefused(Exception):
    """The sign-in failed. The message never says whether the username exists."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=_HASH_BYTES, maxmem=64 * 1024 * 1024)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Checked when the username is unknown, so that a wrong username takes as long as a wrong password.
_DUMMY_HASH = hash_password("not a real password", salt=b"\0" * _SALT_BYTES)


def check_username(username: str) -> str:
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise AccountError("username", "1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or "
                                       "digit")
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError("password", f"at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError("password", f"at most {MAX_PASSWORD_CHARS} characters")
    return password


def get_operator(session: Session, username: str) -> Operator | None:
    return session.scalars(select(Operator).where(Operator.username == username)).first()


def create_operator(session: Session, username: str, password: str) -> Operator:
    """A new operator account (refused, changing nothing, when the name is taken or the input is bad)."""
    check_username(username)
    check_password(password)
    if get_operator(session, username) is not None:
        raise AccountError("username", f"an operator named {username!r} already exists")
    now = utcnow()
    operator = Operator(username=username, password_hash=hash_password(password), created_at=now, updated_at=now)
    session.add(operator)
    session.flush()
    return operator


def set_password(session: Session, username: str, password: str) -> Operator:
    """A new password; every open session of the operator ends."""
    check_password(password)
    operator = get_operator(session, username)
    if operator is None:
        raise AccountError("username", f"no operator named {username!r}")
    operator.password_hash, operator.updated_at = hash_password(password), utcnow()
    session.execute(delete(OperatorSession).where(OperatorSession.operator_id == operator.id))
    session.flush()
    return operator


def list_operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.username)))


def set_disabled(session: Session, username: str, disabled: bool) -> Operator:
    operator = get_operator(session, username)
    if operator is None:
        raise AccountError("username", f"no operator named {username!r}")
    operator.disabled_at = utcnow() if disabled else None
    operator.updated_at = utcnow()
    if disabled:
        session.execute(delete(OperatorSession).where(OperatorSession.operator_id == operator.id))
    session.flush()
    return operator


def _recent_failures(session: Session, username: str, since: datetime, *, besides: int) -> int:
    """Failures of `username` since `since` (and since its last success), not counting attempt `besides`."""
    last_ok = session.scalar(select(func.max(LoginAttempt.at)).where(
        LoginAttempt.username == username, LoginAttempt.succeeded.is_(True), LoginAttempt.at >= since,
        LoginAttempt.id != besides))
    start = max(since, last_ok) if last_ok is not None else since
    return int(session.scalar(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.username == username, LoginAttempt.succeeded.is_(False), LoginAttempt.at >= start,
        LoginAttempt.id != besides)) or 0)


def _lock_key(username: str) -> int:
    """A signed 64-bit advisory-lock key for one username (as typed)."""
    digest = hashlib.sha256(f"driftloop.sign-in:{username}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _serialise_attempts(session: Session, username: str) -> None:
    """Attempts on one username take turns, so the check and the count are one step (no lockout race).

    Postgres: a transaction-scoped advisory lock on the username (held until the caller commits, also for
    usernames that do not exist). SQLite serialises writers: the attempt row is written before anything is
    read (the caller's `authenticate` does that), so a parallel attempt waits for this transaction's commit
    at its own first write and then counts this one."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_lock_key(username))))


def authenticate(session: Session, username: str, password: str, *, settings: Settings,
                 remote: str | None = None) -> Operator:
    """The operator, or `SignInRefused` with a message that does not say which part was wrong.

    Every attempt is recorded (the caller commits, also on failure, so that failures count). The attempt is
    written first and counted under a per-username lock, so parallel guesses cannot all pass the check before
    any of them is counted: at most `ui_login_max_failures` are ever evaluated per window."""
    name = username.strip()[:64]
    now = utcnow()
    window = timedelta(minutes=settings.ui_login_lockout_minutes)
    _serialise_attempts(session, name)
    attempt = LoginAttempt(username=name, remote=(remote or "")[:64] or None, succeeded=False, at=now)
    session.add(attempt)
    session.flush()  # on SQLite this write takes the database's one writer lock
    if _recent_failures(session, name, now - window, besides=attempt.id) >= settings.ui_login_max_failures:
        session.delete(attempt)  # a refused attempt was not evaluated, so it does not extend the lockout
        session.flush()
        raise SignInRefused(f"too many failed sign-ins for this username; wait {settings.ui_login_lockout_minutes:g} "
                            "minutes and try again")
    operator = get_operator(session, name)
    ok = verify_password(password, operator.password_hash if operator is not None else _DUMMY_HASH)
    ok = ok and operator is not None and operator.disabled_at is None
    attempt.succeeded = ok
    # Old attempts are of no use to the throttle; keep the table small.
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - max(window, timedelta(days=1))))
    session.flush()
    if not ok or operator is None:
        raise SignInRefused("wrong username or password")
    operator.last_login_at = now
    return operator


@dataclass(frozen=True)
class SignedIn:
    """A session that was just started: the token goes into the cookie (and is never stored)."""

    token: str
    session_id: int
    csrf_token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(session: Session, operator: Operator, *, settings: Settings) -> SignedIn:
    now = utcnow()
    session.execute(delete(OperatorSession).where(OperatorSession.operator_id == operator.id,
                                                  OperatorSession.expires_at < now))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    row = OperatorSession(token_hash=token_hash(token), operator_id=operator.id, csrf_token=csrf, created_at=now,
                          expires_at=now + timedelta(hours=settings.ui_session_hours))
    session.add(row)
    session.flush()
    return SignedIn(token, row.id, csrf, row.expires_at)


@dataclass(frozen=True)
class CurrentOperator:
    """Who is signed in on this request, and the CSRF token their forms must carry."""

    operator_id: int
    username: str
    session_id: int
    csrf_token: str


def resolve_session(session: Session, token: str) -> CurrentOperator | None:
    """The signed-in operator of a session token, or None when unknown, expired or disabled."""
    row = session.execute(
        select(OperatorSession, Operator).join(Operator, Operator.id == OperatorSession.operator_id)
        .where(OperatorSession.token_hash == token_hash(token))).first()
    if row is None:
        return None
    ui_session, operator = row
    if ui_session.expires_at <= utcnow() or operator.disabled_at is not None:
        return None
    return CurrentOperator(operator.id, operator.username, ui_session.id, ui_session.csrf_token)


def end_session(session: Session, session_id: int) -> None:
    session.execute(delete(OperatorSession).where(OperatorSession.id == session_id))
