"""What Apache's parsed config says about PHP: the handlers that reach FPM, explicit
proxy workers, MPM limits. Pure, over apacheconf directives and FPM pools."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from phphost.audit.apacheconf import Directive, global_value, named, opened
from phphost.audit.fpmconf import FpmPool, listen_of

_FCGI = re.compile(r"fcgi://([^/:|]+)(?::(\d+))?", re.I)


@dataclass(frozen=True)
class Backend:
    """Where a proxy URL points: 'unix:/s.sock|fcgi://name/' or 'fcgi://host:port/'."""

    socket: str = ""
    name: str = ""            # the fcgi:// host part
    port: int = 0


@dataclass(frozen=True)
class Worker:
    url: str
    backend: Backend
    where: str
    params: dict[str, str] = field(default_factory=dict)   # keys lowercased

    def flag(self, key: str) -> str:
        return self.params.get(key, "").lower()

    @property
    def reuses(self) -> bool:
        return self.flag("enablereuse") == "on" or self.flag("disablereuse") == "off"


@dataclass(frozen=True)
class Mpm:
    max_request_workers: int
    threads_per_child: int
    server_limit: int

    @property
    def processes(self) -> int:
        """Child processes serving requests at once (MaxRequestWorkers / ThreadsPerChild)."""
        return max(1, self.max_request_workers // self.threads_per_child)


def backend_of(url: str) -> Backend | None:
    """The FastCGI backend of a proxy URL; None for other schemes."""
    text = url[len("proxy:"):] if url.lower().startswith("proxy:") else url
    socket = ""
    if text.lower().startswith("unix:"):
        socket, _, text = text[5:].partition("|")
    match = _FCGI.match(text)
    if not match:
        return None
    return Backend(socket, match.group(1).lower(), int(match.group(2) or 0))


def handler_backends(directives: list[Directive]) -> list[tuple[Directive, Backend]]:
    """SetHandler proxy:..., ProxyPass/ProxyPassMatch and RewriteRule [P] targets."""
    out: list[tuple[Directive, Backend]] = []
    for d in named(directives, "sethandler", "proxypass", "proxypassmatch", "rewriterule"):
        for arg in d.args:
            backend = backend_of(arg)
            if backend is not None:
                out.append((d, backend))
    return out


def pools_of(backend: Backend, pools: list[FpmPool],
             handlers: list[tuple[Directive, Backend]]) -> list[FpmPool]:
    """FPM pools a backend (or a worker named like it) sends requests to."""
    sockets = {backend.socket} if backend.socket else {
        b.socket for _, b in handlers if b.name == backend.name and b.socket}
    out = []
    for pool in pools:
        listen = listen_of(pool.get("listen"))
        if (listen.path and listen.path in sockets) or \
                (listen.kind == "tcp" and backend.port and listen.port == backend.port):
            out.append(pool)
    return out


def _params(args: tuple[str, ...]) -> dict[str, str]:
    return {k.lower(): v for k, _, v in (a.partition("=") for a in args if "=" in a)}


def workers(directives: list[Directive]) -> list[Worker]:
    """Explicit workers: <Proxy URL k=v> (+ ProxySet inside), ProxySet URL k=v,
    ProxyPass PATH URL k=v."""
    out: list[Worker] = []
    for d in named(directives, "<proxy"):
        if not d.args or backend_of(d.args[0]) is None:
            continue
        params = _params(d.args[1:])
        section = opened(d)
        for inner in named(directives, "proxyset"):
            if inner.section("proxy") == section:
                params.update(_params(inner.args))
        out.append(Worker(d.args[0], backend_of(d.args[0]) or Backend(), d.where, params))
    for d in named(directives, "proxyset", "proxypass", "proxypassmatch"):
        url = next((a for a in d.args if "=" not in a and backend_of(a)), None)
        if url is not None and d.section("proxy") is None:
            out.append(Worker(url, backend_of(url) or Backend(), d.where, _params(d.args)))
    return out


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def mpm(directives: list[Directive]) -> Mpm:
    """Event MPM limits as httpd applies them (defaults: 25 threads, 16 processes)."""
    tpc = max(1, _int(global_value(directives, "threadsperchild"), 25))
    limit = max(1, _int(global_value(directives, "serverlimit"), 16))
    mrw = _int(global_value(directives, "maxrequestworkers")
               or global_value(directives, "maxclients"), limit * tpc)
    mrw = min(mrw, limit * tpc)
    return Mpm(max(tpc, mrw // tpc * tpc), tpc, limit)


def worker_limit(worker: Worker, limits: Mpm) -> int | None:
    """Connections one Apache process may hold to the worker at once (its `max`,
    at most ThreadsPerChild); None when unset."""
    raw = worker.params.get("max")
    if raw is None or not raw.isdigit() or int(raw) == 0:
        return None
    return min(int(raw), limits.threads_per_child)
