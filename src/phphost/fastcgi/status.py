"""FPM's status and ping pages over a pool's socket, and a PHP-file probe.

The status page is asked for with SCRIPT_NAME = SCRIPT_FILENAME = the pool's
`pm.status_path` and QUERY_STRING=json&full (DESIGN.md, "Facts"). On Unix sockets
the listen-queue fields are always 0: do not draw conclusions from them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from phphost import layout
from phphost.errors import FastCGIError
from phphost.fastcgi.client import FcgiResponse, fcgi_request


@dataclass(frozen=True)
class FpmProcess:
    pid: int
    state: str
    start_time: int
    requests: int
    request_duration: int
    request_method: str
    request_uri: str
    content_length: int
    user: str | None
    script: str | None
    last_request_cpu: float
    last_request_memory: int


@dataclass(frozen=True)
class FpmStatus:
    pool: str
    process_manager: str
    start_time: int
    start_since: int
    accepted_conn: int
    listen_queue: int
    max_listen_queue: int
    listen_queue_len: int
    idle_processes: int
    active_processes: int
    total_processes: int
    max_active_processes: int
    max_children_reached: int
    slow_requests: int
    processes: tuple[FpmProcess, ...]


def _field(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise FastCGIError(f"FPM status from {where} lacks {key!r}: is this FPM's json status?")
    return obj[key]


def _bad(key: str, value: object, expected: str, where: str) -> FastCGIError:
    return FastCGIError(f"FPM status from {where}: {key!r} is {value!r}, expected {expected}")


def _int(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = _field(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, value, "an integer", where)
    return value


def _float(obj: Mapping[str, Any], key: str, where: str) -> float:
    value = _field(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, value, "a number", where)
    return float(value)


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _field(obj, key, where)
    if not isinstance(value, str):
        raise _bad(key, value, "a string", where)
    return value


def _optional_text(obj: Mapping[str, Any], key: str) -> str | None:
    """FPM writes '-' where there is nothing (no auth user, no script yet)."""
    value = obj.get(key)
    if value is None or value == "-":
        return None
    return str(value)


def _parse_process(obj: Mapping[str, Any], where: str) -> FpmProcess:
    return FpmProcess(
        pid=_int(obj, "pid", where),
        state=_str(obj, "state", where),
        start_time=_int(obj, "start time", where),
        requests=_int(obj, "requests", where),
        request_duration=_int(obj, "request duration", where),
        request_method=_str(obj, "request method", where),
        request_uri=_str(obj, "request uri", where),
        content_length=_int(obj, "content length", where),
        user=_optional_text(obj, "user"),
        script=_optional_text(obj, "script"),
        last_request_cpu=_float(obj, "last request cpu", where),
        last_request_memory=_int(obj, "last request memory", where),
    )


def _load_object(json_bytes: bytes, where: str) -> dict[str, Any]:
    try:
        data = json.loads(json_bytes)
    except (ValueError, UnicodeDecodeError) as err:
        raise FastCGIError(
            f"FPM status from {where} is not JSON ({err}): "
            "check that pm.status_path is set in the pool config"
        ) from err
    if not isinstance(data, dict):
        raise FastCGIError(f"FPM status from {where} is not a JSON object")
    return data


def parse_fpm_status(json_bytes: bytes, where: str = "status page") -> FpmStatus:
    """Pure: FPM's `?json&full` (or `?json`, then no processes) output -> FpmStatus."""
    data = _load_object(json_bytes, where)
    raw_procs = data.get("processes", [])
    if not isinstance(raw_procs, list) or not all(isinstance(x, dict) for x in raw_procs):
        raise FastCGIError(f"FPM status from {where}: 'processes' is not a list of objects")

    def num(key: str) -> int:
        return _int(data, key, where)

    return FpmStatus(
        pool=_str(data, "pool", where),
        process_manager=_str(data, "process manager", where),
        start_time=num("start time"),
        start_since=num("start since"),
        accepted_conn=num("accepted conn"),
        listen_queue=num("listen queue"),
        max_listen_queue=num("max listen queue"),
        listen_queue_len=num("listen queue len"),
        idle_processes=num("idle processes"),
        active_processes=num("active processes"),
        total_processes=num("total processes"),
        max_active_processes=num("max active processes"),
        max_children_reached=num("max children reached"),
        slow_requests=num("slow requests"),
        processes=tuple(_parse_process(p, where) for p in raw_procs),
    )


def _page_params(path: str, query: str) -> dict[str, str]:
    return {
        "SCRIPT_NAME": path,
        "SCRIPT_FILENAME": path,
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": query,
        "REQUEST_URI": f"{path}?{query}" if query else path,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "GATEWAY_INTERFACE": "CGI/1.1",
    }


# A pool's PHP can accept on its own listen socket and answer in FPM's place: bound
# what root reads (a full status of 1,000 workers is about 300 KiB).
STATUS_LIMIT = 1 << 20
PING_LIMIT = 64 << 10


def fpm_status(
    socket_path: str, status_path: str = layout.STATUS_PATH, timeout: float = 5.0
) -> FpmStatus:
    """Ask the pool at `socket_path` for its full JSON status."""
    resp = fcgi_request(socket_path, _page_params(status_path, "json&full"), timeout=timeout,
                        limit=STATUS_LIMIT)
    status, _headers, body = resp.http()
    if status != 200:
        raise FastCGIError(
            f"FPM at {socket_path} answered {status} for {status_path}: "
            f"set pm.status_path = {status_path} in that pool's config"
        )
    return parse_fpm_status(body, where=f"{socket_path}{status_path}")


def fpm_ping(
    socket_path: str,
    ping_path: str = layout.PING_PATH,
    timeout: float = 5.0,
    response: str = "pong",
) -> bool:
    """True when the pool answers its ping page with `response` (FPM's ping.response)."""
    try:
        resp = fcgi_request(socket_path, _page_params(ping_path, ""), timeout=timeout,
                            limit=PING_LIMIT)
        status, _headers, body = resp.http()
    except FastCGIError:
        return False
    return status == 200 and body.strip() == response.encode()


def php_params(
    script_filename: str, query: str = "", document_root: str | None = None
) -> dict[str, str]:
    """Pure: the CGI params of a GET for an existing PHP file (as Apache would send them)."""
    docroot = document_root or os.path.dirname(script_filename) or "/"
    rel = os.path.relpath(script_filename, docroot)
    if rel.startswith(".."):
        raise ValueError(f"{script_filename} is not under document root {docroot}")
    script_name = "/" + rel
    return {
        "SCRIPT_FILENAME": script_filename,
        "SCRIPT_NAME": script_name,
        "DOCUMENT_ROOT": docroot,
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": query,
        "REQUEST_URI": f"{script_name}?{query}" if query else script_name,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
    }


def run_php(
    socket_path: str,
    script_filename: str,
    query: str = "",
    timeout: float = 10.0,
    document_root: str | None = None,
) -> FcgiResponse:
    """GET `script_filename` (a path as the pool sees it, i.e. inside its jail) via the pool."""
    params = php_params(script_filename, query, document_root)
    return fcgi_request(socket_path, params, timeout=timeout)
