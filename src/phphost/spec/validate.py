"""Primitive checks for the spec loader: where a value sits (`At`), and typed
accessors that raise `SpecError` naming the file, the dotted key path, the
problem and the remedy. Pure."""

from __future__ import annotations

import bisect
import difflib
import json
import posixpath
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Generic, NoReturn, TypeVar

from phphost import layout
from phphost.errors import SpecError

Table = dict[str, object]

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
UNIX_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_DURATION_RE = re.compile(r"^([0-9]+)([smh])$")
_UNITS = {"s": 1, "m": 60, "h": 3600}
RESERVED_IDENTITIES = frozenset({
    "root", "daemon", "bin", "sys", "sync", "adm", "sudo", "wheel", "shadow", "disk", "staff",
    "nobody", "nogroup", layout.WEB_USER, layout.WEB_GROUP, layout.MAIL_GROUP,
})
_LABEL_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class At:
    """A place in the spec: the file and the dotted key path inside it. `origins`
    (a spec directory) maps a key path ("pools.files", "apache") to the file that
    defines it; a key below it is then named in that file."""

    src: str
    key: str = ""
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False,
                                       repr=False)

    def sub(self, part: str | int) -> At:
        if isinstance(part, int):
            return At(self.src, f"{self.key}[{part}]", self.origins)
        text = part if _BARE_KEY_RE.match(part) else json.dumps(part)
        key = f"{self.key}.{text}" if self.key else text
        return At(self.origins.get(key, self.src), key, self.origins)

    def fail(self, problem: str, remedy: str) -> NoReturn:
        raise SpecError(self.src, self.key, problem, remedy)


def type_name(value: object) -> str:
    """The TOML name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    names: tuple[tuple[type, str], ...] = (
        (int, "integer"), (float, "float"), (str, "string"), (list, "array"),
        (dict, "table"), (datetime, "datetime"), (date, "date"), (time, "time"),
    )
    return next((name for cls, name in names if isinstance(value, cls)), type(value).__name__)


def _wrong_type(at: At, value: object, expected: str, example: str) -> NoReturn:
    at.fail(f"expected {expected}, got {type_name(value)}", f"write it as {example}")


def quoted(items: Iterable[str]) -> str:
    return ", ".join(items)


def table(at: At, value: object) -> Table:
    if not isinstance(value, dict):
        _wrong_type(at, value, "table", f"[{at.key}] or {at.key} = {{ ... }}")
    return value


def check_keys(at: At, tbl: Table, allowed: Sequence[str]) -> None:
    """Reject the first unknown key (in sorted order) of a table."""
    unknown = sorted(k for k in tbl if k not in allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        at.sub(unknown[0]).fail(f"unknown key {unknown[0]!r}{hint}",
                                f"use one of: {quoted(allowed)}")


def string(at: At, value: object) -> str:
    if not isinstance(value, str):
        _wrong_type(at, value, "string", f'{at.key.rsplit(".", 1)[-1]} = "..."')
    return value


def boolean(at: At, value: object) -> bool:
    if not isinstance(value, bool):
        _wrong_type(at, value, "boolean", "true or false (no quotes)")
    return value


def integer(at: At, value: object, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _wrong_type(at, value, "integer", "a whole number without quotes")
    _in_range(at, value, lo, hi, str(value))
    return value


def _in_range(at: At, value: int, lo: int | None, hi: int | None, shown: str) -> None:
    if lo is not None and hi is not None and not lo <= value <= hi:
        at.fail(f"{shown} is out of range", f"use a value from {lo} to {hi}")
    if lo is not None and value < lo:
        at.fail(f"{shown} is too small", f"use a value of at least {lo}")
    if hi is not None and value > hi:
        at.fail(f"{shown} is too large", f"use a value of at most {hi}")


def duration(at: At, value: object, lo: int = 0) -> int:
    """Whole seconds from an integer or a string like "30s", "5m", "1h"."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        _wrong_type(at, value, "duration",
                    'seconds as an integer or a string like "30s", "5m", "1h"')
    if isinstance(value, int):
        seconds, shown = value, f"{value} seconds"
    else:
        match = _DURATION_RE.match(value)
        if not match:
            at.fail(f"{value!r} is not a duration",
                    'use whole seconds (30) or a number with a unit s, m or h ("30s", "5m", "1h")')
        seconds, shown = int(match[1]) * _UNITS[match[2]], repr(value)
    _in_range(at, seconds, lo, None, shown)
    return seconds


def array(at: At, value: object) -> list[object]:
    if not isinstance(value, list):
        _wrong_type(at, value, "array", "[ ... ]")
    return value


def string_list(at: At, value: object) -> list[str]:
    return [string(at.sub(i), item) for i, item in enumerate(array(at, value))]


def dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def name(at: At, value: str, kind: str) -> str:
    if not NAME_RE.match(value):
        at.fail(
            f"{value!r} is not a valid {kind} name",
            "use 1 to 31 characters: a lowercase letter, then lowercase letters, "
            "digits, '_' or '-'",
        )
    return value


def unix_name(at: At, value: object, what: str = "Unix user or group name") -> str:
    """A user or group name phphost may create and own; system names are refused."""
    text = string(at, value)
    if not UNIX_NAME_RE.match(text):
        at.fail(
            f"{text!r} is not a valid {what}",
            "use 1 to 32 characters: a lowercase letter or '_', "
            "then lowercase letters, digits, '_' or '-'",
        )
    if text in RESERVED_IDENTITIES:
        at.fail(f"{text!r} is a system account, not one phphost may use as a {what}",
                "choose a dedicated name for this tenant or pool")
    return text


def reference(at: At, value: object, known: Collection[str], kind: str) -> str:
    """A name that must be defined under [KINDs.NAME] (`known`: a set or a table's
    keys; sorted only for the message: every pool and site refers to its tenant)."""
    ref = string(at, value)
    if ref not in known:
        defined = sorted(known)
        at.fail(f"{kind} {ref!r} is not defined",
                f"use one of the defined {kind}s: {quoted(defined)}" if defined
                else f"define it under [{kind}s.{ref}]")
    return ref


def required(at: At, tbl: Table, key: str, example: str) -> object:
    if key not in tbl:
        at.sub(key).fail(f"required key {key!r} is missing", f"add {key} = {example}")
    return tbl[key]


def abs_path(at: At, value: object) -> str:
    """An absolute, normalised path (no '.', '..', '//' or trailing '/')."""
    path = string(at, value)
    if not path.startswith("/"):
        at.fail(f"{path!r} is not an absolute path", "write it starting with '/'")
    if "\0" in path or "\n" in path:
        at.fail(f"{path!r} contains a control character", "remove it")
    if posixpath.normpath(path) != path or path.startswith("//"):
        at.fail(f"{path!r} is not normalised",
                f"write it as {posixpath.normpath(path)!r} (no '.', '..', '//' or trailing '/')")
    return path


def is_inside(path: str, root: str) -> bool:
    """True when `path` is `root` or below it (both normalised absolute paths)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


V = TypeVar("V")


class PathIndex(Generic[V]):
    """Paths with a value each (a tenant's home, a pool's jail root), indexed so that
    "which of them overlap this path" costs a walk up the path's parents plus a
    binary search, not a comparison with every one: `is_inside` both ways against
    all of them, in O(depth + log n + hits). Answers are memoised (many jails ask
    about the same host paths). Pure."""

    def __init__(self, items: Iterable[tuple[str, V]]) -> None:
        self._at: dict[str, list[V]] = {}
        for path, value in items:
            self._at.setdefault(path.rstrip("/") or "/", []).append(value)
        self._sorted = sorted(self._at)
        self._memo: dict[str, tuple[tuple[str, V], ...]] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self._at.values())

    def containing(self, path: str) -> list[tuple[str, V]]:
        """(indexed path, value) for each indexed path that `path` is or lies below."""
        out: list[tuple[str, V]] = []
        cur = path.rstrip("/") or "/"
        while True:
            out += [(cur, v) for v in self._at.get(cur, ())]
            if cur == "/":
                return out
            cur = posixpath.dirname(cur)

    def below(self, path: str) -> list[tuple[str, V]]:
        """(indexed path, value) for each indexed path strictly below `path`."""
        prefix = (path.rstrip("/") or "") + "/"
        out: list[tuple[str, V]] = []
        at = bisect.bisect_left(self._sorted, prefix)
        while at < len(self._sorted) and self._sorted[at].startswith(prefix):
            key = self._sorted[at]
            if key != "/":
                out += [(key, v) for v in self._at[key]]
            at += 1
        return out

    def overlapping(self, path: str) -> tuple[tuple[str, V], ...]:
        """Each (indexed path, value) with is_inside(path, p) or is_inside(p, path)."""
        hit = self._memo.get(path)
        if hit is None:
            hit = self._memo[path] = (*self.containing(path), *self.below(path))
        return hit


def path_in_home(at: At, value: object, home: str, what: str) -> str:
    """A path relative to `home` (or absolute inside it), resolved to absolute."""
    raw = string(at, value)
    if not raw or "\0" in raw or "\n" in raw:
        at.fail(f"{what} {raw!r} is empty or contains a control character",
                "write a path relative to the tenant home")
    if ".." in raw.split("/"):
        at.fail(f"{what} {raw!r} contains '..'",
                f"write a path inside the tenant home {home} without '..'")
    path = posixpath.normpath(posixpath.join(home, raw))
    if not is_inside(path, home):
        at.fail(f"{what} {raw!r} is outside the tenant home {home}",
                "write a path relative to the tenant home, or an absolute path inside it")
    return path


def hostname(at: At, value: object) -> str:
    """A DNS host name, returned lowercased (names are case-insensitive)."""
    host = string(at, value)
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL_RE.match(label) for label in labels):
        at.fail(
            f"{host!r} is not a valid host name",
            "use dot-separated labels of letters, digits and '-' (not at a label's start or end), "
            "without a trailing dot, port or wildcard",
        )
    return host.lower()
