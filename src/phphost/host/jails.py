"""Build and remove jails on the host. Jail builds are in place and idempotent;
a rebuild is not journaled (a failed apply leaves a jail that the next apply
brings to its manifest); a jail that did not exist before is, and rollback
removes it. A jail's mounts exist only inside its master's namespace, so
removing a jail never reaches tenant data."""

from __future__ import annotations

import os

from phphost import layout
from phphost.facts.hostview import RealHostView
from phphost.facts.jailcache import Gone
from phphost.facts.jailscan import gather_facts
from phphost.host.jailbuild import build_jail, prune_hidden, remove_jail
from phphost.host.jailstore import Store
from phphost.jail.features import complete_identities
from phphost.jail.invariants import Neighbours, check_invariants
from phphost.jail.manifest import Manifest


def build(manifest: Manifest, user: str, group: str) -> None:
    """Build the jail the plan carries. A manifest planned before its pool user
    existed is completed with the user's ids and passwd/group lines first. The
    invariants about the jail's place on disk are checked again (the disk may have
    changed since the plan); those about its sources are pure and held at plan time."""
    if manifest.uid is None or (manifest.needs_mail_group and manifest.mail_gid is None):
        manifest = complete_identities(manifest, RealHostView(), user, group)
    root = layout.jail_root(manifest.pool)
    check_invariants(manifest, gather_facts(root), Neighbours())
    build_jail(manifest, root)


def prune(manifest: Manifest) -> list[str]:
    """After every master has its jail's new mounts: what older builds left beneath
    the base feature's bind targets (jailbuild.prune_hidden)."""
    root = layout.jail_root(manifest.pool)
    return prune_hidden(manifest, root) if os.path.isdir(root) else []


def exists(pool: str) -> bool:
    return os.path.isdir(layout.jail_root(pool))


def remove(pool: str) -> None:
    root = layout.jail_root(pool)
    if os.path.isdir(root):
        remove_jail(root)


def collect_garbage() -> list[Gone]:
    """The store objects no jail links to any more are removed: (dev, inode, name)
    of each."""
    if os.path.isdir(layout.STORE_DIR):
        return Store(layout.STORE_DIR).gc()
    return []
