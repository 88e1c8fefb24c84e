"""Files an attacking tenant places in its own tree (docroot, writable dirs), created
as the tenant's Unix user so that ownership and the kernel's link protections are
real, and removed again after the run.

Every path created here carries `verify-<run id>` in one of its components, and
cleanup refuses to remove anything that does not: a bug can never delete tenant data.
Paths are computed on the host (spec, run id), never taken from a probe's answer, and
removed with descriptor walks that never follow a symlink a tenant or pool planted
(safefs.parent, then unlinkat or safefs.remove_tree by descriptor): a
swapped directory or link is reported and left alone, not followed.
"""

from __future__ import annotations

import os
import posixpath
import stat
import subprocess
from collections.abc import Sequence

from phphost import safefs
from phphost.spec.model import Tenant
from phphost.verify.errors import VerifyError

TIMEOUT = 30.0


class Scratch:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._paths: list[str] = []

    @property
    def mark(self) -> str:
        return f"verify-{self.run_id}"

    def name(self, stem: str) -> str:
        """A file name of this run."""
        return f"{self.mark}-{stem}"

    def ours(self, path: str) -> bool:
        """A file name of this run, or an absolute, normalised path (no '..') with a
        component of this run."""
        if "/" not in path:
            return self.mark in path and path not in (".", "..")
        if not path.startswith("/") or posixpath.normpath(path) != path:
            return False
        return any(self.mark in part for part in path.split("/"))

    def _as_tenant(self, tenant: Tenant, argv: Sequence[str],
                   stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(list(argv), input=stdin, capture_output=True, check=False,
                              timeout=TIMEOUT, user=tenant.user, group=tenant.group,
                              extra_groups=[], umask=0o027)

    def _made(self, tenant: Tenant, argv: Sequence[str], path: str,
              stdin: bytes | None = None) -> str:
        if not self.ours(path):
            raise VerifyError(f"verify would create {path}, which is not named {self.mark}*")
        self._paths.append(path)
        proc = self._as_tenant(tenant, argv, stdin)
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise VerifyError(f"as tenant {tenant.name}: {' '.join(argv)} failed: {err}")
        return path

    def mkdir(self, tenant: Tenant, path: str) -> str:
        return self._made(tenant, ["mkdir", "-m", "0750", "--", path], path)

    def write(self, tenant: Tenant, path: str, content: bytes) -> str:
        return self._made(tenant, ["tee", "--", path], path, stdin=content)

    def symlink(self, tenant: Tenant, target: str, path: str) -> str:
        return self._made(tenant, ["ln", "-s", "--", target, path], path)

    def hardlink(self, tenant: Tenant, target: str, path: str) -> str:
        """Try to hard-link `target` as the tenant: '' when made, else the error."""
        self.track(path)
        proc = self._as_tenant(tenant, ["ln", "--", target, path])
        return "" if proc.returncode == 0 else proc.stderr.decode(errors="replace").strip()

    def track(self, path: str) -> None:
        """Remove `path` at cleanup if it exists (something an attack may have created)."""
        if not self.ours(path):
            raise VerifyError(f"verify would track {path}, which is not named {self.mark}*")
        self._paths.append(path)

    def cleanup(self) -> list[str]:
        """Remove everything created, newest first; returns what could not be removed."""
        problems: list[str] = []
        for path in reversed(self._paths):
            try:
                remove(path)
            except safefs.UnsafePath as err:
                problems.append(f"{path}: not removed: {err.problem}")
            except OSError as err:
                problems.append(f"{path}: {err.strerror or err}")
        self._paths.clear()
        return problems


def remove(path: str) -> None:
    """Remove the file, symlink or directory tree at path without following any
    symlink: the parent is reached by safefs's no-follow walk, the entry is looked at
    with lstat relative to the parent's descriptor, a directory is removed with
    safefs.remove_tree (by descriptor: symlinks and FIFOs inside unlinked, never
    followed or opened) and anything else unlinked. Missing is fine."""
    try:
        with safefs.parent(path) as (pfd, name, _trusted):
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(name, dir_fd=pfd)
                return
    except FileNotFoundError:
        return
    safefs.remove_tree(path)
