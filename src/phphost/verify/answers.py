"""Probe answers are hostile input. A probe runs as the pool, so whatever it prints
is chosen by the tenant's code once the tenant controls the pool: root only ever
parses a bounded amount of it, checks its shape, and never takes a path from it.
Paths root acts on are computed on the host from the run id and the spec (see
Fixtures.session), and an answer is only compared with them. Pure."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from phphost import layout
from phphost.verify.errors import VerifyError

MAX_ANSWER_BYTES = 4 << 20      # the largest honest answer (fs reads of 64 KiB) is far below
MAX_DEPTH = 8                   # probes answer flat objects and lists of objects


class HostileAnswer(VerifyError):
    """A probe's answer is not what that probe can honestly print; it was not used."""

    def __init__(self, probe: str, pool: str, problem: str) -> None:
        self.problem = problem
        super().__init__(f"probe {probe} in pool {pool} answered {problem}; the answer was "
                         "not used (a pool that prints this is compromised or broken)")


def _depth(value: object, limit: int) -> int:
    if limit < 0:
        return 1
    if isinstance(value, dict):
        return 1 + max((_depth(v, limit - 1) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v, limit - 1) for v in value), default=0)
    return 0


def parse_answer(body: bytes, probe: str, pool: str) -> dict[str, Any]:
    """The JSON object a probe printed: at most MAX_ANSWER_BYTES, nested at most
    MAX_DEPTH levels. HostileAnswer otherwise."""
    if len(body) > MAX_ANSWER_BYTES:
        raise HostileAnswer(probe, pool, f"{len(body)} bytes (at most {MAX_ANSWER_BYTES})")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as err:
        raise HostileAnswer(probe, pool, f"something that is not JSON ({type(err).__name__})"
                            ) from err
    if not isinstance(data, dict):
        raise HostileAnswer(probe, pool, f"a JSON {type(data).__name__}, not an object")
    if _depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise HostileAnswer(probe, pool, f"JSON nested deeper than {MAX_DEPTH} levels")
    return data


def fs_results(out: Mapping[str, Any], ops: Sequence[Mapping[str, str]],
               pool: str) -> list[dict[str, Any]]:
    """fs.php's results, one per op sent, each echoing exactly the op and path sent
    (callers may use r["path"]: it is ours, never the pool's)."""
    results = out.get("results")
    if not isinstance(results, list) or len(results) != len(ops):
        raise HostileAnswer("fs.php", pool, f"{len(results) if isinstance(results, list) else 'no'}"
                            f" results for {len(ops)} operations")
    checked = []
    for sent, got in zip(ops, results, strict=True):
        if not isinstance(got, dict):
            raise HostileAnswer("fs.php", pool, "a result that is not an object")
        if got.get("op") != sent["op"] or got.get("path") != sent["path"]:
            raise HostileAnswer("fs.php", pool, f"a result for {got.get('op')!r} "
                                f"{str(got.get('path'))[:200]!r}, but it was sent "
                                f"{sent['op']!r} {sent['path']!r}")
        ok, error, content = got.get("ok"), got.get("error", ""), got.get("content", "")
        if not isinstance(ok, bool) or not isinstance(error, str) or not isinstance(content, str):
            raise HostileAnswer("fs.php", pool, "a result whose ok/error/content have the "
                                "wrong types")
        checked.append({**sent, "ok": ok, "error": error, "content": content})
    return checked


def session_file(out: Mapping[str, Any], pool: str, sid: str, expected_dir: str,
                 ) -> tuple[str, str] | None:
    """(dir, file) of the session session.php started, as the pool sees them, or None
    when the pool keeps no file sessions. Both must be exactly what the host computed:
    the session id verify chose and the pool's configured save path."""
    if out.get("handler") != "files" or not out.get("id"):
        return None
    want_file = posixpath.join(expected_dir, f"sess_{sid}")
    got = (out.get("id"), _norm(out.get("dir")), _norm(out.get("file")))
    if got != (sid, expected_dir, want_file):
        shown = tuple(str(v)[:200] for v in got)
        raise HostileAnswer("session.php", pool, f"id/dir/file {shown!r}, but verify chose "
                            f"{(sid, expected_dir, want_file)!r}")
    return expected_dir, want_file


def _norm(value: object) -> object:
    """Compared only, never used: '/x/' and '/x' are the same directory."""
    return posixpath.normpath(value) if isinstance(value, str) and value else value


def session_dir(ini: Mapping[str, str]) -> str:
    """Pure: the directory PHP keeps file sessions in for these ini settings:
    `session.save_path` ("N;/dir" and "N;MODE;/dir" name /dir), Debian's
    /var/lib/php/sessions by default (also the jail's sessions feature), the temp dir
    when empty."""
    raw = ini.get("session.save_path", layout.PHP_SESSION_DIR)
    path = raw.rsplit(";", 1)[-1]
    return posixpath.normpath(path) if path else "/tmp"
