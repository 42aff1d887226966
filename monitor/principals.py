"""Who is authenticated behind a recorded action (the audit log's principal), as opposed to the free-text
`actor` label a caller may send.

An admin API key may say `{"actor": "alice"}`; the audit log must still show that the decision came through
that key, not from the operator alice signed in to the UI. So every audited action stores two things: the
label the caller chose (`actor`, shown as given) and the principal this process authenticated, written by
the server from the credential it checked. Stored form (one short string, parsed back for display):

- `api-key:<id>:<name>`  a project API key (its row id and name; never the key or its hash)
- `operator:<username>`  an operator signed in to the UI
- `cli:<os user>`        a command run on the server (whoever can run it holds the database credentials)
- `system:<component>`   the service itself (a retraining job registering its result, the model server)
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Literal

Kind = Literal["api-key", "operator", "cli", "system"]
KINDS: tuple[Kind, ...] = ("api-key", "operator", "cli", "system")
MAX_CHARS = 256


@dataclass(frozen=True)
class Principal:
    kind: Kind
    name: str
    key_id: int | None = None  # api-key only

    def __str__(self) -> str:
        if self.kind == "api-key":
            return f"api-key:{self.key_id}:{self.name}"[:MAX_CHARS]
        return f"{self.kind}:{self.name}"[:MAX_CHARS]

    def describe(self) -> str:
        """For people: `API key #3 "ci-bot"`, `operator alice`, `CLI user root`, `system retrain-job`."""
        if self.kind == "api-key":
            return f'API key #{self.key_id} "{self.name}"'
        return {"operator": "operator", "cli": "CLI user", "system": "system"}[self.kind] + f" {self.name}"

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, "key_id": self.key_id, "text": self.describe()}


def api_key(key_id: int, name: str) -> Principal:
    return Principal("api-key", name, key_id)


def operator(username: str) -> Principal:
    return Principal("operator", username)


def cli_user() -> Principal:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = "unknown"
    return Principal("cli", user)


def system(component: str) -> Principal:
    return Principal("system", component)


def parse(stored: str | None) -> Principal | None:
    """The principal of a stored string; None for rows written before principals were recorded."""
    if not stored:
        return None
    kind, _, rest = stored.partition(":")
    if kind == "api-key":
        key_id, _, name = rest.partition(":")
        return Principal("api-key", name, int(key_id) if key_id.isdigit() else None)
    if kind in KINDS:
        return Principal(kind, rest)
    return Principal("system", stored)


def view(stored: str | None) -> dict[str, object] | None:
    """The API/CLI view of a stored principal (None: not recorded, an entry older than this column)."""
    p = parse(stored)
    return p.as_dict() if p is not None else None
