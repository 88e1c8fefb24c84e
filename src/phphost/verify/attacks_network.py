"""Network: from inside each pool, open TCP connections its network policy does not
allow (docs/network.md): a loopback port the pool did not declare (one verify listens
on, and Apache's own port), and the SMTP ports 25, 465 and 587 directly (mail must go
through the jail's sendmail). Blocked when every connection is refused. And the other
way round: PHP listens on a loopback port and verify connects to it; blocked when
verify's client never gets the pool's answer.

The probe's word is not trusted (verify/answers.py): verify listens itself on each
target it can bind (the undeclared port always; 25/465/587 when free) and counts the
connections that reached it, so a pool that answers "refused" for a connection that
arrived is still BREACHED. A target something else listens on (an MTA on port 25,
Apache) is judged by the probe's answer alone, which a pool can only turn into a
false BREACHED, never a false blocked on our own listeners."""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from phphost.launcher import mailer
from phphost.spec.model import Pool
from phphost.verify.answers import HostileAnswer
from phphost.verify.attack import Attack
from phphost.verify.context import Ctx
from phphost.verify.errors import VerifyError
from phphost.verify.result import Result, judged

FAMILY = "network"
LOOPBACK = "127.0.0.1"
LOOPBACK6 = "::1"          # skipped when the host has no IPv6 loopback to listen on
MAIL_PORTS = (25, 465, 587)

Target = tuple[str, int]


class Listener:
    """A loopback TCP listener that never accepts while the probe runs: the kernel
    completes handshakes into its backlog, counted afterwards."""

    def __init__(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.host = host
        self.port = int(self.sock.getsockname()[1])

    def arrived(self) -> int:
        count = 0
        while True:
            try:
                conn, _peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def listeners(targets: Sequence[Target]) -> Iterator[dict[Target, Listener]]:
    """Listen on every target that is free (port 0: any free port, keyed by the port
    it got); targets something else holds are left to it."""
    got: dict[Target, Listener] = {}
    try:
        for host, port in targets:
            try:
                lst = Listener(host, port)
            except OSError:
                continue      # taken: an MTA, Apache, the check's sink
            got[(host, lst.port)] = lst
        yield got
    finally:
        for lst in got.values():
            lst.close()


def results(out: dict[str, Any], sent: Sequence[Target], pool: str) -> list[dict[str, Any]]:
    """net.php's results: one per target sent, echoing it, with a boolean `connected`."""
    res = out.get("results")
    if not isinstance(res, list) or len(res) != len(sent):
        raise HostileAnswer("net.php", pool, "a result list that does not match the targets")
    checked = []
    for (host, port), got in zip(sent, res, strict=True):
        if (not isinstance(got, dict) or got.get("host") != host or got.get("port") != port
                or not isinstance(got.get("connected"), bool)):
            raise HostileAnswer("net.php", pool, f"a result that is not about {host}:{port}")
        error = got.get("error")
        checked.append({"host": host, "port": port, "connected": got["connected"],
                        "error": error[:200] if isinstance(error, str) else ""})
    return checked


def _attempt(ctx: Ctx, wanted: Sequence[Target]) -> tuple[list[str], str]:
    """(breaches, how the refusals looked) of connecting from the pool to `wanted`."""
    with listeners(wanted) as ours:
        sent = [*ours, *(t for t in wanted if t not in ours and t[1] != 0)]
        out = ctx.probe("net.php", {"targets": [list(t) for t in sent]})
        arrived = {t: lst.arrived() for t, lst in ours.items()}
    hits = []
    errors = []
    for r in results(out, sent, ctx.pool.name):
        target = (r["host"], r["port"])
        where = f"{r['host']}:{r['port']}"
        if arrived.get(target):
            hits.append(f"{where} reached (verify's listener accepted {arrived[target]})")
        elif r["connected"]:
            hits.append(f"{where} connected")
        else:
            errors.append(f"{where}: {r['error'] or 'refused'}")
    return hits, "; ".join(errors)


def undeclared_targets(pool: Pool, http_port: int) -> list[Target]:
    """A free loopback port on 127.0.0.1 and ::1 (0: verify's own listener) and Apache's
    port, unless the pool's network.allow names it."""
    allowed = set(pool.network.allow)
    out: list[Target] = [(LOOPBACK, 0), (LOOPBACK6, 0)]
    if f"{LOOPBACK}:{http_port}" not in allowed:
        out.append((LOOPBACK, http_port))
    return out


def smtp_targets(pool: Pool) -> list[Target]:
    """Ports 25, 465, 587 on loopback, and the pool's own relay (jail.smtp) when it is
    an address: PHP must not speak SMTP to it, only the jail's sendmail may."""
    out: list[Target] = [(LOOPBACK, p) for p in MAIL_PORTS]
    host, port = mailer.split_server(pool.jail.smtp)
    if "mail" in pool.jail.features and (host, port) not in out and _ipv4(host):
        out.append((host, port))
    return out


def _ipv4(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 4
    except ValueError:
        return False


def loopback_port(ctx: Ctx) -> Result:
    targets = undeclared_targets(ctx.pool, ctx.model.apache.http_port)
    hits, refused = _attempt(ctx, targets)
    return judged(hits, f"PHP in pool {ctx.pool.name}: fsockopen to undeclared loopback "
                  f"ports verify listens on (127.0.0.1, ::1) and to Apache's {LOOPBACK}:"
                  f"{ctx.model.apache.http_port}", f"all refused ({refused})")


def smtp_direct(ctx: Ctx) -> Result:
    targets = smtp_targets(ctx.pool)
    hits, refused = _attempt(ctx, targets)
    shown = ", ".join(f"{h}:{p}" for h, p in targets)
    return judged(hits, f"PHP in pool {ctx.pool.name}: fsockopen to {shown} (SMTP without "
                  "the jail's sendmail)", f"all refused ({refused})")


SERVE_WAIT = 2.5         # seconds verify's client keeps trying (serve.php accepts as long)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class Client(threading.Thread):
    """Connects to the pool's listener until it answers or SERVE_WAIT passes; keeps
    what it read and how its last try ended."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.got = b""
        self.last = "no try"

    def run(self) -> None:
        deadline = time.monotonic() + SERVE_WAIT
        while time.monotonic() < deadline and not self.got:
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1.0) as conn:
                    self.got = conn.recv(256)
                    self.last = "connected"
            except OSError as err:
                self.last = type(err).__name__
                time.sleep(0.1)


def serve(ctx: Ctx) -> Result:
    port, token = free_port(), secrets.token_hex(8)
    client = Client(port)
    client.start()
    try:
        out = ctx.probe("serve.php", {"port": port, "token": token})
    finally:
        client.join(SERVE_WAIT + 2)
    what = f"PHP in pool {ctx.pool.name} listens on {LOOPBACK}:{port}; verify connects"
    if token.encode() in client.got:
        return judged([f"verify's client read the pool's answer on port {port}"], what, "")
    if out.get("listening") is not True:
        raise VerifyError(f"network.serve: PHP in pool {ctx.pool.name} could not listen on "
                          f"port {port} ({str(out.get('error'))[:100]}); the attack could "
                          "not run")
    return judged([], what, f"no answer reached verify (its last try: {client.last})")


ATTACKS = (
    Attack("network.loopback-port", FAMILY, "connect to a loopback port the pool did not "
           "declare", "pool", loopback_port),
    Attack("network.smtp-direct", FAMILY, "speak SMTP directly (ports 25/465/587, the relay)",
           "pool", smtp_direct),
    Attack("network.serve", FAMILY, "serve on a port: answer a connection someone else "
           "opened", "pool", serve),
)
