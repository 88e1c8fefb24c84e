"""Actions are data: the planner makes them, `plan` prints them, `apply` executes
them. Each carries the reason it is needed."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from phphost.jail.manifest import Manifest
from phphost.render.cgroups import PoolCgroup

T = TypeVar("T", bound="Action")
Phase = Literal["files", "apache-modules", "identities", "services", "cleanup"]


@dataclass(frozen=True)
class Action:
    reason: str

    @property
    def kind(self) -> str:
        return type(self).__name__

    def describe(self) -> str:
        raise NotImplementedError

    def to_json(self) -> dict[str, object]:
        return {"action": self.kind, "what": self.describe(), "reason": self.reason}


@dataclass(frozen=True)
class WriteFile(Action):
    path: str = ""
    content: str = ""
    old: str | None = None
    mode: int = 0o644

    def describe(self) -> str:
        verb = "create" if self.old is None else "update"
        return f"{verb} file {self.path}"

    def diff(self) -> str:
        old = (self.old or "").splitlines(keepends=True)
        new = self.content.splitlines(keepends=True)
        src = "/dev/null" if self.old is None else f"a{self.path}"
        return "".join(difflib.unified_diff(old, new, src, f"b{self.path}"))

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "path": self.path, "diff": self.diff()}


@dataclass(frozen=True)
class RemoveFile(Action):
    path: str = ""
    old: str | None = None

    def describe(self) -> str:
        return f"remove file {self.path}"


@dataclass(frozen=True)
class Symlink(Action):
    link: str = ""
    target: str = ""

    def describe(self) -> str:
        return f"link {self.link} -> {self.target}"


@dataclass(frozen=True)
class ApacheModule(Action):
    module: str = ""
    enable: bool = True

    def describe(self) -> str:
        return f"{'enable' if self.enable else 'disable'} apache module {self.module}"


@dataclass(frozen=True)
class EnsureGroup(Action):
    name: str = ""

    def describe(self) -> str:
        return f"create group {self.name}"


@dataclass(frozen=True)
class EnsureUser(Action):
    name: str = ""
    group: str = ""
    home: str = "/nonexistent"
    system: bool = True
    exists: bool = False     # True: only the primary group is fixed

    def describe(self) -> str:
        if self.exists:
            return f"set primary group of user {self.name} to {self.group}"
        return f"create user {self.name} (group {self.group}, home {self.home})"


@dataclass(frozen=True)
class EnsureDir(Action):
    path: str = ""
    owner: str = "root"
    group: str = "root"
    mode: int = 0o755
    exists: bool = False

    def describe(self) -> str:
        verb = "fix" if self.exists else "create"
        return f"{verb} directory {self.path} ({self.owner}:{self.group} {self.mode:04o})"


@dataclass(frozen=True)
class SetAcl(Action):
    path: str = ""
    entries: tuple[str, ...] = ()
    recursive: bool = False

    def describe(self) -> str:
        rec = " recursively" if self.recursive else ""
        return f"grant ACL {','.join(self.entries)} on {self.path}{rec}"


@dataclass(frozen=True)
class BuildJail(Action):
    pool: str = ""
    changes: tuple[str, ...] = ()
    manifest: Manifest | None = field(default=None, repr=True, compare=True)
    user: str = ""            # the pool user and tenant group: a manifest planned before
    group: str = ""           # they existed is completed with their ids and lines

    def describe(self) -> str:
        return f"build jail of pool {self.pool} ({len(self.changes)} change(s))"

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), "pool": self.pool, "changes": list(self.changes)}


@dataclass(frozen=True)
class RemoveJail(Action):
    pool: str = ""

    def describe(self) -> str:
        return f"remove jail of pool {self.pool} (its mounts exist only in its master)"


@dataclass(frozen=True)
class SetCgroup(Action):
    cgroup: PoolCgroup | None = None
    limits: str = ""          # spec/limits.describe()
    create: tuple[str, ...] = ()

    def describe(self) -> str:
        pool = self.cgroup.pool if self.cgroup else "?"
        version = self.cgroup.version if self.cgroup else "?"
        verb = "create cgroup and set" if self.create else "set"
        return f"{verb} limits of pool {pool} (cgroup {version}): {self.limits}"

    def to_json(self) -> dict[str, object]:
        cg = self.cgroup
        return {**super().to_json(), "pool": cg.pool if cg else None,
                "writes": [list(w) for w in cg.writes] if cg else [], "create": list(self.create)}


@dataclass(frozen=True)
class RemoveCgroup(Action):
    pool: str = ""

    def describe(self) -> str:
        return f"remove cgroup of pool {self.pool}"


@dataclass(frozen=True)
class SetProcessLimit(Action):
    pool: str = ""
    nproc: int = 0

    def describe(self) -> str:
        return f"set RLIMIT_NPROC {self.nproc} on the running processes of pool {self.pool}"


@dataclass(frozen=True)
class StartMaster(Action):
    pool: str = ""
    socket: str = ""          # where its FPM status answers (apply waits on it)

    def describe(self) -> str:
        return f"start FPM master of pool {self.pool}"


@dataclass(frozen=True)
class ReloadMaster(Action):
    pool: str = ""
    socket: str = ""          # where its FPM status answers (apply waits on it)

    def describe(self) -> str:
        return f"reload FPM master of pool {self.pool} (php-fpm -t, then SIGUSR2 to it alone)"


@dataclass(frozen=True)
class RestartMaster(Action):
    pool: str = ""
    socket: str = ""          # where its FPM status answers (apply waits on it)

    def describe(self) -> str:
        return f"restart FPM master of pool {self.pool} (its command line changed)"


@dataclass(frozen=True)
class StopMaster(Action):
    pool: str = ""

    def describe(self) -> str:
        return f"stop FPM master of pool {self.pool}"


@dataclass(frozen=True)
class LoadNftables(Action):
    path: str = ""            # the rendered file (written by a WriteFile of this plan or not)
    content: str = ""         # what the file holds once written: `nft -c` checks it first

    def describe(self) -> str:
        return f"load network policy {self.path} (nft -c -f, then nft -f)"


@dataclass(frozen=True)
class UnloadNftables(Action):
    table: str = ""

    def describe(self) -> str:
        return f"delete nftables table {self.table} (no pool left)"


@dataclass(frozen=True)
class CheckTls(Action):
    site: str = ""
    cert: str = ""
    key: str = ""
    chain: str | None = None

    def describe(self) -> str:
        return f"check TLS certificate and key of site {self.site} with openssl"


@dataclass(frozen=True)
class UpdatePrograms(Action):
    update: tuple[str, ...] = ()    # supervisord programs whose config was written or removed
    remove: tuple[str, ...] = ()    # programs stopped for good (after their masters stop)
    resync: tuple[str, ...] = ()    # every program of the spec: re-read after a rollback

    def describe(self) -> str:
        return (f"supervisord: reread; update {len(self.update)} program(s), "
                f"remove {len(self.remove)}")


@dataclass(frozen=True)
class ReloadApache(Action):
    restart: bool = False     # an MPM switch needs a full restart

    def describe(self) -> str:
        return "restart apache2" if self.restart else "reload apache2 gracefully (after configtest)"


@dataclass(frozen=True)
class RemoveUser(Action):
    name: str = ""

    def describe(self) -> str:
        return f"remove user {self.name}"


@dataclass(frozen=True)
class RemoveGroup(Action):
    name: str = ""

    def describe(self) -> str:
        return f"remove group {self.name}"


@dataclass(frozen=True)
class RemoveTree(Action):
    path: str = ""

    def describe(self) -> str:
        return f"DELETE tenant data {self.path} (--purge)"


@dataclass(frozen=True)
class SaveState(Action):
    state: dict[str, list[str]] = field(default_factory=dict)

    def describe(self) -> str:
        return "record what phphost manages"


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    noops: tuple[str, ...] = ()

    @property
    def changes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if not isinstance(a, SaveState))

    def has_changes(self) -> bool:
        return bool(self.changes)

    def fingerprint(self) -> str:
        """A digest of every action with all it carries (file contents, manifests):
        a saved plan is applied only when planning again gives the same digest."""
        return hashlib.sha256(repr(self.actions).encode()).hexdigest()

    def one(self, kind: type[T]) -> T | None:
        return next((a for a in self.actions if isinstance(a, kind)), None)
