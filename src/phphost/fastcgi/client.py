"""Thin FastCGI client over a Unix socket: one request per connection."""

from __future__ import annotations

import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

from phphost.errors import FastCGIError
from phphost.fastcgi import protocol as p

REQUEST_ID = 1
_REMEDY = "is the pool's master running? see `phphost status`"


@dataclass(frozen=True)
class FcgiResponse:
    stdout: bytes
    stderr: bytes
    app_status: int
    protocol_status: int

    def http(self) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lowercase names, body) from the CGI response in stdout."""
        return split_cgi_response(self.stdout)


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    crlf = raw.find(b"\r\n\r\n")
    lf = raw.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf <= lf):
        return raw[:crlf], raw[crlf + 4 :]
    if lf >= 0:
        return raw[:lf], raw[lf + 2 :]
    return raw, b""


def _parse_status(value: str) -> int:
    code = value.strip().split(" ", 1)[0]
    if not (code.isdigit() and len(code) == 3):
        raise FastCGIError(f"FastCGI response has a malformed Status header {value!r}")
    return int(code)


def split_cgi_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Pure: CGI headers + body -> (status, headers, body). Status defaults to 200.

    Repeated headers are joined with ", " (so Set-Cookie values are lossy here).
    """
    head, body = _split_head(raw)
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise FastCGIError(f"FastCGI response has a malformed header line {line!r}")
        key, val = name.strip().lower(), value.strip()
        headers[key] = f"{headers[key]}, {val}" if key in headers else val
    status = _parse_status(headers["status"]) if "status" in headers else 200
    return status, headers, body


def build_request(params: Mapping[str, str], stdin: bytes = b"") -> bytes:
    """Pure: the full byte stream of one RESPONDER request."""
    return (
        p.encode_begin_request(REQUEST_ID, p.RESPONDER, keep_conn=False)
        + p.encode_stream(p.PARAMS, REQUEST_ID, p.encode_params(params))
        + p.encode_stream(p.STDIN, REQUEST_ID, stdin)
    )


class _Collector:
    """Folds records of our request into a response; done once END_REQUEST arrived."""

    def __init__(self, limit: int | None = None) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.end: p.EndRequest | None = None
        self.limit = limit

    def add(self, record: p.Record) -> None:
        if record.request_id != REQUEST_ID:
            return
        if record.type == p.STDOUT:
            self.stdout += record.content
        elif record.type == p.STDERR:
            self.stderr += record.content
        if self.limit is not None and len(self.stdout) + len(self.stderr) > self.limit:
            raise p.ProtocolError(f"the answer is larger than {self.limit} bytes")
        elif record.type == p.END_REQUEST:
            self.end = p.decode_end_request(record.content)

    def response(self) -> FcgiResponse:
        assert self.end is not None
        return FcgiResponse(
            stdout=bytes(self.stdout),
            stderr=bytes(self.stderr),
            app_status=self.end.app_status,
            protocol_status=self.end.protocol_status,
        )


def _read_response(sock: socket.socket, deadline: float,
                   limit: int | None = None) -> FcgiResponse:
    reader = p.RecordReader()
    collector = _Collector(limit)
    while collector.end is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no END_REQUEST before the deadline")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            reader.close()
            raise p.ProtocolError("connection closed before END_REQUEST")
        for record in reader.feed(chunk):
            collector.add(record)
    return collector.response()


def fcgi_request(
    socket_path: str,
    params: Mapping[str, str],
    stdin: bytes = b"",
    timeout: float = 5.0,
    limit: int | None = None,
) -> FcgiResponse:
    """Send one request to the FastCGI server at `socket_path` and read its whole answer.
    `limit`: the most stdout + stderr bytes accepted (a ProtocolError past it), for
    answers from a pool that may be hostile."""
    deadline = time.monotonic() + timeout
    payload = build_request(params, stdin)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(payload)
            return _read_response(sock, deadline, limit)
    except TimeoutError as err:
        raise FastCGIError(
            f"FastCGI request to {socket_path} timed out after {timeout:g}s: "
            f"the pool may be saturated or stuck. {_REMEDY}"
        ) from err
    except OSError as err:
        raise FastCGIError(
            f"cannot talk FastCGI to {socket_path}: {err.strerror or err}. {_REMEDY}"
        ) from err
    except p.ProtocolError as err:
        raise FastCGIError(f"bad FastCGI answer from {socket_path}: {err}. {_REMEDY}") from err
