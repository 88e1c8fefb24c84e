"""`phphost logs NAME [-f]`: a pool's FPM error (and slow) log and supervisor log,
and each site's Apache error and access logs, in one stream ordered by time,
each line tagged with where it came from. NAME may be a pool, a site or both
(a site's logs bring its pools' logs, a pool's bring its sites').

Where they are: FPM `/var/log/phphost/POOL.fpm.log` (error_log in the pool's
[global]), `POOL.slow.log` (FPM's slowlog: stack traces of slow requests),
`POOL.supervisor.log` (the master's stdout/stderr); Apache
`/var/log/apache2/phphost-SITE-error.log` and `-access.log` (render/apache.py).
Timestamp parsing is pure."""

from __future__ import annotations

import calendar
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

from phphost import layout
from phphost.errors import PhphostError
from phphost.render.monitorconfig import MonitorConfig

TAIL_BYTES = 1 << 20        # read at most this much from the end of each file
FOLLOW_CHUNK = 1 << 20
LINE_LIMIT = 8192
# C0 (but tab), DEL and C1: a pool's PHP writes raw bytes to its FPM log (stderr with
# decorate_workers_output = no) and Apache's error log carries its messages; escape
# sequences must not reach the admin's terminal (retitle, clear, hide lines)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class LogFile:
    tag: str       # e.g. "files.fpm", "blog.access"
    path: str


def pool_logs(pool: str) -> list[LogFile]:
    return [LogFile(f"{pool}.fpm", layout.fpm_log(pool)),
            LogFile(f"{pool}.slow", layout.slow_log(pool)),
            LogFile(f"{pool}.supervisor", f"{layout.LOG_DIR}/{pool}.supervisor.log")]


def site_logs(site: str) -> list[LogFile]:
    base = f"{layout.APACHE_LOG_DIR}/phphost-{site}"
    return [LogFile(f"{site}.error", f"{base}-error.log"),
            LogFile(f"{site}.access", f"{base}-access.log")]


def files_for(cfg: MonitorConfig, name: str) -> list[LogFile]:
    """Pure: every log of the pool and/or site called `name` and of what it serves."""
    pool, site = cfg.pool(name), cfg.site(name)
    if pool is None and site is None:
        known = sorted({p.name for p in cfg.pools} | {s.name for s in cfg.sites})
        raise PhphostError(f"no pool or site named {name!r} in the applied spec; "
                           f"known: {', '.join(known) or 'none'}")
    pools = {pool.name} if pool else set()
    sites = {site.name} if site else set()
    if site:
        pools.update(site.pools)
    if pool:
        sites.update(s.name for s in cfg.sites if pool.name in s.pools)
    out: list[LogFile] = []
    for p in sorted(pools):
        out += pool_logs(p)
    for s in sorted(sites):
        out += site_logs(s)
    return out


# --- time stamps ----------------------------------------------------------------------------

_FPM = re.compile(r"^\[(\d{2}-[A-Za-z]{3}-\d{4} \d{2}:\d{2}:\d{2})\]")
_APACHE_ERROR = re.compile(
    r"^\[[A-Za-z]{3} ([A-Za-z]{3} \d{2} \d{2}:\d{2}:\d{2})(\.\d+)? (\d{4})\]")
_ACCESS = re.compile(r"\[(\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}) ([+-]\d{4})\]")


def _local(text: str, fmt: str) -> float | None:
    try:
        return time.mktime(time.strptime(text, fmt))
    except (ValueError, OverflowError):
        return None


def line_time(line: str) -> float | None:
    """Pure (given the local time zone): the unix time a log line carries, or None."""
    if m := _FPM.match(line):
        return _local(m[1], "%d-%b-%Y %H:%M:%S")
    if m := _APACHE_ERROR.match(line):
        return _local(f"{m[1]} {m[3]}", "%b %d %H:%M:%S %Y")
    if m := _ACCESS.search(line[:200]):
        try:
            parsed = time.strptime(f"{m[1]} {m[2]}", "%d/%b/%Y:%H:%M:%S %z")
        except ValueError:
            return None
        offset = parsed.tm_gmtoff or 0
        return calendar.timegm(parsed) - offset
    return None


@dataclass(frozen=True)
class Line:
    when: float
    tag: str
    text: str


def timed(tag: str, lines: Iterable[str], default: float = 0.0) -> list[Line]:
    """Pure: lines with their time; a line without one (a PHP stack trace, the
    supervisor log's raw output) gets the time of the line before it."""
    out, last = [], default
    for text in lines:
        when = line_time(text)
        last = when if when is not None else last
        out.append(Line(last, tag, text[:LINE_LIMIT]))
    return out


def merge(groups: Iterable[list[Line]], count: int) -> list[Line]:
    """Pure: the last `count` lines of all groups, in time order (stable)."""
    merged = sorted((ln for g in groups for ln in g), key=lambda ln: ln.when)
    return merged[-count:] if count > 0 else []


def _tail(path: str, count: int) -> tuple[list[str], float]:
    """Last `count` lines of the file (at most TAIL_BYTES read) and its mtime."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(size - TAIL_BYTES, 0))
            data = fh.read(TAIL_BYTES)
            mtime = os.fstat(fh.fileno()).st_mtime
    except FileNotFoundError:
        return [], 0.0
    except OSError as err:
        raise PhphostError(f"cannot read {path}: {err.strerror or err} (run as root)") from err
    lines = data.decode("utf-8", "replace").splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]                      # the first one is cut
    return lines[-count:], mtime


def shown(text: str) -> str:
    """Pure: text with every control character written as \\xNN (tab kept)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


def format_line(line: Line, width: int) -> str:
    return f"{line.tag:<{width}} {shown(line.text)}"


def show(files: list[LogFile], count: int) -> list[str]:
    groups = []
    for f in files:
        lines, _mtime = _tail(f.path, count)
        groups.append(timed(f.tag, lines))
    width = max((len(f.tag) for f in files), default=0)
    return [format_line(ln, width) for ln in merge(groups, count)]


class _Follower:
    """New lines of one file, through rotation (a new inode is read from its start)."""

    def __init__(self, f: LogFile) -> None:
        self.file = f
        self.ident: tuple[int, int] | None = None
        self.offset = 0
        self.rest = b""
        st = self._stat()
        if st is not None:
            self.ident, self.offset = (st.st_dev, st.st_ino), st.st_size

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.file.path)
        except OSError:
            return None

    def poll(self) -> list[str]:
        st = self._stat()
        if st is None:
            return []
        if (st.st_dev, st.st_ino) != self.ident or st.st_size < self.offset:
            self.ident, self.offset, self.rest = (st.st_dev, st.st_ino), 0, b""
        try:
            with open(self.file.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(FOLLOW_CHUNK)
        except OSError:
            return []
        self.offset += len(data)
        parts = (self.rest + data).split(b"\n")
        self.rest = parts.pop()[-LINE_LIMIT:]
        return [p.decode("utf-8", "replace")[:LINE_LIMIT] for p in parts]


def follow(files: list[LogFile], interval: float = 0.5) -> None:
    """Print new lines of every file as they arrive, until interrupted."""
    width = max((len(f.tag) for f in files), default=0)
    followers = [_Follower(f) for f in files]
    while True:
        for fl in followers:
            for text in fl.poll():
                sys.stdout.write(f"{fl.file.tag:<{width}} {shown(text)}\n")
        sys.stdout.flush()
        time.sleep(interval)
