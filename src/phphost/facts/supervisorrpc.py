"""supervisord's XML-RPC interface over its Unix socket: the transport (host's
supervisord.py drives programs with it) and the read-only status query a plan makes
(one request instead of a `supervisorctl status` process)."""

from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from typing import Any

from phphost import layout
from phphost.facts.parse import ProgramStatus

RPC_TIMEOUT = 60.0          # seconds one request may take
BAD_NAME = 10               # supervisor.xmlrpc.Faults.BAD_NAME: no such program


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__()
        self.path = path
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self.path, self.timeout)


def socket_path(conf: str = layout.SUPERVISOR_MAIN_CONF) -> str:
    """[unix_http_server] file= of supervisord's main config (Debian: /var/run/supervisor.sock)."""
    section = ""
    try:
        with open(conf, encoding="utf-8") as fh:
            for raw in fh:
                line = raw.split(";", 1)[0].strip()
                if line.startswith("["):
                    section = line
                elif section == "[unix_http_server]" and line.startswith("file"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "/var/run/supervisor.sock"


def proxy(timeout: float = RPC_TIMEOUT) -> Any:
    return xmlrpc.client.ServerProxy("http://localhost",
                                     transport=_UnixTransport(socket_path(), timeout),
                                     allow_none=True)


def _status(info: dict[str, Any]) -> ProgramStatus:
    name, state, pid = str(info["name"]), str(info["statename"]), info.get("pid")
    group = str(info.get("group", name))
    full = name if group == name else f"{group}:{name}"
    running = state == "RUNNING" and isinstance(pid, int) and pid > 0
    return ProgramStatus(full, state, pid if running else None)


def program_state(name: str, timeout: float = RPC_TIMEOUT) -> ProgramStatus | None:
    """One program as `supervisorctl status NAME` shows it, None when supervisord has
    no program of that name: one small answer, where program_states lists every
    program (about 1 MB at 1,000 pools). OSError/xmlrpc.client.Error as there."""
    try:
        return _status(proxy(timeout).supervisor.getProcessInfo(name))
    except xmlrpc.client.Fault as fault:
        if fault.faultCode == BAD_NAME:
            return None
        raise


def supervisord_pid(timeout: float = RPC_TIMEOUT) -> int:
    """supervisord's pid (one small answer). OSError when it does not answer on its
    socket, xmlrpc.client.Error when it answers wrong."""
    pid = proxy(timeout).supervisor.getPID()
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        raise xmlrpc.client.Error()
    return pid


def running(timeout: float = RPC_TIMEOUT) -> bool:
    """supervisord answers on its socket and is running (not shutting down)."""
    try:
        return str(proxy(timeout).supervisor.getState().get("statename")) == "RUNNING"
    except (OSError, xmlrpc.client.Error):
        return False


def program_states(timeout: float = RPC_TIMEOUT) -> dict[str, ProgramStatus]:
    """Every program supervisord has, as `supervisorctl status` shows it (a pid only
    for a RUNNING one). OSError when supervisord does not answer on its socket,
    xmlrpc.client.Error when it answers wrong."""
    out: dict[str, ProgramStatus] = {}
    for info in proxy(timeout).supervisor.getAllProcessInfo():
        status = _status(info)
        out[status.name] = status
    return out
