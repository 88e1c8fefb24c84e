"""FastCGI record codec and the pure parts of the client."""

from __future__ import annotations

import struct

import pytest

from phphost.errors import FastCGIError
from phphost.fastcgi import protocol as p
from phphost.fastcgi.client import FcgiResponse, build_request, split_cgi_response

# --- records -----------------------------------------------------------------


def test_encode_record_header_and_padding() -> None:
    raw = p.encode_record(p.STDOUT, 1, b"hello")
    assert raw[:8] == bytes([1, p.STDOUT, 0, 1, 0, 5, 3, 0])
    assert raw[8:13] == b"hello"
    assert raw[13:] == b"\0\0\0"
    assert len(raw) % 8 == 0


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 15, 16, 100, 65535])
def test_records_are_padded_to_eight(size: int) -> None:
    raw = p.encode_record(p.STDIN, 3, b"x" * size)
    assert len(raw) % 8 == 0
    records, rest = p.parse_records(raw)
    assert rest == b""
    assert records == [p.Record(type=p.STDIN, request_id=3, content=b"x" * size)]


def test_empty_content_is_one_empty_record() -> None:
    assert p.encode_record(p.PARAMS, 1, b"") == bytes([1, p.PARAMS, 0, 1, 0, 0, 0, 0])


def test_request_id_is_big_endian() -> None:
    raw = p.encode_record(p.STDOUT, 0x1234, b"")
    assert raw[2:4] == b"\x12\x34"


def test_long_content_splits_into_max_sized_records() -> None:
    content = bytes(range(256)) * 600  # 153600 bytes -> 65535 + 65535 + 22530
    raw = p.encode_record(p.STDIN, 1, content)
    records, rest = p.parse_records(raw)
    assert rest == b""
    assert [len(r.content) for r in records] == [65535, 65535, 22530]
    assert b"".join(r.content for r in records) == content
    assert all(r.type == p.STDIN and r.request_id == 1 for r in records)


def test_encode_stream_ends_with_empty_record() -> None:
    records, _ = p.parse_records(p.encode_stream(p.PARAMS, 1, b"abc"))
    assert [r.content for r in records] == [b"abc", b""]
    records, _ = p.parse_records(p.encode_stream(p.STDIN, 1, b""))
    assert [r.content for r in records] == [b""]


@pytest.mark.parametrize(("rtype", "rid"), [(-1, 1), (256, 1), (1, -1), (1, 65536)])
def test_encode_record_rejects_out_of_range(rtype: int, rid: int) -> None:
    with pytest.raises(ValueError):
        p.encode_record(rtype, rid, b"")


# --- begin / end request -------------------------------------------------------


def test_begin_request_round_trip() -> None:
    records, rest = p.parse_records(p.encode_begin_request(7, p.RESPONDER, keep_conn=True))
    assert rest == b""
    (rec,) = records
    assert (rec.type, rec.request_id) == (p.BEGIN_REQUEST, 7)
    assert rec.content == b"\x00\x01\x01\x00\x00\x00\x00\x00"
    assert p.decode_begin_request(rec.content) == (p.RESPONDER, True)


def test_begin_request_default_closes_connection() -> None:
    (rec,), _ = p.parse_records(p.encode_begin_request(1))
    assert p.decode_begin_request(rec.content) == (p.RESPONDER, False)


def test_end_request_round_trip() -> None:
    body = p.encode_end_request(0xDEADBEEF, p.OVERLOADED)
    assert body == b"\xde\xad\xbe\xef\x02\x00\x00\x00"
    assert p.decode_end_request(body) == p.EndRequest(0xDEADBEEF, p.OVERLOADED)


@pytest.mark.parametrize("body", [b"", b"\0" * 7, b"\0" * 9])
def test_end_request_wrong_length(body: bytes) -> None:
    with pytest.raises(p.ProtocolError):
        p.decode_end_request(body)


def test_begin_request_wrong_length() -> None:
    with pytest.raises(p.ProtocolError):
        p.decode_begin_request(b"\0")


# --- name-value pairs ----------------------------------------------------------


def test_short_pair_uses_one_byte_lengths() -> None:
    assert p.encode_params({"A": "xyz"}) == b"\x01\x03Axyz"


def test_length_127_is_one_byte_and_128_is_four() -> None:
    assert p.encode_pair(b"n" * 127, b"")[:2] == b"\x7f\x00"
    four = p.encode_pair(b"n" * 128, b"")
    assert four[:4] == b"\x80\x00\x00\x80"
    assert four[4] == 0


def test_long_value_uses_four_byte_length() -> None:
    raw = p.encode_pair(b"K", b"v" * 70000)
    assert raw[0] == 1
    assert struct.unpack(">I", raw[1:5])[0] == 0x80000000 | 70000


def test_params_round_trip_with_long_names_and_utf8() -> None:
    pairs = {
        "SCRIPT_FILENAME": "/srv/www/x/index.php",
        "N" * 200: "short",
        "short": "V" * 300,
        "EMPTY": "",
        "UNICODE": "für/straße",
    }
    assert p.decode_params(p.encode_params(pairs)) == pairs


def test_params_truncated_raise() -> None:
    raw = p.encode_params({"N" * 200: "value"})
    for cut in (1, 3, 6, len(raw) - 1):
        with pytest.raises(p.ProtocolError):
            p.decode_params(raw[:cut])


def test_empty_params() -> None:
    assert p.encode_params({}) == b""
    assert p.decode_params(b"") == {}


# --- parsing / streaming ---------------------------------------------------------


def _sample_stream() -> bytes:
    return (
        p.encode_record(p.STDOUT, 1, b"Content-type: text/plain\r\n\r\nbody")
        + p.encode_record(p.STDERR, 1, b"warning")
        + p.encode_record(p.STDOUT, 1, b"")
        + p.encode_record(p.END_REQUEST, 1, p.encode_end_request(0))
    )


def test_parse_records_keeps_incomplete_tail() -> None:
    raw = _sample_stream()
    for cut in range(len(raw) + 1):
        records, rest = p.parse_records(raw[:cut])
        consumed = sum(8 + len(r.content) + (-len(r.content) % 8) for r in records)
        assert consumed + len(rest) == cut
        assert len(rest) < len(raw)


def test_parse_records_truncated_header_and_body() -> None:
    raw = p.encode_record(p.STDOUT, 1, b"abcdef")
    assert p.parse_records(raw[:5]) == ([], raw[:5])
    assert p.parse_records(raw[:12]) == ([], raw[:12])
    # content complete but padding missing: still incomplete
    assert p.parse_records(raw[:14]) == ([], raw[:14])


def test_parse_records_rejects_other_versions() -> None:
    raw = bytearray(p.encode_record(p.STDOUT, 1, b"x"))
    raw[0] = 2
    with pytest.raises(p.ProtocolError):
        p.parse_records(bytes(raw))


@pytest.mark.parametrize("chunk", [1, 3, 8, 13, 1000])
def test_record_reader_any_chunking(chunk: int) -> None:
    raw = _sample_stream()
    expected, _ = p.parse_records(raw)
    reader = p.RecordReader()
    got: list[p.Record] = []
    for i in range(0, len(raw), chunk):
        got.extend(reader.feed(raw[i : i + chunk]))
    reader.close()
    assert got == expected
    assert reader.pending == 0


def test_record_reader_close_on_partial_record() -> None:
    reader = p.RecordReader()
    assert reader.feed(p.encode_record(p.STDOUT, 1, b"abc")[:9]) == []
    assert reader.pending == 9
    with pytest.raises(p.ProtocolError):
        reader.close()


# --- client, pure parts -----------------------------------------------------------


def test_build_request_layout() -> None:
    raw = build_request({"REQUEST_METHOD": "GET"}, stdin=b"payload")
    records, rest = p.parse_records(raw)
    assert rest == b""
    assert [(r.type, r.content) for r in records] == [
        (p.BEGIN_REQUEST, b"\x00\x01\x00\x00\x00\x00\x00\x00"),
        (p.PARAMS, p.encode_params({"REQUEST_METHOD": "GET"})),
        (p.PARAMS, b""),
        (p.STDIN, b"payload"),
        (p.STDIN, b""),
    ]


def test_http_split_default_status() -> None:
    resp = FcgiResponse(b"Content-type: text/html\r\nX-A: 1\r\n\r\nhi\r\n\r\nthere", b"", 0, 0)
    assert resp.http() == (200, {"content-type": "text/html", "x-a": "1"}, b"hi\r\n\r\nthere")


def test_http_split_status_header() -> None:
    raw = (
        b"Status: 404 Not Found\r\nContent-type: text/html; charset=UTF-8\r\n\r\nFile not found.\n"
    )
    status, headers, body = split_cgi_response(raw)
    assert status == 404
    assert headers["status"] == "404 Not Found"
    assert body == b"File not found.\n"


def test_http_split_bare_lf_and_repeated_headers() -> None:
    raw = b"Set-Cookie: a=1\nSet-Cookie: b=2\nStatus: 302\n\nbody"
    assert split_cgi_response(raw) == (302, {"set-cookie": "a=1, b=2", "status": "302"}, b"body")


def test_http_split_headers_only() -> None:
    assert split_cgi_response(b"Status: 204 No Content\r\n") == (
        204,
        {"status": "204 No Content"},
        b"",
    )


@pytest.mark.parametrize(
    "raw", [b"no colon here\r\n\r\nbody", b"Status: abc\r\n\r\n", b"Status: 2000\r\n\r\n"]
)
def test_http_split_malformed(raw: bytes) -> None:
    with pytest.raises(FastCGIError):
        split_cgi_response(raw)
