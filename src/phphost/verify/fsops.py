"""Filesystem operations run by fs.php inside a pool: builders and readers. The
builders and describers are pure."""

from __future__ import annotations

from typing import Any

from phphost.spec.model import Pool
from phphost.verify.answers import fs_results
from phphost.verify.errors import VerifyError
from phphost.verify.probes import Probes

FsResult = dict[str, Any]


def op(kind: str, path: str, **extra: str) -> dict[str, str]:
    """read | list | create | append | delete | symlink (target=) | link (target=)"""
    return {"op": kind, "path": path, **extra}


def short_error(message: str) -> str:
    """PHP's 'fopen(/x): Failed to open stream: Permission denied' -> 'Permission denied'."""
    return message.rsplit(": ", 1)[-1].strip() if message else "failed"


def _preview(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return repr(flat[:limit] + ("..." if len(flat) > limit else ""))


def describe(result: FsResult) -> str:
    """One line of evidence for one operation."""
    kind, path = result["op"], result["path"]
    if not result["ok"]:
        return f"{kind} {path}: {short_error(result['error'])}"
    content = str(result.get("content", ""))
    if kind == "read":
        return f"read {path}: got {len(content)} bytes {_preview(content)}"
    if kind == "list":
        names = content.split("\n") if content else []
        return f"list {path}: {len(names)} entries {_preview(', '.join(names))}"
    target = f" -> {result.get('target')}" if kind in ("symlink", "link") else ""
    return f"{kind} {path}{target}: succeeded"


def run_ops(probes: Probes, pool: Pool, ops: list[dict[str, str]]) -> list[FsResult]:
    """Each result carries the op and path that were sent (checked: never the pool's)."""
    return fs_results(probes.run(pool, "fs.php", {"ops": ops}), ops, pool.name)


def controlled(probes: Probes, pool: Pool, control: dict[str, str], token: str,
               ops: list[dict[str, str]]) -> list[FsResult]:
    """Run `ops` after a control operation that must succeed and return `token`
    (the pool reading its own tenant's canary): without it, a 'blocked' would
    prove nothing."""
    first, *rest = run_ops(probes, pool, [control, *ops])
    if not first["ok"] or token not in str(first.get("content", "")):
        raise VerifyError(f"control failed: pool {pool.name} cannot {describe(first)} "
                          "(its own tenant's file), so its other failures prove nothing")
    return rest


def tried_line(pool: Pool, results: list[FsResult]) -> str:
    ops = ", ".join(f"{r['op']} {r['path']}" for r in results)
    return f"PHP in pool {pool.name} (user {pool.user}): {ops}"
