"""FastCGI 1.0 record codec. Pure: bytes in, bytes out, no sockets.

Spec: https://fastcgi-archives.github.io/FastCGI_Specification.html

A record is an 8-byte header (version, type, request id, content length,
padding length, reserved), the content (at most 65535 bytes) and padding.
We pad every record's content to a multiple of 8 bytes, as the spec recommends.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

VERSION_1 = 1
HEADER_LEN = 8
MAX_CONTENT = 0xFFFF
NULL_REQUEST_ID = 0

# record types
BEGIN_REQUEST = 1
ABORT_REQUEST = 2
END_REQUEST = 3
PARAMS = 4
STDIN = 5
STDOUT = 6
STDERR = 7
DATA = 8
GET_VALUES = 9
GET_VALUES_RESULT = 10
UNKNOWN_TYPE = 11

# roles
RESPONDER = 1
AUTHORIZER = 2
FILTER = 3

# begin-request flags
KEEP_CONN = 1

# end-request protocol status
REQUEST_COMPLETE = 0
CANT_MPX_CONN = 1
OVERLOADED = 2
UNKNOWN_ROLE = 3

_HEADER = struct.Struct(">BBHHBx")
_BEGIN_BODY = struct.Struct(">HB5x")
_END_BODY = struct.Struct(">IB3x")
_MAX_NV_LEN = 0x7FFFFFFF


class ProtocolError(ValueError):
    """Bytes that are not valid FastCGI (pure layer; the client wraps it)."""


@dataclass(frozen=True)
class Record:
    type: int
    request_id: int
    content: bytes
    version: int = VERSION_1


@dataclass(frozen=True)
class EndRequest:
    app_status: int
    protocol_status: int


def _padding(length: int) -> int:
    return -length % 8


def encode_record(record_type: int, request_id: int, content: bytes = b"") -> bytes:
    """Encode content as one or more records of `record_type`.

    Content longer than 65535 bytes is split over several records. Empty content
    gives exactly one empty record (for stream types, that is the end-of-stream marker).
    """
    if not 0 <= record_type <= 0xFF:
        raise ValueError(f"record type {record_type} out of range 0..255")
    if not 0 <= request_id <= 0xFFFF:
        raise ValueError(f"request id {request_id} out of range 0..65535")
    if not content:
        return _HEADER.pack(VERSION_1, record_type, request_id, 0, 0)
    out = bytearray()
    for start in range(0, len(content), MAX_CONTENT):
        chunk = content[start : start + MAX_CONTENT]
        pad = _padding(len(chunk))
        out += _HEADER.pack(VERSION_1, record_type, request_id, len(chunk), pad)
        out += chunk
        out += b"\0" * pad
    return bytes(out)


def encode_stream(record_type: int, request_id: int, content: bytes) -> bytes:
    """A whole stream: the content records (if any) followed by the empty terminator."""
    body = encode_record(record_type, request_id, content) if content else b""
    return body + encode_record(record_type, request_id, b"")


def encode_begin_request(request_id: int, role: int = RESPONDER, keep_conn: bool = False) -> bytes:
    body = _BEGIN_BODY.pack(role, KEEP_CONN if keep_conn else 0)
    return encode_record(BEGIN_REQUEST, request_id, body)


def decode_begin_request(content: bytes) -> tuple[int, bool]:
    """(role, keep_conn) from a BEGIN_REQUEST record's content."""
    if len(content) != _BEGIN_BODY.size:
        raise ProtocolError(f"BEGIN_REQUEST body is {len(content)} bytes, expected 8")
    role, flags = _BEGIN_BODY.unpack(content)
    return role, bool(flags & KEEP_CONN)


def encode_end_request(app_status: int, protocol_status: int = REQUEST_COMPLETE) -> bytes:
    """The content of an END_REQUEST record (used by tests and fakes)."""
    return _END_BODY.pack(app_status & 0xFFFFFFFF, protocol_status)


def decode_end_request(content: bytes) -> EndRequest:
    if len(content) != _END_BODY.size:
        raise ProtocolError(f"END_REQUEST body is {len(content)} bytes, expected 8")
    app_status, protocol_status = _END_BODY.unpack(content)
    return EndRequest(app_status=app_status, protocol_status=protocol_status)


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    if length > _MAX_NV_LEN:
        raise ValueError(f"name-value length {length} exceeds {_MAX_NV_LEN}")
    return struct.pack(">I", length | 0x80000000)


def encode_pair(name: bytes, value: bytes) -> bytes:
    return _encode_length(len(name)) + _encode_length(len(value)) + name + value


def encode_params(pairs: Mapping[str, str]) -> bytes:
    """Name-value pairs body (UTF-8), not yet framed into PARAMS records."""
    return b"".join(encode_pair(k.encode(), v.encode()) for k, v in pairs.items())


def _decode_length(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise ProtocolError("truncated name-value length")
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    if pos + 4 > len(buf):
        raise ProtocolError("truncated 4-byte name-value length")
    (value,) = struct.unpack_from(">I", buf, pos)
    return value & 0x7FFFFFFF, pos + 4


def iter_pairs(buf: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = 0
    while pos < len(buf):
        name_len, pos = _decode_length(buf, pos)
        value_len, pos = _decode_length(buf, pos)
        end = pos + name_len + value_len
        if end > len(buf):
            raise ProtocolError("truncated name-value pair")
        yield buf[pos : pos + name_len], buf[pos + name_len : end]
        pos = end


def decode_params(buf: bytes) -> dict[str, str]:
    """Inverse of encode_params (later duplicates win)."""
    return {k.decode(): v.decode() for k, v in iter_pairs(buf)}


def parse_records(buf: bytes) -> tuple[list[Record], bytes]:
    """Split as many complete records off `buf` as there are; return them and the rest."""
    records: list[Record] = []
    pos = 0
    while len(buf) - pos >= HEADER_LEN:
        version, rtype, rid, clen, plen = _HEADER.unpack_from(buf, pos)
        if version != VERSION_1:
            raise ProtocolError(f"FastCGI version {version} at byte {pos}, expected 1")
        end = pos + HEADER_LEN + clen + plen
        if end > len(buf):
            break
        content = buf[pos + HEADER_LEN : pos + HEADER_LEN + clen]
        records.append(Record(type=rtype, request_id=rid, content=content, version=version))
        pos = end
    return records, buf[pos:]


class RecordReader:
    """Streaming decoder: feed() arbitrary chunks, get back completed records."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Record]:
        records, self._buf = parse_records(self._buf + data)
        return records

    @property
    def pending(self) -> int:
        """Bytes held of a record not yet complete."""
        return len(self._buf)

    def close(self) -> None:
        """Call at end of input: leftover bytes mean the peer cut a record short."""
        if self._buf:
            raise ProtocolError(f"input ended inside a record ({len(self._buf)} bytes left)")
