"""Reading every source the monitor shows, into one `Snapshot`. Each source is
read defensively: a pool's answers are untrusted (bounded sizes, typed parsing),
one slow or dead pool costs that pool's entry, never the whole snapshot (pools are
asked concurrently, each with its own deadline), and a source that does not exist
on this host (cgroups, a run never made) is left out.

Pure parts (parse_ss, parse_pool_line, parse_runs, cgroup readers on text) are
unit-tested; the rest reads the host."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from phphost import layout
from phphost.errors import FastCGIError
from phphost.facts.parse import ProgramStatus, parse_supervisorctl_status
from phphost.fastcgi.client import fcgi_request
from phphost.fastcgi.status import FpmStatus, parse_fpm_status
from phphost.render.monitorconfig import POOL_LOG, MonitorConfig

STATUS_LIMIT = 1 << 20          # bytes of FPM status accepted from one pool
MAX_PROCESSES = 1024            # per-process entries kept per pool
CMD_OUTPUT_LIMIT = 8 << 20      # bytes of ss / supervisorctl output read
LOG_CHUNK = 8 << 20             # bytes of the pool log read per poll; more is skipped
LINE_LIMIT = 4096
# where a pool's cgroup would be (none exist yet: phphost does not make them)


# --- FPM status ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolScrape:
    pool: str
    status: FpmStatus | None
    error: str | None
    seconds: float
    # not asked, so as not to wake it: "asleep" (socket-activated, no master) or
    # "no workers" (an ondemand master without children: asking would start one)
    quiet: str | None = None


def _status_params(path: str) -> dict[str, str]:
    return {"SCRIPT_NAME": path, "SCRIPT_FILENAME": path, "REQUEST_METHOD": "GET",
            "QUERY_STRING": "json&full", "REQUEST_URI": f"{path}?json&full",
            "SERVER_PROTOCOL": "HTTP/1.1", "GATEWAY_INTERFACE": "CGI/1.1"}


def fetch_status(socket_path: str, timeout: float) -> FpmStatus:
    """The pool's full JSON status, at most STATUS_LIMIT bytes, within `timeout`."""
    resp = fcgi_request(socket_path, _status_params(layout.STATUS_PATH), timeout=timeout,
                        limit=STATUS_LIMIT)
    code, _headers, body = resp.http()
    if code != 200:
        raise FastCGIError(f"{socket_path} answered HTTP {code} for {layout.STATUS_PATH}")
    status = parse_fpm_status(body, where=socket_path)
    if len(status.processes) > MAX_PROCESSES:
        raise FastCGIError(f"{socket_path} lists {len(status.processes)} processes")
    return status


def _one_pool(pool: str, socket_path: str, timeout: float) -> PoolScrape:
    start = time.monotonic()
    try:
        status: FpmStatus | None = fetch_status(socket_path, timeout)
        error = None
    except FastCGIError as err:
        status, error = None, str(err)
    except (ValueError, UnicodeDecodeError) as err:      # anything odd in the answer
        status, error = None, f"unreadable status from {socket_path}: {err}"
    return PoolScrape(pool, status, error, time.monotonic() - start)


class PoolScraper:
    """Asks every pool at once (bounded threads); a pool that has not answered by
    its deadline is reported as an error while the others' answers are kept."""

    def __init__(self, workers: int = 16) -> None:
        self._pool = cf.ThreadPoolExecutor(max_workers=workers,
                                           thread_name_prefix="phphost-scrape")

    def scrape(self, pools: Iterable[tuple[str, str]], timeout: float) -> dict[str, PoolScrape]:
        started = time.monotonic()
        futures = {self._pool.submit(_one_pool, name, sock, timeout): name
                   for name, sock in pools}
        done, pending = cf.wait(futures, timeout=timeout + 0.5)
        out = {futures[f]: f.result() for f in done}
        for f in pending:
            f.cancel()
            name = futures[f]
            out[name] = PoolScrape(name, None, f"no answer within {timeout:g}s",
                                   time.monotonic() - started)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# --- commands (argv lists, bounded time and output) -----------------------------------------


def _command(argv: list[str], timeout: float) -> str | None:
    """stdout of argv, or None when it cannot run, fails or takes too long."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode not in (0, 3):       # supervisorctl status: 3 = some not running
        return None
    return proc.stdout[:CMD_OUTPUT_LIMIT].decode("utf-8", "replace")


def read_programs(timeout: float) -> dict[str, ProgramStatus] | None:
    """supervisord's programs, or None when supervisord does not answer."""
    text = _command(["supervisorctl", "-c", layout.SUPERVISOR_MAIN_CONF, "status"], timeout)
    return None if text is None else parse_supervisorctl_status(text)


@dataclass(frozen=True)
class SocketLoad:
    queued: int          # connections waiting in the listen backlog (FPM shows 0 for these)
    accepted: int        # connections a worker has accepted


def parse_ss(text: str, sockets: Iterable[str]) -> dict[str, SocketLoad]:
    """Pure: `ss -xanH` output -> load of each listening socket path in `sockets`.
    Only root and www-data (Apache) may connect to a pool socket, so its
    connections are Apache's requests in flight (and phphost's own status asks)."""
    wanted = set(sockets)
    queued: dict[str, int] = {}
    accepted: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[0] != "u_str" or parts[4] not in wanted:
            continue
        if parts[1] == "LISTEN" and parts[2].isdigit():
            queued[parts[4]] = int(parts[2])
        elif parts[1] == "ESTAB":
            accepted[parts[4]] = accepted.get(parts[4], 0) + 1
    return {s: SocketLoad(queued.get(s, 0), accepted.get(s, 0)) for s in queued}


def read_socket_load(sockets: Iterable[str], timeout: float) -> dict[str, SocketLoad]:
    text = _command(["ss", "-xanH"], timeout)
    return {} if text is None else parse_ss(text, sockets)


# --- Apache's pool log ----------------------------------------------------------------------

_POOL_IN_HANDLER = re.compile(r"\|fcgi://([a-z][a-z0-9_-]{0,30})/$")


@dataclass(frozen=True)
class PoolRequest:
    pool: str
    site: str
    status: int
    micros: int


def parse_pool_line(line: str, pools: frozenset[str],
                    sites: Mapping[str, str]) -> PoolRequest | None:
    """Pure: one line of the pool log ("SECS STATUS MICROS SERVERNAME HANDLER") ->
    the request, or None for anything malformed or of a pool not in the config."""
    parts = line.split(" ")
    if len(parts) != 5 or len(line) > LINE_LIMIT:
        return None
    _sec, status, micros, vhost, handler = parts
    match = _POOL_IN_HANDLER.search(handler)
    if not (status.isdigit() and micros.isdigit() and match and match[1] in pools):
        return None
    code = int(status)
    if not 100 <= code <= 599:
        return None
    return PoolRequest(match[1], sites.get(vhost, ""), code, min(int(micros), 10**12))


@dataclass
class RequestCounts:
    """Monotonic counters since this process started reading the log."""

    by_code: dict[tuple[str, str, int], int] = field(default_factory=dict)   # pool, site, code
    micros: dict[str, int] = field(default_factory=dict)                     # pool -> sum
    skipped_bytes: int = 0
    bad_lines: int = 0

    def add(self, req: PoolRequest) -> None:
        key = (req.pool, req.site, req.status)
        self.by_code[key] = self.by_code.get(key, 0) + 1
        self.micros[req.pool] = self.micros.get(req.pool, 0) + req.micros

    def pool_total(self, pool: str, code: int | None = None) -> int:
        return sum(n for (p, _s, c), n in self.by_code.items()
                   if p == pool and (code is None or c == code))


class PoolLogTail:
    """Follows Apache's pool log from its end (at start) through rotation: a new
    inode or a shorter file is read from its beginning. Thread-safe."""

    def __init__(self, cfg: MonitorConfig, path: str = POOL_LOG) -> None:
        self.path = path
        self.counts = RequestCounts()
        self._pools = frozenset(p.name for p in cfg.pools)
        self._sites = {s.server_name: s.name for s in cfg.sites}
        self._lock = threading.Lock()
        self._inode: tuple[int, int] | None = None
        self._offset = 0
        self._rest = b""
        st = self._stat()
        if st is not None:
            self._inode, self._offset = (st.st_dev, st.st_ino), st.st_size

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except OSError:
            return None

    def poll(self) -> RequestCounts:
        """Read what was appended since the last poll; a copy of the counters."""
        with self._lock:
            self._poll()
            c = self.counts
            return RequestCounts(dict(c.by_code), dict(c.micros), c.skipped_bytes, c.bad_lines)

    def _poll(self) -> None:
        st = self._stat()
        if st is None:
            return
        if (st.st_dev, st.st_ino) != self._inode or st.st_size < self._offset:
            self._inode, self._offset, self._rest = (st.st_dev, st.st_ino), 0, b""
        if st.st_size - self._offset > LOG_CHUNK:
            self.counts.skipped_bytes += st.st_size - LOG_CHUNK - self._offset
            self._offset, self._rest = st.st_size - LOG_CHUNK, b""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read(LOG_CHUNK)
        except OSError:
            return
        self._offset += len(data)
        self._feed(self._rest + data)

    def _feed(self, data: bytes) -> None:
        lines = data.split(b"\n")
        self._rest = lines.pop()
        if len(self._rest) > LINE_LIMIT:
            self._rest = b""
            self.counts.bad_lines += 1
        for raw in lines:
            req = parse_pool_line(raw.decode("utf-8", "replace"), self._pools, self._sites)
            if req is None:
                self.counts.bad_lines += 1 if raw else 0
            else:
                self.counts.add(req)


# --- cgroups, jails, runs -------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupUsage:
    memory_bytes: int | None
    cpu_seconds: float | None
    pids: int | None


def _read_small(path: str, limit: int = 65536) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return None


def _int_text(text: str | None) -> int | None:
    value = (text or "").strip()
    return int(value) if value.isdigit() else None


def parse_cpu_stat(text: str | None) -> float | None:
    """Pure: seconds of CPU from cgroup v2's cpu.stat (usage_usec)."""
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value) / 1e6
    return None


def read_cgroup(pool: str) -> CgroupUsage | None:
    """The pool's cgroup v2 usage, or None when phphost made no cgroup for it."""
    for pattern in layout.CGROUP_DIRS:
        base = pattern.format(pool=pool)
        if os.path.isdir(base):
            return CgroupUsage(_int_text(_read_small(f"{base}/memory.current")),
                               parse_cpu_stat(_read_small(f"{base}/cpu.stat")),
                               _int_text(_read_small(f"{base}/pids.current")))
    return None


def jail_built(pool: str, root: str = layout.JAILS_DIR) -> float | None:
    """When the pool's jail last changed: the newest mtime of its root and top-level
    entries (lstat: nothing in the jail is followed). None when it has no jail."""
    base = f"{root}/{pool}"
    try:
        times = [os.lstat(base).st_mtime]
        with os.scandir(base) as entries:
            times += [e.stat(follow_symlinks=False).st_mtime for e in entries]
    except OSError:
        return None
    return max(times)


@dataclass(frozen=True)
class RunRecord:
    command: str
    finished: float      # unix time
    seconds: float
    exit_code: int


def parse_runs(text: str | None) -> dict[str, RunRecord]:
    """Pure: runs.json (see monitor.runs) -> the last run of each command."""
    try:
        raw = json.loads(text or "{}")
    except ValueError:
        return {}
    out: dict[str, RunRecord] = {}
    if not isinstance(raw, dict):
        return out
    for cmd, rec in raw.items():
        if not (isinstance(cmd, str) and isinstance(rec, dict)):
            continue
        fin, secs, code = rec.get("finished"), rec.get("seconds"), rec.get("exit_code")
        if (all(isinstance(v, int | float) and not isinstance(v, bool) for v in (fin, secs))
                and isinstance(code, int) and not isinstance(code, bool)):
            out[cmd] = RunRecord(cmd, float(fin), float(secs), code)  # type: ignore[arg-type]
    return out


def read_runs(path: str = layout.RUNS_FILE) -> dict[str, RunRecord]:
    return parse_runs(_read_small(path))


# --- the snapshot ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolView:
    name: str
    tenant: str
    program: ProgramStatus | None      # supervisord's view of the master
    scrape: PoolScrape
    load: SocketLoad | None
    cgroup: CgroupUsage | None
    jail_built: float | None


@dataclass(frozen=True)
class Snapshot:
    taken: float                        # unix time
    pools: tuple[PoolView, ...]
    supervisor_up: bool
    requests: RequestCounts | None      # None: no pool log on this host
    runs: dict[str, RunRecord]
    seconds: float


def take_snapshot(cfg: MonitorConfig, scraper: PoolScraper,
                  tail: PoolLogTail | None) -> Snapshot:
    start = time.monotonic()
    timeout = cfg.pool_timeout
    programs = read_programs(timeout)
    quiet = {p.name: q for p in cfg.pools
             if (q := quiet_pool((programs or {}).get(layout.program_name(p.name)), p.pm))}
    scrapes = scraper.scrape(((p.name, p.socket) for p in cfg.pools if p.name not in quiet),
                             timeout)
    scrapes |= {name: PoolScrape(name, None, None, 0.0, q) for name, q in quiet.items()}
    load = read_socket_load((p.socket for p in cfg.pools), timeout)
    views = tuple(
        PoolView(p.name, p.tenant, (programs or {}).get(layout.program_name(p.name)),
                 scrapes[p.name], load.get(p.socket), read_cgroup(p.name),
                 jail_built(p.name) if p.jailed else None)
        for p in cfg.pools)
    requests = tail.poll() if tail is not None and os.path.exists(tail.path) else None
    return Snapshot(time.time(), views, programs is not None, requests, read_runs(),
                    time.monotonic() - start)


def quiet_pool(program: ProgramStatus | None, pm: str) -> str | None:
    """Why a pool must not be asked for its status (asking would wake its master or
    start a worker), read from /proc only; None: ask it."""
    if program is None or program.state != "RUNNING" or program.pid is None:
        return None
    masters = _children(program.pid)
    if not masters:
        return "asleep" if os.path.exists(f"/proc/{program.pid}") else None
    if pm == "ondemand" and not _children(masters[0]):
        return "no workers"
    return None


# --- processes (phphost top's memory column when there are no cgroups) ----------------------

MAX_TREE = 4096


def _children(pid: int) -> list[int]:
    text = _read_small(f"/proc/{pid}/task/{pid}/children") or ""
    return [int(x) for x in text.split() if x.isdigit()]


def parse_vmrss(text: str | None) -> int:
    """Pure: bytes of VmRSS from /proc/PID/status (0 when absent: a kernel thread)."""
    for line in (text or "").splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else 0
    return 0


def tree_rss(pid: int) -> int | None:
    """Resident memory of `pid` (a pool's launcher) and every process below it."""
    if not os.path.exists(f"/proc/{pid}"):
        return None
    total, todo, seen = 0, [pid], 0
    while todo and seen < MAX_TREE:
        current = todo.pop()
        seen += 1
        total += parse_vmrss(_read_small(f"/proc/{current}/status"))
        todo += _children(current)
    return total
