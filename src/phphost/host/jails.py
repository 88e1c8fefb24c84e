"""Build and remove jails on the host. Jail builds are in place and idempotent;
a rebuild is not journaled (a failed apply leaves a jail that the next apply
brings to its manifest); a jail that did not exist before is, and rollback
removes it. A jail's mounts exist only inside its master's namespace, so
removing a jail never reaches tenant data."""

from __future__ import annotations

import os

from phphost.facts.jails import jail_state
from phphost.jail.build import build_jail, default_root, remove_jail
from phphost.jail.hostview import RealHostView
from phphost.jail.store import STORE_DIR, Store
from phphost.spec.model import Model


def build(model: Model, pool: str) -> None:
    """Recompute the manifest now that the pool user exists, re-check the
    invariants, and build."""
    state = jail_state(model, model.pool(pool), RealHostView(), {})
    build_jail(state.manifest, state.root)


def exists(pool: str) -> bool:
    return os.path.isdir(default_root(pool))


def remove(pool: str) -> None:
    root = default_root(pool)
    if os.path.isdir(root):
        remove_jail(root)


def collect_garbage() -> None:
    if os.path.isdir(STORE_DIR):
        Store(STORE_DIR).gc()
