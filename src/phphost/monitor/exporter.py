"""`phphost exporter`: /metrics in the Prometheus text format on a loopback
address, through prometheus_client with one custom Collector.

Each scrape takes a fresh Snapshot (collect.py): every pool is asked at once with
its own deadline, so a slow or dead pool costs one `phphost_scrape_errors`
increment and its `phpfpm_up` 0, never the scrape. monitor.json is re-read when
apply rewrites it. Connections from a tenant's or a pool's user get 403."""

from __future__ import annotations

import os
import pwd
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.process_collector import ProcessCollector

from phphost.errors import FactError, PhphostError
from phphost.monitor.collect import PoolLogTail, PoolScraper, take_snapshot
from phphost.monitor.metrics import all_families
from phphost.monitor.peer import peer_uid
from phphost.render.monitorconfig import MonitorConfig, read_monitor_config

MAX_CONCURRENT_SCRAPES = 4
REQUEST_TIMEOUT = 10.0


class PhphostCollector:
    """prometheus_client custom collector: every pool, phphost's own state."""

    def __init__(self, cfg: MonitorConfig, config_path: str | None = None) -> None:
        self._lock = threading.Lock()
        self._path = config_path
        self._mtime = self._config_mtime()
        self.scraper = PoolScraper()
        self._use(cfg)

    def _use(self, cfg: MonitorConfig) -> None:
        self.cfg = cfg
        self.tail = PoolLogTail(cfg)
        self.errors = {p.name: 0 for p in cfg.pools}
        self.denied = _uids(cfg.denied_users())

    def _config_mtime(self) -> float | None:
        try:
            return os.stat(self._path).st_mtime if self._path else None
        except OSError:
            return None

    def _reload_if_changed(self) -> None:
        mtime = self._config_mtime()
        if self._path is None or mtime == self._mtime:
            return
        try:
            cfg = read_monitor_config(self._path)
        except FactError as err:
            print(f"phphost exporter: keeping the old config: {err}", file=sys.stderr)
            return
        self._mtime = mtime
        old = self.errors
        self._use(cfg)
        self.errors.update({k: v for k, v in old.items() if k in self.errors})

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self._reload_if_changed()
            cfg, tail = self.cfg, self.tail
        snap = take_snapshot(cfg, self.scraper, tail)
        with self._lock:
            for view in snap.pools:
                if view.scrape.error is not None and view.name in self.errors:
                    self.errors[view.name] += 1
            errors = dict(self.errors)
        yield from all_families(snap, cfg, errors)


def _uids(users: tuple[str, ...]) -> frozenset[int]:
    out = set()
    for user in users:
        try:
            out.add(pwd.getpwnam(user).pw_uid)
        except KeyError:
            continue
    return frozenset(out)


def make_registry(collector: PhphostCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(namespace="phphost_exporter", registry=registry)
    return registry


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    registry: CollectorRegistry
    collector: PhphostCollector
    slots: threading.BoundedSemaphore


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT
    server_version = "phphost-exporter"
    sys_version = ""

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _allowed(self) -> bool:
        host, port = self.server.server_address[:2]
        uid = peer_uid(self.client_address[:2], (str(host), int(port)))
        return uid is not None and uid not in self.server.collector.denied

    def do_GET(self) -> None:
        if not self._allowed():
            self.log_message("refused %s: a tenant's or pool's user, or unknown",
                             self.client_address)
            self._send(403, b"forbidden: tenants and pools may not read the metrics\n")
            return
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(200, b"phphost exporter: see /metrics\n")
        elif path != "/metrics":
            self._send(404, b"not found: see /metrics\n")
        elif not self.server.slots.acquire(timeout=1.0):
            self._send(503, b"too many scrapes at once\n")
        else:
            try:
                self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
            finally:
                self.server.slots.release()

    do_HEAD = do_GET

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if str(code) not in ("200", "404"):      # only what is worth a line
            super().log_request(code, size)


def serve(cfg: MonitorConfig, config_path: str | None = None) -> None:
    """Serve /metrics until interrupted."""
    collector = PhphostCollector(cfg, config_path)
    server_cls: type[_Server] = _Server6 if ":" in cfg.host else _Server
    try:
        server = server_cls((cfg.host, cfg.port), _Handler)
    except OSError as err:
        raise PhphostError(
            f"phphost exporter cannot listen on {cfg.host}:{cfg.port}: "
            f"{err.strerror or err}. Is another exporter running? Change [exporter] "
            "listen in the spec (then apply) or pass --listen") from err
    server.registry = make_registry(collector)
    server.collector = collector
    server.slots = threading.BoundedSemaphore(MAX_CONCURRENT_SCRAPES)
    print(f"phphost exporter: serving http://{cfg.host}:{cfg.port}/metrics for "
          f"{len(cfg.pools)} pool(s)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        collector.scraper.close()
