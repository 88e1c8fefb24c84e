"""parse_fpm_status against output recorded from a real php-fpm8.2 master
(pool "rec", pm=static, 2 children), and the client against a fake FastCGI
server on a Unix socket in tmp_path."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from phphost import layout
from phphost.errors import FastCGIError
from phphost.fastcgi import protocol as p
from phphost.fastcgi.client import fcgi_request
from phphost.fastcgi.status import (
    FpmProcess,
    fpm_ping,
    fpm_status,
    parse_fpm_status,
    php_params,
)

DATA = Path(__file__).parent / "data"
RECORDED = (DATA / "fpm_status_full.json").read_bytes()


def test_recorded_status_parses() -> None:
    st = parse_fpm_status(RECORDED)
    assert st.pool == "rec"
    assert st.process_manager == "static"
    assert st.start_time == 1795457138
    assert st.accepted_conn == 5
    assert (st.listen_queue, st.max_listen_queue, st.listen_queue_len) == (0, 0, 0)
    assert (st.idle_processes, st.active_processes, st.total_processes) == (1, 1, 2)
    assert st.max_active_processes == 1
    assert st.max_children_reached == 0
    assert st.slow_requests == 0
    assert len(st.processes) == 2


def test_recorded_processes() -> None:
    running = parse_fpm_status(RECORDED).processes[1]
    assert running == FpmProcess(
        pid=11726,
        state="Running",
        start_time=1795457138,
        requests=3,
        request_duration=82,
        request_method="GET",
        request_uri="/phphost-fpm-status?json&full",
        content_length=0,
        user=None,
        script=None,
        last_request_cpu=0.0,
        last_request_memory=0,
    )


def test_user_and_script_kept_when_present() -> None:
    data = json.loads(RECORDED)
    data["processes"][0]["user"] = "alice"
    data["processes"][0]["script"] = "/srv/x/index.php"
    del data["processes"][1]["user"]
    st = parse_fpm_status(json.dumps(data).encode())
    assert (st.processes[0].user, st.processes[0].script) == ("alice", "/srv/x/index.php")
    assert st.processes[1].user is None


def test_plain_json_without_processes() -> None:
    data = json.loads(RECORDED)
    del data["processes"]
    assert parse_fpm_status(json.dumps(data).encode()).processes == ()


def test_integral_cpu_becomes_float() -> None:
    data = json.loads(RECORDED)
    data["processes"][0]["last request cpu"] = 3
    cpu = parse_fpm_status(json.dumps(data).encode()).processes[0].last_request_cpu
    assert isinstance(cpu, float)
    assert cpu == 3.0


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("accepted conn"),
        lambda d: d.update({"pool": 3}),
        lambda d: d.update({"idle processes": "1"}),
        lambda d: d.update({"slow requests": True}),
        lambda d: d.update({"processes": {"pid": 1}}),
        lambda d: d["processes"][0].pop("pid"),
        lambda d: d["processes"][0].update({"last request cpu": "0"}),
    ],
)
def test_malformed_status_raises(mutate: Callable[[dict[str, Any]], object]) -> None:
    data = json.loads(RECORDED)
    mutate(data)
    with pytest.raises(FastCGIError):
        parse_fpm_status(json.dumps(data).encode())


@pytest.mark.parametrize("raw", [b"File not found.\n", b"[1, 2]", b"\xff\xfe"])
def test_not_json_object_raises(raw: bytes) -> None:
    with pytest.raises(FastCGIError, match="status"):
        parse_fpm_status(raw)


def test_php_params() -> None:
    params = php_params("/srv/www/a/htdocs/index.php", "x=1")
    assert params["SCRIPT_FILENAME"] == "/srv/www/a/htdocs/index.php"
    assert params["DOCUMENT_ROOT"] == "/srv/www/a/htdocs"
    assert params["SCRIPT_NAME"] == "/index.php"
    assert params["REQUEST_URI"] == "/index.php?x=1"
    assert params["QUERY_STRING"] == "x=1"
    assert params["REQUEST_METHOD"] == "GET"
    assert params["REMOTE_ADDR"] == "127.0.0.1"
    assert params["SERVER_NAME"] == "localhost"
    assert params["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert params["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_php_params_with_document_root() -> None:
    params = php_params("/htdocs/sub/a.php", document_root="/htdocs")
    assert params["SCRIPT_NAME"] == "/sub/a.php"
    assert params["REQUEST_URI"] == "/sub/a.php"
    with pytest.raises(ValueError):
        php_params("/other/a.php", document_root="/htdocs")


# --- client against a fake FastCGI server ---------------------------------------


class FakeServer:
    """Accepts one connection per reply, records the request, sends canned bytes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.replies: list[bytes] = []
        self.requests: list[list[p.Record]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        self._sock.listen(4)
        self._sock.settimeout(5)
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self, *replies: bytes) -> None:
        self.replies = list(replies)
        self._thread.start()

    def _serve(self) -> None:
        for reply in self.replies:
            conn, _ = self._sock.accept()
            with conn:
                reader = p.RecordReader()
                got: list[p.Record] = []
                while not (got and got[-1].type == p.STDIN and got[-1].content == b""):
                    got.extend(reader.feed(conn.recv(4096)))
                self.requests.append(got)
                conn.sendall(reply)

    def close(self) -> None:
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[FakeServer]:
    srv = FakeServer(str(tmp_path / "f.sock"))
    yield srv
    srv.close()


def _answer(stdout: bytes, stderr: bytes = b"", app_status: int = 0) -> bytes:
    out = p.encode_stream(p.STDOUT, 1, stdout)
    if stderr:
        out += p.encode_stream(p.STDERR, 1, stderr)
    return out + p.encode_record(p.END_REQUEST, 1, p.encode_end_request(app_status))


def test_fcgi_request_round_trip(server: FakeServer) -> None:
    big = b"z" * 200_000
    server.start(_answer(b"Status: 201\r\n\r\n" + big, b"PHP Warning", app_status=3))
    resp = fcgi_request(server.path, {"A": "b"}, stdin=b"in")
    assert resp.stderr == b"PHP Warning"
    assert (resp.app_status, resp.protocol_status) == (3, p.REQUEST_COMPLETE)
    assert resp.http() == (201, {"status": "201"}, big)
    sent = server.requests[0]
    assert p.decode_params(sent[1].content) == {"A": "b"}
    assert sent[3].content == b"in"


def test_fpm_status_and_ping_params(server: FakeServer) -> None:
    status_reply = _answer(b"Content-type: application/json\r\n\r\n" + RECORDED)
    server.start(status_reply, _answer(b"Content-type: text/plain\r\n\r\npong"))
    assert fpm_status(server.path).pool == "rec"
    assert fpm_ping(server.path) is True
    status_params = p.decode_params(server.requests[0][1].content)
    assert status_params["SCRIPT_NAME"] == layout.STATUS_PATH
    assert status_params["SCRIPT_FILENAME"] == layout.STATUS_PATH
    assert status_params["QUERY_STRING"] == "json&full"
    assert status_params["REQUEST_METHOD"] == "GET"
    ping_params = p.decode_params(server.requests[1][1].content)
    assert ping_params["SCRIPT_FILENAME"] == layout.PING_PATH


def test_fpm_status_not_configured(server: FakeServer) -> None:
    server.start(_answer(b"Status: 404 Not Found\r\n\r\nFile not found.\n"))
    with pytest.raises(FastCGIError, match=r"pm\.status_path"):
        fpm_status(server.path)


def test_connection_closed_early(server: FakeServer) -> None:
    server.start(p.encode_record(p.STDOUT, 1, b"partial")[:10])
    with pytest.raises(FastCGIError, match="phphost status"):
        fcgi_request(server.path, {})


def test_missing_socket_names_path_and_remedy(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.sock")
    with pytest.raises(FastCGIError) as info:
        fcgi_request(path, {})
    assert path in str(info.value)
    assert "phphost status" in str(info.value)
    assert fpm_ping(path) is False


def test_timeout_names_path(tmp_path: Path) -> None:
    path = str(tmp_path / "silent.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)  # accepts into the backlog, never answers
        with pytest.raises(FastCGIError, match="timed out"):
            fcgi_request(path, {}, timeout=0.2)
