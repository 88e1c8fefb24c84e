"""`phphost top`: every pool in one live table (rich), sortable, refreshing; plain
terminal control only, so it works over ssh and in tmux. `rows()` and
`render_text()` are pure; `run_live()` owns the terminal.

Keys: p pool, b busy, r req/s, e 503/s, s slow, m memory (sort by it; again to
reverse), q quit."""

from __future__ import annotations

import contextlib
import io
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from phphost.fastcgi.status import FpmStatus
from phphost.monitor.collect import PoolLogTail, PoolScraper, PoolView, Snapshot, take_snapshot
from phphost.monitor.collect import tree_rss as _tree_rss
from phphost.render.monitorconfig import MonitorConfig


@dataclass(frozen=True)
class TopRow:
    pool: str
    tenant: str
    state: str            # supervisord's state of the master; "ERROR" when FPM did not answer
    pm: str
    busy: int | None      # FPM active processes, minus our own status request
    idle: int | None
    max_children: int
    queued: int | None    # Apache connections waiting in the socket backlog
    rps: float | None     # requests accepted per second since the last refresh
    slow: int | None      # slow requests since the master started
    r503: float | None    # Apache's 503s per second for this pool since the last refresh
    memory: int | None    # bytes: the pool's cgroup, else resident memory of its processes
    error: str | None


SORT_KEYS = {"p": "pool", "b": "busy", "r": "rps", "e": "r503", "s": "slow", "m": "memory"}
COLUMNS = ("pool", "tenant", "state", "pm", "busy", "idle", "max", "queue", "req/s", "slow",
           "503/s", "mem")


def _rate(now: int, before: int | None, seconds: float, own: int = 0) -> float | None:
    if before is None or seconds <= 0:
        return None
    delta = now - before - own
    return max(delta, 0) / seconds if now >= before else now / seconds


def _memory(view: PoolView, rss: dict[str, int | None]) -> int | None:
    if view.cgroup is not None and view.cgroup.memory_bytes is not None:
        return view.cgroup.memory_bytes
    return rss.get(view.name)


def rows(cfg: MonitorConfig, cur: Snapshot, prev: Snapshot | None,
         rss: dict[str, int | None] | None = None) -> list[TopRow]:
    """Pure: one row per pool; rates from the previous snapshot (None on the first)."""
    rss = rss or {}
    seconds = cur.taken - prev.taken if prev else 0.0
    before = {v.name: v for v in prev.pools} if prev else {}
    out = []
    for view in cur.pools:
        info = cfg.pool(view.name)
        st, old = view.scrape.status, before.get(view.name)
        old_st = old.scrape.status if old else None
        same_master = st is not None and old_st is not None and old_st.start_time == st.start_time
        r503 = None
        if cur.requests is not None and prev is not None and prev.requests is not None:
            r503 = _rate(cur.requests.pool_total(view.name, 503),
                         prev.requests.pool_total(view.name, 503), seconds)
        state = view.program.state if view.program else "ABSENT"
        out.append(TopRow(
            pool=view.name, tenant=view.tenant,
            state=_state(state, st, view.scrape.quiet),
            pm=st.process_manager if st else (info.pm if info else "-"),
            busy=max(st.active_processes - 1, 0) if st else None,
            idle=st.idle_processes if st else None,
            max_children=info.max_children if info else 0,
            queued=view.load.queued if view.load else None,
            rps=_rate(st.accepted_conn, old_st.accepted_conn if same_master and old_st else None,
                      seconds, own=1) if st else None,
            slow=st.slow_requests if st else None,
            r503=r503, memory=_memory(view, rss), error=view.scrape.error))
    return out


def _state(program: str, st: FpmStatus | None, quiet: str | None) -> str:
    if quiet == "asleep":
        return "ASLEEP"
    if st is None and quiet is None and program == "RUNNING":
        return "ERROR"
    return program


def sort_rows(items: list[TopRow], key: str, reverse: bool) -> list[TopRow]:
    def value(row: TopRow) -> tuple[int, float | str]:
        v = getattr(row, key)
        if v is None:
            return (1, 0.0)          # unknown last, whichever the direction
        return (0, -v if reverse and not isinstance(v, str) else v)
    ordered = sorted(items, key=value)
    return ordered[::-1] if reverse and key == "pool" else ordered


def _num(value: float | int | None, fmt: str = "{}") -> str:
    return "-" if value is None else fmt.format(value)


def _mem(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "K", "M"):
        if size < 1024:
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}G"


def table(items: list[TopRow], key: str, reverse: bool, title: str = "") -> Table:
    # one space between columns: 80 terminal columns fit every column of a typical pool
    t = Table(title=title or None, title_justify="left", box=None, pad_edge=False,
              padding=(0, 1, 0, 0), header_style="bold reverse")
    sorted_col = {"pool": "pool", "busy": "busy", "rps": "req/s", "r503": "503/s",
                  "slow": "slow", "memory": "mem"}[key]
    for col in COLUMNS:
        head = f"{col}{'v' if reverse else '^'}" if col == sorted_col else col
        t.add_column(head, justify="left" if col in ("pool", "tenant", "state", "pm")
                     else "right", no_wrap=True)
    for r in items:
        state = Text(r.state, style="green" if r.state == "RUNNING" else "bold red")
        full = r.busy is not None and r.busy >= r.max_children
        t.add_row(r.pool, r.tenant, state, r.pm,
                  Text(_num(r.busy), style="bold yellow" if full else ""),
                  _num(r.idle), str(r.max_children), _num(r.queued), _num(r.rps, "{:.1f}"),
                  _num(r.slow),
                  Text(_num(r.r503, "{:.1f}"), style="bold red" if r.r503 else ""),
                  _mem(r.memory))
    return t


def _errors(items: list[TopRow]) -> Text:
    lines = [f"{r.pool}: {r.error}" for r in items if r.error]
    return Text("\n".join(lines)[:2000], style="red")


def view(items: list[TopRow], key: str, reverse: bool, snap: Snapshot) -> Group:
    title = (f"phphost top  {time.strftime('%H:%M:%S', time.localtime(snap.taken))}  "
             f"{len(items)} pools  sort: {key}  keys: p b r e s m sort, q quit")
    return Group(table(sort_rows(items, key, reverse), key, reverse, title), _errors(items))


def render_text(items: list[TopRow], key: str = "pool", reverse: bool = False,
                width: int = 120) -> str:
    """Pure: the table as plain text (for --once and tests)."""
    console = Console(file=io.StringIO(), width=width, color_system=None, force_terminal=False)
    console.print(table(sort_rows(items, key, reverse), key, reverse))
    errors = _errors(items)
    if errors.plain:
        console.print(errors)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def rows_json(items: list[TopRow]) -> list[dict[str, object]]:
    return [asdict(r) for r in items]


# --- sampling -------------------------------------------------------------------------------


class Sampler:
    def __init__(self, cfg: MonitorConfig) -> None:
        self.cfg = cfg
        self.scraper = PoolScraper()
        self.tail = PoolLogTail(cfg)
        self.prev: Snapshot | None = None

    def sample(self) -> tuple[list[TopRow], Snapshot]:
        snap = take_snapshot(self.cfg, self.scraper, self.tail)
        rss = {v.name: _tree_rss(v.program.pid) if v.program and v.program.pid else None
               for v in snap.pools}
        items = rows(self.cfg, snap, self.prev, rss)
        self.prev = snap
        return items, snap


def sample_twice(cfg: MonitorConfig, interval: float) -> list[TopRow]:
    """Two snapshots `interval` apart (rates need two)."""
    sampler = Sampler(cfg)
    sampler.sample()
    time.sleep(interval)
    items, _ = sampler.sample()
    sampler.scraper.close()
    return items


# --- the live view --------------------------------------------------------------------------


@contextlib.contextmanager
def _cbreak() -> Iterator[bool]:
    """Single key presses without Enter, when stdin is a terminal."""
    if not sys.stdin.isatty():
        yield False
        return
    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def _key(timeout: float, keys_on: bool) -> str | None:
    if not keys_on:
        time.sleep(timeout)
        return None
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    return os.read(sys.stdin.fileno(), 1).decode("latin-1") if ready else None


def next_sort(key: str, reverse: bool, pressed: str) -> tuple[str, bool]:
    """Pure: the sort after a key press (same key again flips the direction)."""
    wanted = SORT_KEYS.get(pressed.lower())
    if wanted is None:
        return key, reverse
    if wanted == key:
        return key, not reverse
    return wanted, wanted != "pool"           # numbers: biggest first


def run_live(cfg: MonitorConfig, interval: float, key: str, reverse: bool) -> None:
    sampler = Sampler(cfg)
    console = Console()
    items, snap = sampler.sample()
    with _cbreak() as keys_on, Live(view(items, key, reverse, snap), console=console,
                                     screen=True, auto_refresh=False) as live:
        deadline = time.monotonic() + interval
        while True:
            pressed = _key(max(deadline - time.monotonic(), 0.0), keys_on)
            if pressed in ("q", "Q", "\x03"):
                break
            if pressed:
                key, reverse = next_sort(key, reverse, pressed)
            if time.monotonic() >= deadline:
                items, snap = sampler.sample()
                deadline = time.monotonic() + interval
            live.update(view(items, key, reverse, snap), refresh=True)
    sampler.scraper.close()
