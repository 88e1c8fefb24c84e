"""HTTP from outside, the way a visitor reaches a site: raw requests to Apache on
127.0.0.1 with the site's Host header (HTTP/1.0, so no chunking and the server
closes). Raw, because the attacks need request lines that ordinary clients refuse
to send (absolute URIs, CONNECT, %0a). Loopback only, always.

Also a tiny loopback listener that records whether anything connected to it: the
oracle for forward-proxy attacks."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from phphost.spec.model import Model, Site

LOOPBACK = "127.0.0.1"
TIMEOUT = 15.0
MAX_BODY = 1 << 20


@dataclass(frozen=True)
class HttpResponse:
    status: int            # 0: no parsable answer
    head: str
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def brief(self, limit: int = 120) -> str:
        """'HTTP 403 <title or start of body>' for evidence lines."""
        title = re.search(r"<title>(.*?)</title>", self.text, re.I | re.S)
        text = " ".join((title.group(1) if title else self.text).split())
        more = "..." if len(text) > limit else ""
        return f"HTTP {self.status} {text[:limit]!r}{more}" if text else f"HTTP {self.status}"


def parse_response(raw: bytes) -> HttpResponse:
    """Pure: status line + headers + body."""
    head, _sep, body = raw.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    parts = text.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return HttpResponse(status, text, body)


def build_request(method: str, target: str, host: str,
                  headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """Pure: an HTTP/1.0 request. `target` is sent as is (already %-encoded)."""
    lines = [f"{method} {target} HTTP/1.0", f"Host: {host}", "Connection: close",
             *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def exchange(request: bytes, port: int, tls_name: str | None = None) -> HttpResponse:
    """Send one request to 127.0.0.1:port, read until the server closes."""
    with socket.create_connection((LOOPBACK, port), timeout=TIMEOUT) as raw_sock:
        sock: socket.socket = raw_sock
        if tls_name is not None:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE   # our own host on loopback; only SNI matters
            sock = ctx.wrap_socket(raw_sock, server_hostname=tls_name)
        sock.sendall(request)
        chunks: list[bytes] = []
        while sum(map(len, chunks)) < MAX_BODY:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return parse_response(b"".join(chunks))


class Web:
    def __init__(self, model: Model) -> None:
        self.model = model

    def endpoint(self, site: Site) -> tuple[int, str | None]:
        """(port, TLS server name or None) where the site's content is served."""
        if site.tls is not None:
            return self.model.apache.https_port, site.server_name
        return self.model.apache.http_port, None

    def request(self, site: Site, method: str, target: str,
                headers: Sequence[tuple[str, str]] = ()) -> HttpResponse:
        port, tls = self.endpoint(site)
        return exchange(build_request(method, target, site.server_name, headers), port, tls)

    def get(self, site: Site, target: str,
            headers: Sequence[tuple[str, str]] = ()) -> HttpResponse:
        return self.request(site, "GET", target, headers)


@dataclass
class Listener:
    """Accepts connections on 127.0.0.1:port and records the first bytes of each."""

    sock: socket.socket
    hits: list[bytes] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                try:
                    self.hits.append(conn.recv(200))
                    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nVERIFY-LISTENER-REACHED\n")
                except OSError:
                    self.hits.append(b"")


@contextmanager
def listener() -> Iterator[Listener]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(8)
    lst = Listener(sock)
    thread = threading.Thread(target=lst.serve, daemon=True)
    thread.start()
    try:
        yield lst
    finally:
        lst.stop.set()
        thread.join(timeout=3)
        sock.close()
