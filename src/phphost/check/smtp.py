"""A capturing SMTP sink for `phphost check --smtp-sink HOST:PORT`: it accepts every
message on a loopback address while check runs, so the mail test can look at the
envelope (MAIL FROM, RCPT TO) and headers a pool's jail mailer really sent.

The protocol is a small pure state machine (`Session`, tested without sockets); the
server around it is a thread on a loopback socket. Nothing is relayed anywhere.
"""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import threading
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import default as email_policy

from phphost.launcher.mailer import split_server

MAX_MESSAGE = 1 << 20
NAME = "phphost-check"


@dataclass(frozen=True)
class Message:
    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes

    def header(self, name: str) -> str | None:
        """The first header `name` (unfolded), None when missing."""
        parsed = BytesHeaderParser(policy=email_policy).parsebytes(self.data)
        value = parsed.get(name)
        return None if value is None else " ".join(str(value).split())


def _address(arg: str, verb: str) -> str | None:
    """'FROM:<a@b> BODY=8BITMIME' -> 'a@b' (None: malformed)."""
    head, sep, rest = arg.partition(":")
    if not sep or head.strip().upper() != verb:
        return None
    rest = rest.strip()
    if not rest.startswith("<") or ">" not in rest:
        return None
    return rest[1:rest.index(">")]


class Session:
    """One SMTP conversation: feed it lines (without CRLF), get the replies."""

    def __init__(self) -> None:
        self.mail_from: str | None = None
        self.rcpt_to: list[str] = []
        self.in_data = False
        self.data = bytearray()
        self.done: list[Message] = []
        self.closed = False

    def greeting(self) -> str:
        return f"220 {NAME} ESMTP sink"

    def _reset(self) -> None:
        self.mail_from, self.rcpt_to, self.data = None, [], bytearray()

    def _data_line(self, line: bytes) -> list[str]:
        if line == b".":
            self.in_data = False
            self.done.append(Message(self.mail_from or "", tuple(self.rcpt_to),
                                     bytes(self.data)))
            self._reset()
            return ["250 2.0.0 captured"]
        if len(self.data) < MAX_MESSAGE:
            self.data += (line[1:] if line.startswith(b".") else line) + b"\r\n"
        return []

    def feed(self, line: bytes) -> list[str]:
        if self.in_data:
            return self._data_line(line)
        text = line.decode("utf-8", "replace")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb == "EHLO":
            return [f"250-{NAME}", "250-8BITMIME", "250 SIZE 1048576"]
        if verb in ("HELO", "NOOP"):
            return [f"250 {NAME}"]
        if verb == "RSET":
            self._reset()
            return ["250 2.0.0 ok"]
        if verb == "QUIT":
            self.closed = True
            return ["221 2.0.0 bye"]
        if verb == "MAIL":
            addr = _address(arg, "FROM")
            if addr is None:
                return ["501 5.5.4 syntax: MAIL FROM:<address>"]
            self._reset()
            self.mail_from = addr
            return ["250 2.1.0 ok"]
        if verb == "RCPT":
            addr = _address(arg, "TO")
            if self.mail_from is None or addr is None:
                return ["503 5.5.1 MAIL FROM:<address> first, then RCPT TO:<address>"]
            self.rcpt_to.append(addr)
            return ["250 2.1.5 ok"]
        if verb == "DATA":
            if not self.rcpt_to:
                return ["503 5.5.1 RCPT TO first"]
            self.in_data = True
            return ["354 end with <CRLF>.<CRLF>"]
        return ["502 5.5.2 not implemented"]


def loopback_address(server: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port); HOST must be a loopback IP address."""
    host, port = split_server(server)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError as err:
        raise ValueError(f"--smtp-sink {server}: give a loopback IP address, e.g. "
                         "127.0.0.1:2525") from err
    if not ip.is_loopback:
        raise ValueError(f"--smtp-sink {server}: {host} is not a loopback address; "
                         "the sink only listens on 127.0.0.0/8 or ::1")
    return host, port


class _Handler(socketserver.StreamRequestHandler):
    server: Sink

    def handle(self) -> None:
        session = Session()
        self.wfile.write(f"{session.greeting()}\r\n".encode())
        while not session.closed:
            raw = self.rfile.readline(MAX_MESSAGE)
            if not raw:
                break
            replies = session.feed(raw.rstrip(b"\r\n"))
            with self.server.lock:
                self.server.messages += session.done
            session.done = []
            for reply in replies:
                self.wfile.write(f"{reply}\r\n".encode())


class Sink(socketserver.ThreadingTCPServer):
    """Listens on a loopback HOST:PORT in a thread until close()."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, server: str) -> None:
        host, port = loopback_address(server)
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lock = threading.Lock()
        self.messages: list[Message] = []
        super().__init__((host, port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def captured(self) -> list[Message]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)
