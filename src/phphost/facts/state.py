"""What phphost manages on this host: recorded at the end of every apply, read
by plan (to find what the spec no longer has) and destroy."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from phphost import layout
from phphost.errors import FactError
from phphost.files import read_text
from phphost.spec.model import Model
from phphost.spec.snapshot import load_model


@dataclass(frozen=True)
class State:
    pools: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    users: tuple[str, ...] = ()      # users phphost created (pool runtime users, new tenants)
    pool_users: tuple[str, ...] = ()  # runtime users of the pools in the last applied spec
    groups: tuple[str, ...] = ()     # groups phphost created
    homes: tuple[str, ...] = ()      # tenant homes of the last applied spec
    files: tuple[str, ...] = ()      # every file phphost wrote

    def to_json(self) -> dict[str, list[str]]:
        return {k: sorted(getattr(self, k)) for k in State.__dataclass_fields__}


def parse_state(text: str | None, path: str = layout.STATE_FILE) -> State:
    if not text:
        return State()
    try:
        raw = json.loads(text)
        return State(**{k: tuple(raw.get(k, ())) for k in State.__dataclass_fields__})
    except (ValueError, TypeError) as err:
        raise FactError(
            f"{path}: cannot parse phphost's state file ({err}). Restore it from backup or "
            "remove it (phphost then manages only what the spec names)"
        ) from err


def read_state(path: str = layout.STATE_FILE) -> State:
    return parse_state(read_text(path), path)


@dataclass
class StateBuilder:
    """Accumulates the next State while planning."""

    pools: set[str] = field(default_factory=set)
    sites: set[str] = field(default_factory=set)
    users: set[str] = field(default_factory=set)
    pool_users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    homes: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)

    def build(self) -> State:
        return State(*(tuple(sorted(getattr(self, k))) for k in State.__dataclass_fields__))


def read_applied(path: str = layout.APPLIED_FILE) -> Model | None:
    """The model the last apply brought about (None: no record, e.g. a host applied
    by a phphost before 0.x kept one, or nothing applied yet)."""
    text = read_text(path)
    if text is None:
        return None
    try:
        return load_model(text, path)
    except ValueError as err:
        raise FactError(
            f"{path}: cannot read phphost's record of the last apply ({err}). Remove it "
            "and run `phphost apply SPEC` for the whole host once, which writes it anew"
        ) from err


def applied_tenants(path: str = layout.APPLIED_FILE) -> list[str] | None:
    """The names of the tenants the last apply brought about, without decoding the
    whole record (a plan of the whole host asks only this; at 1,000 tenants the
    decode took 0.4 s). A record this cannot read is read as read_applied reads it,
    with its error."""
    text = read_text(path)
    if text is None:
        return None
    try:
        names = [t["name"] for t in json.loads(text)["tenants"]]
        if all(isinstance(n, str) for n in names):
            return names
    except (ValueError, KeyError, TypeError):
        pass
    applied = read_applied(path)
    return [t.name for t in applied.tenants] if applied is not None else None
