"""Things the attacks aim at, set up once per run on first use: canary files in each
tenant's code and data dirs (placed as that tenant), victims for delete attempts and
a session canary per pool (created by that pool itself)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from phphost.render.fpm import jail_root
from phphost.spec.model import Model, Pool, Tenant
from phphost.verify.answers import session_dir, session_file
from phphost.verify.probes import Probes
from phphost.verify.scratch import Scratch


@dataclass(frozen=True)
class Canary:
    path: str
    token: str      # text that only this file contains
    size: int = 0   # bytes verify wrote (never stat'ed back: the tenant owns the file)


@dataclass(frozen=True)
class SessionCanary:
    dir: str
    file: str
    token: str


def code_dir(model: Model, tenant: Tenant) -> str:
    """Where the tenant's code lives: its first site's docroot, else its home. Pure."""
    roots = sorted((s.name, s.docroot) for s in model.sites
                   if s.tenant == tenant.name and s.docroot is not None)
    return roots[0][1] if roots else tenant.home


def data_dirs(model: Model, tenant: Tenant) -> list[str]:
    """The tenant's writable dirs (of all its pools). Pure."""
    return sorted({w for p in model.pools_of(tenant.name) for w in p.writable})


class Fixtures:
    def __init__(self, model: Model, scratch: Scratch, probes: Probes) -> None:
        self.model = model
        self.scratch = scratch
        self.probes = probes
        self._code: dict[str, Canary] = {}
        self._data: dict[str, list[Canary]] = {}
        self._victims: dict[tuple[str, str], list[str]] = {}
        self._sessions: dict[str, SessionCanary | None] = {}

    def token(self, what: str) -> str:
        return f"VERIFY-CANARY-{self.scratch.run_id}-{what}"

    def code_canary(self, tenant: Tenant) -> Canary:
        if tenant.name not in self._code:
            token = self.token(f"code-{tenant.name}")
            path = os.path.join(code_dir(self.model, tenant), self.scratch.name("code.php"))
            content = f"<?php /* {token} */\n".encode()
            self.scratch.write(tenant, path, content)
            self._code[tenant.name] = Canary(path, token, len(content))
        return self._code[tenant.name]

    def data_canaries(self, tenant: Tenant) -> list[Canary]:
        if tenant.name not in self._data:
            canaries = []
            for i, d in enumerate(data_dirs(self.model, tenant)):
                token = self.token(f"data{i}-{tenant.name}")
                path = os.path.join(d, self.scratch.name("data.txt"))
                content = f"{token}\n".encode()
                self.scratch.write(tenant, path, content)
                canaries.append(Canary(path, token, len(content)))
            self._data[tenant.name] = canaries
        return self._data[tenant.name]

    def victims(self, tenant: Tenant, attacker: str) -> list[str]:
        """Files of the tenant that one attacker's delete attempts aim at (one per code
        and data dir; each attacker gets its own, as a successful delete uses them up)."""
        key = (tenant.name, attacker)
        if key not in self._victims:
            dirs = [code_dir(self.model, tenant), *data_dirs(self.model, tenant)]
            name = self.scratch.name(f"victim-{attacker.replace(':', '-')}.txt")
            paths = [os.path.join(d, name) for d in dirs]
            for path in paths:
                self.scratch.write(tenant, path, b"delete me if you can\n")
            self._victims[key] = paths
        return self._victims[key]

    def session(self, pool: Pool) -> SessionCanary | None:
        """A session the pool itself started (None: its sessions are not files)."""
        if pool.name not in self._sessions:
            token = self.token(f"session-{pool.name}")
            sid = session_id(self.scratch, pool)
            out = self.probes.run(pool, "session.php", {"token": token, "id": sid})
            self._sessions[pool.name] = session_canary(self.scratch, pool, sid, token, out)
        return self._sessions[pool.name]


def session_id(scratch: Scratch, pool: Pool) -> str:
    """The id verify gives the pool's session (so its file name carries the mark)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", scratch.name(f"sess-{pool.name}"))


def session_canary(scratch: Scratch, pool: Pool, sid: str, token: str,
                   out: dict[str, Any]) -> SessionCanary | None:
    """Where the session lives, computed on the host from the spec (the pool's
    session.save_path) and the id verify chose; session.php's answer must agree and
    is otherwise never used (HostileAnswer). None: no file sessions, e.g. a jailed
    pool without the sessions feature, whose session_start() fails."""
    ini = {**dict(pool.settings.php_values), **dict(pool.settings.php_admin_values)}
    found = session_file(out, pool.name, sid, session_dir(ini))
    if found is None:
        return None
    # a jailed pool sees paths inside its jail; attackers and cleanup use the host's
    top = jail_root(pool.name) if pool.jail.enabled else ""
    canary = SessionCanary(top + found[0], top + found[1], token)
    scratch.track(canary.file)
    return canary
