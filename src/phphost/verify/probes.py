"""PHP probes run inside a pool, as that pool: a snippet from verify/php/ is written
where only that pool can read it (never under a docroot) and requested through the
pool's own socket with the FastCGI client.

Layout per run: PROBE_ROOT/<run id>/<pool>/<snippet> with the pool directory
root:<tenant group> 0750 and files 0640, all removed at the end of the run.
(/var/lib/phphost itself is root 0700, so pools cannot reach anything below it.)

`phphost check` places and runs its own probe through the same class (`source`).
"""

from __future__ import annotations

import base64
import grp
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from phphost import layout, safefs
from phphost.errors import FastCGIError
from phphost.fastcgi.client import fcgi_request
from phphost.fastcgi.status import php_params
from phphost.render.fpm import jail_root
from phphost.spec.model import Model, Pool
from phphost.verify.answers import MAX_ANSWER_BYTES, parse_answer
from phphost.verify.errors import VerifyError

JAIL_PROBE_ROOT = "/phphost-probes"     # inside a jail (see probe_dir)
TIMEOUT = 30.0


@dataclass(frozen=True)
class ProbeDir:
    host: str       # the directory as root on the host sees it
    inside: str     # the same directory as the pool's workers see it


def probe_dir(pool: Pool, run_id: str) -> ProbeDir:
    """Where this run's probes for `pool` live. Pure."""
    if not pool.jail.enabled:
        path = f"{layout.PROBE_ROOT}/{run_id}/{pool.name}"
        return ProbeDir(path, path)
    # JAIL HOOK: a chrooted pool can only open scripts inside its jail, addressed by
    # their path inside it. This places them at <jail root>/phphost-probes/<run id>/
    # (created by create_probe_dir below, mode root:<group> 0750 like the unjailed
    # case). Adjust when jail building lands if the jail keeps / read-only or wants
    # a fixed place for them.
    inside = f"{JAIL_PROBE_ROOT}/{run_id}"
    return ProbeDir(jail_root(pool.name) + inside, inside)


def snippet(name: str) -> str:
    """The full probe script: the shared prelude, then snippet `name` (without its <?php)."""
    php = resources.files("phphost.verify") / "php"
    lib = (php / "_lib.php").read_text(encoding="utf-8")
    body = (php / name).read_text(encoding="utf-8").removeprefix("<?php\n")
    return lib + "\n" + body


def site_script(name: str) -> str:
    """A standalone script from verify/php/ (placed by a tenant in its docroot)."""
    return (resources.files("phphost.verify") / "php" / name).read_text(encoding="utf-8")


def encode_args(args: dict[str, Any]) -> str:
    """Pure: the query string carrying a probe's arguments."""
    raw = base64.urlsafe_b64encode(json.dumps(args).encode()).decode()
    return "a=" + raw


def _mkdir(path: str, gid: int, mode: int) -> None:
    """mkdirat in the parent reached without following untrusted symlinks, then
    fchown/fchmod on the new directory's own descriptor."""
    with safefs.parent(path) as (pfd, name, _trusted):
        os.mkdir(name, 0o700, dir_fd=pfd)
        fd = os.open(name, safefs.DIR_FLAGS, dir_fd=pfd)
    try:
        os.fchown(fd, 0, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _write(path: str, text: str, gid: int) -> None:
    with safefs.parent(path) as (pfd, name, _trusted):
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=pfd)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fchown(fh.fileno(), 0, gid)
        os.fchmod(fh.fileno(), 0o640)
        # older than opcache.file_update_protection (2s), so OPcache caches probes too
        past = time.time() - 60
        os.utime(fh.fileno(), (past, past))


class Probes:
    """Places snippets per pool on first use and runs them; cleanup() removes them."""

    def __init__(self, model: Model, run_id: str,
                 source: Callable[[str], str] = snippet) -> None:
        self.model = model
        self.run_id = run_id
        self.source = source        # probe name -> its PHP text (phphost check has its own)
        self._placed: set[tuple[str, str]] = set()
        self._dirs: dict[str, ProbeDir] = {}
        self._roots: list[str] = []     # parents this run created (removed when empty)

    def _gid(self, pool: Pool) -> int:
        return grp.getgrnam(self.model.tenant(pool.tenant).group).gr_gid

    def _ensure_parent(self, path: str) -> None:
        """Create the directories above a pool's probe dir (root 0711), remembering
        which ones this run made."""
        if os.path.isdir(path):
            return
        self._ensure_parent(os.path.dirname(path))
        _mkdir(path, 0, 0o711)
        self._roots.append(path)

    def dir(self, pool: Pool) -> ProbeDir:
        if pool.name not in self._dirs:
            where = probe_dir(pool, self.run_id)
            self._ensure_parent(os.path.dirname(where.host))
            _mkdir(where.host, self._gid(pool), 0o750)
            self._dirs[pool.name] = where
        return self._dirs[pool.name]

    def script(self, pool: Pool, name: str) -> str:
        """The probe's path as the pool sees it (placed on first use)."""
        where = self.dir(pool)
        if (pool.name, name) not in self._placed:
            _write(os.path.join(where.host, name), self.source(name), self._gid(pool))
            self._placed.add((pool.name, name))
        return os.path.join(where.inside, name)

    def run(self, pool: Pool, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run probe `name` in `pool` and return its JSON answer."""
        return self.request(pool, name, args)[2]

    def request(self, pool: Pool, name: str, args: dict[str, Any] | None = None,
                params: Mapping[str, str] | None = None,
                ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Run probe `name` in `pool` with extra CGI `params` (e.g. HTTP_COOKIE):
        (HTTP status, response headers, its JSON answer)."""
        path = self.script(pool, name)
        cgi = php_params(path, encode_args(args or {}), self.dir(pool).inside)
        try:
            resp = fcgi_request(pool.socket, {**cgi, **(params or {})}, timeout=TIMEOUT,
                                limit=MAX_ANSWER_BYTES + 65536)
            status, headers, body = resp.http()
        except FastCGIError as err:
            raise VerifyError(f"probe {name} in pool {pool.name}: {err}") from err
        if status != 200:
            why = (body or resp.stderr)[:300].decode(errors="replace")
            raise VerifyError(f"probe {name} in pool {pool.name} failed (status {status}): {why}")
        return status, headers, parse_answer(body, name, pool.name)

    def cleanup(self) -> list[str]:
        """Remove the probe dirs (paths computed from the run id and the spec, never
        from an answer) with fd-based, no-follow walks."""
        problems: list[str] = []
        for where in self._dirs.values():
            try:
                safefs.remove_tree(where.host)
            except (OSError, safefs.UnsafePath) as err:
                problems.append(f"{where.host}: {getattr(err, 'strerror', None) or err}")
        for path in reversed(self._roots):
            safefs.remove_empty_dir(path)   # not empty: another run still uses it
        self._dirs.clear()
        self._placed.clear()
        self._roots.clear()
        return problems
