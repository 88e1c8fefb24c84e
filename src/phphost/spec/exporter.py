"""The spec's ``[exporter]`` table: where `phphost exporter` listens. Pure.

    [exporter]
    listen = "127.0.0.1:9253"     # loopback only: 127.0.0.0/8 or [::1]
    pool_timeout = "2s"           # the most one pool's FPM status may take per scrape
"""

from __future__ import annotations

import ipaddress

from phphost.spec.model import ApacheSettings, ExporterSettings
from phphost.spec.validate import At, Table, check_keys, duration, string

EXPORTER_KEYS = ("listen", "pool_timeout")
MAX_POOL_TIMEOUT = 30
_EXAMPLE = 'listen = "127.0.0.1:9253"'


def parse_exporter(at: At, tbl: Table, apache: ApacheSettings) -> ExporterSettings:
    check_keys(at, tbl, EXPORTER_KEYS)
    host, port = ExporterSettings.host, ExporterSettings.port
    if "listen" in tbl:
        host, port = parse_listen(at.sub("listen"), string(at.sub("listen"), tbl["listen"]))
    if port in (apache.http_port, apache.https_port):
        at.sub("listen").fail(f"port {port} is Apache's", "choose another port, e.g. 9253")
    timeout = ExporterSettings.pool_timeout
    if "pool_timeout" in tbl:
        timeout = duration(at.sub("pool_timeout"), tbl["pool_timeout"], lo=1)
        if timeout > MAX_POOL_TIMEOUT:
            at.sub("pool_timeout").fail(
                f"{timeout}s is longer than a scrape should wait for one pool",
                f"use at most {MAX_POOL_TIMEOUT}s (Prometheus' default scrape timeout is 10s)")
    return ExporterSettings(host=host, port=port, pool_timeout=timeout)


def parse_listen(at: At, value: str) -> tuple[str, int]:
    """"HOST:PORT" or "[::1]:PORT" with a loopback HOST -> (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        at.fail(f"{value!r} is not HOST:PORT", f"write it like {_EXAMPLE}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        at.fail(f"{host!r} is not an IP address", f"write it like {_EXAMPLE}")
    if not addr.is_loopback:
        at.fail(f"{host} is not a loopback address: the metrics name every tenant",
                "listen on 127.0.0.1 (or [::1]) and let Prometheus scrape it locally, "
                "or through an SSH tunnel or a reverse proxy with authentication")
    port = int(port_text)
    if not 1 <= port <= 65535:
        at.fail(f"port {port} is out of range", "use a port in 1..65535, e.g. 9253")
    return str(addr), port
