"""supervisord's XML-RPC interface over its Unix socket, for work on many programs
at once: one connection instead of one `supervisorctl` process per program, calls
batched with `system.multicall`, stops and starts issued without waiting and then
watched together against one honest deadline. (`supervisorctl update` of 300
programs stopped them one after another, about a second each, and timed out.)

Every program is addressed by its own name, never by process name."""

from __future__ import annotations

import time
import xmlrpc.client
from collections.abc import Iterable, Iterator, Sequence

from phphost import layout
from phphost.errors import HostError
from phphost.facts.supervisorrpc import proxy, socket_path

BATCH = 100                 # calls per system.multicall
# supervisord's fault codes (supervisor.xmlrpc.Faults) that mean "already so"
ALREADY = {60, 70, 90}      # ALREADY_STARTED, NOT_RUNNING, ALREADY_ADDED
BAD_NAME = 10
STOPPED = {"STOPPED", "EXITED", "FATAL"}
UP = {"RUNNING", "STARTING", "BACKOFF"}


def _chunks(items: Sequence[str], size: int = BATCH) -> Iterator[Sequence[str]]:
    for at in range(0, len(items), size):
        yield items[at:at + size]


def _call(method: str, names: Sequence[str], *extra: object) -> dict[str, object]:
    """`method(name, *extra)` for every name, batched; name -> result or fault dict."""
    out: dict[str, object] = {}
    try:
        server = proxy()
        for part in _chunks(list(names)):
            calls = [{"methodName": method, "params": [n, *extra]} for n in part]
            out.update(zip(part, server.system.multicall(calls), strict=True))
    except (OSError, xmlrpc.client.Error) as err:
        raise HostError(f"supervisord ({socket_path()}) did not answer {method} for "
                        f"{len(names)} program(s): {err}") from err
    return out


def _faults(results: dict[str, object], ignore: Iterable[int]) -> dict[str, str]:
    skip = set(ignore)
    return {name: str(r.get("faultString", r)) for name, r in results.items()
            if isinstance(r, dict) and "faultCode" in r and r["faultCode"] not in skip}


def states() -> dict[str, str]:
    """program name -> state name, for every program supervisord has."""
    try:
        info = proxy().supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error) as err:
        raise HostError(f"supervisord ({socket_path()}) did not answer: {err}") from err
    return {str(p["name"]): str(p["statename"]) for p in info}


def reread() -> tuple[set[str], set[str], set[str]]:
    """supervisord rereads its program files: (added, changed, removed) names."""
    try:
        [[added, changed, removed]] = proxy().supervisor.reloadConfig()
    except (OSError, xmlrpc.client.Error) as err:
        raise HostError(f"supervisord ({socket_path()}) could not reread its config: "
                        f"{err}") from err
    return set(added), set(changed), set(removed)


def wait_state(names: Iterable[str], wanted: set[str], what: str, timeout: float) -> None:
    """Until every named program is in one of the wanted states (gone counts as
    stopped), or HostError naming the programs still not there."""
    pending = set(names)
    deadline = time.monotonic() + timeout
    while pending:
        now = states()
        pending = {n for n in pending
                   if now.get(n, "STOPPED" if "STOPPED" in wanted else "") not in wanted}
        if not pending:
            return
        if time.monotonic() > deadline:
            shown = ", ".join(f"{n} ({now.get(n, 'gone')})" for n in sorted(pending)[:10])
            more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
            raise HostError(f"{len(pending)} program(s) did not {what} within {timeout:.0f}s: "
                            f"{shown}{more}. See `supervisorctl status` and {layout.LOG_DIR}/")
        time.sleep(0.5)     # each poll makes supervisord list every program


def stop(names: Sequence[str], timeout: float) -> None:
    """Stop these programs together (no wait per program), then wait for them all."""
    known = states()        # once: one answer lists every program (1 MB at 1,000)
    names = [n for n in names if n in known]
    if not names:
        return
    bad = _faults(_call("supervisor.stopProcess", names, False), ALREADY | {BAD_NAME})
    if bad:
        raise HostError("supervisord refused to stop: " + "; ".join(
            f"{n}: {f}" for n, f in sorted(bad.items())))
    wait_state(names, STOPPED, "stop", timeout)


ALREADY_STARTED = 60


def start(names: Sequence[str]) -> set[str]:
    """Ask supervisord to start these programs (not waiting: see wait_state and the
    masters' sockets). Returns those it found already started."""
    results = _call("supervisor.startProcess", names, False)
    bad = _faults(results, ALREADY)
    if bad:
        raise HostError("supervisord could not start: " + "; ".join(
            f"{n}: {f}" for n, f in sorted(bad.items())) + f". See {layout.LOG_DIR}/")
    return {n for n, r in results.items()
            if isinstance(r, dict) and r.get("faultCode") == ALREADY_STARTED}


def signal(names: Sequence[str], sig: str) -> None:
    """Send a signal (e.g. "USR2") to each named program's process."""
    bad = _faults(_call("supervisor.signalProcess", names, sig), ())
    if bad:
        raise HostError(f"supervisord could not send SIG{sig}: " + "; ".join(
            f"{n}: {f}" for n, f in sorted(bad.items())))


def update(names: Sequence[str], stop_timeout: float) -> None:
    """What `supervisorctl update NAMES` does, for many programs at once: reread;
    programs removed or changed among `names` are stopped together, then removed;
    changed and added ones are added (supervisord autostarts them)."""
    added, changed, removed = reread()
    wanted = set(names)
    stale = sorted((changed | removed) & wanted)
    stop(stale, stop_timeout)
    if stale:
        bad = _faults(_call("supervisor.removeProcessGroup", stale), {BAD_NAME})
        if bad:
            raise HostError("supervisord could not remove: " + "; ".join(
                f"{n}: {f}" for n, f in sorted(bad.items())))
    fresh = sorted((added | changed) & wanted)
    if fresh:
        bad = _faults(_call("supervisor.addProcessGroup", fresh), ALREADY)
        if bad:
            raise HostError("supervisord could not add: " + "; ".join(
                f"{n}: {f}" for n, f in sorted(bad.items())))
