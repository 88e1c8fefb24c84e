"""`phphost exporter`, `phphost top`, `phphost logs` (docs/monitoring.md).

All three read the applied spec's /etc/phphost/monitor.json (written by apply
when the spec has [exporter]), or a spec given with --spec."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from typing import Any

from phphost.errors import SpecError
from phphost.exitcodes import ExitCode
from phphost.render.monitorconfig import (
    MONITOR_CONF,
    MonitorConfig,
    from_model,
    read_monitor_config,
)
from phphost.spec.exporter import parse_listen
from phphost.spec.loader import load_spec
from phphost.spec.validate import At


def _source_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("--config", default=MONITOR_CONF,
                   help=f"the applied spec's monitor file (default {MONITOR_CONF})")
    c.add_argument("--spec", help="read this spec instead of the monitor file")


def add_monitor_parsers(sub: Any) -> None:
    ex = sub.add_parser("exporter", help="serve every pool's metrics for Prometheus")
    _source_args(ex)
    ex.add_argument("--listen", help="HOST:PORT (loopback) instead of [exporter] listen")
    top = sub.add_parser("top", help="live table of every pool")
    _source_args(top)
    top.add_argument("--once", action="store_true", help="print one table and exit")
    top.add_argument("--json", action="store_true", help="one sample as JSON and exit")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    top.add_argument("--sort", default="pool",
                     choices=("pool", "busy", "rps", "r503", "slow", "memory"))
    top.add_argument("--width", type=int, default=0, help="columns for --once (default: "
                     "the terminal's)")
    logs = sub.add_parser("logs", help="a pool's and its sites' logs together")
    _source_args(logs)
    logs.add_argument("name", metavar="POOL|SITE")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, help="lines shown (default 50)")


def monitor_config(args: argparse.Namespace) -> MonitorConfig:
    cfg = from_model(load_spec(args.spec)) if args.spec else read_monitor_config(args.config)
    listen = getattr(args, "listen", None)
    if listen:
        host, port = parse_listen(At("--listen"), listen)
        cfg = replace(cfg, host=host, port=port)
    return cfg


def cmd_exporter(args: argparse.Namespace) -> int:
    from phphost.monitor.exporter import serve

    cfg = monitor_config(args)
    serve(cfg, None if args.spec else args.config)
    return ExitCode.OK


def cmd_top(args: argparse.Namespace) -> int:
    from phphost.monitor import top

    cfg = monitor_config(args)
    interval = min(max(args.interval, 0.2), 60.0)
    reverse = args.sort != "pool"
    if args.json or args.once:
        items = top.sample_twice(cfg, min(interval, 1.0))
        if args.json:
            print(json.dumps(top.rows_json(top.sort_rows(items, args.sort, reverse)), indent=1))
        else:
            import shutil
            width = args.width or shutil.get_terminal_size((120, 40)).columns
            print(top.render_text(items, args.sort, reverse, width), end="")
        return ExitCode.OK
    top.run_live(cfg, interval, args.sort, reverse)
    return ExitCode.OK


def cmd_logs(args: argparse.Namespace) -> int:
    from phphost.monitor import logs

    if args.lines < 0 or args.lines > 100000:
        raise SpecError("--lines", "", f"{args.lines} is out of range", "use 0..100000")
    files = logs.files_for(monitor_config(args), args.name)
    for line in logs.show(files, args.lines):
        print(line)
    if args.follow:
        logs.follow(files)
    return ExitCode.OK
