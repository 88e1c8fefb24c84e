"""The monitor's pure parts: the [exporter] key, monitor.json, metric families
from recorded FPM status, ss / pool-log / runs / cgroup parsers, the peer-uid
lookup, top's rows and table, logs' file choice and time order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from phphost import layout
from phphost.errors import FactError, PhphostError, SpecError
from phphost.facts.parse import ProgramStatus
from phphost.fastcgi.status import parse_fpm_status
from phphost.monitor import logs, top
from phphost.monitor.collect import (
    CgroupUsage,
    PoolLogTail,
    PoolScrape,
    PoolView,
    RequestCounts,
    Snapshot,
    SocketLoad,
    parse_cpu_stat,
    parse_pool_line,
    parse_runs,
    parse_ss,
    parse_vmrss,
)
from phphost.monitor.metrics import all_families
from phphost.monitor.peer import find_uid, kernel_address
from phphost.plan.desired import desired_state
from phphost.render.monitor import monitor_files, render_apache_monitor, render_exporter_program
from phphost.render.monitorconfig import from_model, parse_monitor_json, render_monitor_json
from phphost.spec.loader import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.toml"
RECORDED = (Path(__file__).parent / "data" / "fpm_status_full.json").read_bytes()

SPEC = """
[exporter]
listen = "127.0.0.1:9300"
pool_timeout = "3s"
[tenants.t]
home = "/srv/t"
[pools.a]
tenant = "t"
[pools.b]
tenant = "t"
[sites.s]
server_name = "s.example"
tenant = "t"
docroot = "htdocs"
pool = "a"
routes = { "/b/" = "b" }
"""


def _cfg(spec: str = SPEC):  # type: ignore[no-untyped-def]
    return from_model(parse_spec(spec, "x.toml"))


# --- spec ---------------------------------------------------------------------------------


def test_exporter_key_is_parsed() -> None:
    model = parse_spec(SPEC, "x.toml")
    assert model.exporter is not None
    assert (model.exporter.host, model.exporter.port, model.exporter.pool_timeout) == (
        "127.0.0.1", 9300, 3)


def test_no_exporter_section_means_no_exporter_files() -> None:
    model = parse_spec(SPEC.replace('[exporter]\nlisten = "127.0.0.1:9300"\n'
                                    'pool_timeout = "3s"\n', ""), "x.toml")
    assert model.exporter is None
    assert monitor_files(model) == []


@pytest.mark.parametrize(("listen", "problem"), [
    ("0.0.0.0:9253", "not a loopback"),
    ("10.0.0.1:9253", "not a loopback"),
    ("localhost:9253", "not an IP address"),
    ("127.0.0.1", "not HOST:PORT"),
    ("127.0.0.1:99999", "out of range"),
    ("127.0.0.1:80", "Apache's"),
])
def test_bad_listen_is_refused_naming_the_key(listen: str, problem: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC.replace("127.0.0.1:9300", listen), "x.toml")
    assert err.value.key == "exporter.listen"
    assert problem in err.value.problem


def test_ipv6_loopback_and_bad_keys() -> None:
    model = parse_spec(SPEC.replace("127.0.0.1:9300", "[::1]:9300"), "x.toml")
    assert model.exporter is not None and model.exporter.host == "::1"
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC.replace('pool_timeout = "3s"', 'pool_timeout = "5m"'), "x.toml")
    assert err.value.key == "exporter.pool_timeout"
    with pytest.raises(SpecError):
        parse_spec(SPEC.replace('pool_timeout = "3s"', "port = 1"), "x.toml")


def test_demo_has_an_exporter() -> None:
    assert load_spec(str(DEMO)).exporter is not None


# --- monitor.json and rendered files --------------------------------------------------------


def test_monitor_json_round_trips() -> None:
    model = parse_spec(SPEC, "x.toml")
    cfg = parse_monitor_json(render_monitor_json(model))
    assert cfg == from_model(model)
    site = cfg.site("s")
    assert site is not None and site.pools == ("a", "b")
    assert cfg.denied_users() == ("php-a", "php-b", "t")


@pytest.mark.parametrize("text", ["[]", "{", '{"host": 1}', json.dumps({
    "host": "127.0.0.1", "port": 1, "pool_timeout": 2, "tenant_users": [], "sites": [],
    "pools": [{"name": 1}]})])
def test_bad_monitor_json_names_the_file(text: str) -> None:
    with pytest.raises(FactError) as err:
        parse_monitor_json(text, "/etc/phphost/monitor.json")
    assert "/etc/phphost/monitor.json" in str(err.value) and "apply" in str(err.value)


def test_rendered_program_and_apache_conf() -> None:
    prog = render_exporter_program("/opt/venv/bin/python3")
    assert "[program:phphost_exporter]" in prog
    assert ("command=/opt/venv/bin/python3 -I -m phphost.cli.main exporter --config "
            "/etc/phphost/monitor.json") in prog
    conf = render_apache_monitor()
    assert "GlobalLog" in conf and "%R" in conf and "IfModule" not in conf
    paths = [f[0] for f in monitor_files(parse_spec(SPEC, "x.toml"), "/p/python3")]
    assert paths == ["/etc/supervisor/conf.d/phphost_exporter.conf",
                     "/etc/phphost/monitor.json",
                     "/etc/apache2/conf-enabled/phphost-monitor.conf"]


# --- parsers --------------------------------------------------------------------------------


SS = """u_str LISTEN 2      16           /run/phphost/a.sock 654815 * 0
u_str ESTAB  0      0            /run/phphost/a.sock 671359 * 671356
u_str ESTAB  0      0            /run/phphost/a.sock 671360 * 671357
u_str ESTAB  0      0            * 671356 * 671359
u_str LISTEN 0      16           /run/phphost/b.sock 1 * 0
u_str LISTEN 0      16           /run/other.sock 2 * 0
"""


def test_parse_ss_counts_queue_and_accepted() -> None:
    load = parse_ss(SS, ["/run/phphost/a.sock", "/run/phphost/b.sock", "/run/phphost/c.sock"])
    assert load == {"/run/phphost/a.sock": SocketLoad(2, 2),
                    "/run/phphost/b.sock": SocketLoad(0, 0)}


def test_parse_pool_line() -> None:
    pools, sites = frozenset({"a", "b"}), {"s.example": "s"}
    line = "1700000000 503 1200 s.example proxy:unix:/run/phphost/a.sock|fcgi://a/"
    req = parse_pool_line(line, pools, sites)
    assert req is not None and (req.pool, req.site, req.status, req.micros) == ("a", "s", 503,
                                                                                 1200)
    assert parse_pool_line(line.replace("fcgi://a/", "fcgi://zz/"), pools, sites) is None
    assert parse_pool_line(line.replace(" 503 ", " 999 "), pools, sites) is None
    assert parse_pool_line("garbage", pools, sites) is None
    other = parse_pool_line(line.replace("s.example", "x.example"), pools, sites)
    assert other is not None and other.site == ""


def test_pool_log_tail_reads_appends_and_follows_rotation(tmp_path: Path) -> None:
    log = tmp_path / "pools.log"
    log.write_text("1 200 5 s.example proxy:unix:/x|fcgi://a/\n")
    tail = PoolLogTail(_cfg(), str(log))          # starts at the end: old lines are not counted
    assert tail.poll().by_code == {}
    with log.open("a") as fh:
        fh.write("2 503 7 s.example proxy:unix:/x|fcgi://a/\n2 200 1 s.example proxy:unix:/y|fc")
    counts = tail.poll()
    assert counts.pool_total("a", 503) == 1 and counts.pool_total("b") == 0
    with log.open("a") as fh:
        fh.write("gi://b/\n")
    assert tail.poll().pool_total("b", 200) == 1           # the half line was kept
    os.rename(log, tmp_path / "pools.log.1")
    log.write_text("3 503 1 s.example proxy:unix:/x|fcgi://a/\nnonsense\n")
    counts = tail.poll()
    assert counts.pool_total("a", 503) == 2 and counts.bad_lines == 1


def test_runs_cgroup_vmrss_parsers() -> None:
    runs = parse_runs(json.dumps({"apply": {"finished": 5.0, "seconds": 1, "exit_code": 0},
                                  "audit": {"finished": "x", "seconds": 1, "exit_code": 0},
                                  "verify": [1]}))
    assert list(runs) == ["apply"] and runs["apply"].exit_code == 0
    assert parse_runs("{") == {} and parse_runs(None) == {}
    assert parse_cpu_stat("usage_usec 2500000\nuser_usec 1\n") == 2.5
    assert parse_cpu_stat(None) is None
    assert parse_vmrss("Name:\tphp\nVmRSS:\t  1024 kB\n") == 1024 * 1024
    assert parse_vmrss("Name: kthread\n") == 0


def test_peer_uid_from_the_kernel_table() -> None:
    client, server = kernel_address("127.0.0.1", 50000), kernel_address("127.0.0.1", 9253)
    assert (client, server) == ("0100007F:C350", "0100007F:2425")
    table = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"
             f"   0: {server} {client} 01 00000000:00000000 00:00000000 00000000     0 0 1\n"
             f"   1: {client} {server} 01 00000000:00000000 00:00000000 00000000  1001 0 2\n")
    assert find_uid(table, ("127.0.0.1", 50000), ("127.0.0.1", 9253)) == 1001
    assert find_uid(table, ("127.0.0.1", 50001), ("127.0.0.1", 9253)) is None
    six = kernel_address("::1", 9253)
    assert six == "00000000000000000000000001000000:2425"


# --- metrics --------------------------------------------------------------------------------


def _snapshot(ok: bool = True, requests: RequestCounts | None = None) -> Snapshot:
    status = parse_fpm_status(RECORDED)
    views = (
        PoolView("a", "t", ProgramStatus("phphost-a", "RUNNING", 10),
                 PoolScrape("a", status, None, 0.01), SocketLoad(3, 2),
                 CgroupUsage(1000, 1.5, 4), 1700000000.0),
        PoolView("b", "t", ProgramStatus("phphost-b", "RUNNING", 11),
                 PoolScrape("b", status if ok else None, None if ok else "timed out", 2.0),
                 SocketLoad(0, 0), None, None),
    )
    return Snapshot(1700000100.0, views, True, requests, parse_runs(json.dumps(
        {"apply": {"finished": 1700000050.0, "seconds": 3.5, "exit_code": 5}})), 0.2)


def _exposition(snap: Snapshot, errors: dict[str, int]) -> dict[str, list[tuple[str, dict[
        str, str], float]]]:
    class C:
        def collect(self) -> list[Metric]:
            return list(all_families(snap, _cfg(), errors))

    reg = CollectorRegistry(auto_describe=False)
    reg.register(C())  # type: ignore[arg-type]
    text = generate_latest(reg).decode()
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(text)}


def test_families_parse_with_prometheus_text_parser() -> None:
    req = RequestCounts()
    req.by_code[("a", "s", 503)] = 7
    fams = _exposition(_snapshot(requests=req), {"a": 0, "b": 0})
    assert ("phpfpm_up", {"pool": "a", "tenant": "t"}, 1.0) in fams["phpfpm_up"]
    assert ("phpfpm_accepted_connections_total", {"pool": "a", "tenant": "t"}, 5.0) in fams[
        "phpfpm_accepted_connections"]
    for name in ("phpfpm_active_processes", "phpfpm_idle_processes", "phpfpm_total_processes",
                 "phpfpm_max_children_reached", "phpfpm_listen_queue", "phpfpm_slow_requests",
                 "phpfpm_start_since", "phpfpm_process_requests",
                 "phpfpm_process_request_duration", "phphost_master_up",
                 "phphost_apache_inflight_requests", "phphost_jail_built_timestamp_seconds",
                 "phphost_pool_memory_bytes", "phphost_last_run_exit_code",
                 "phphost_scrape_errors", "phphost_site_info"):
        assert fams.get(name), name
    children = {s[1]["child"] for s in fams["phpfpm_process_requests"]}
    assert children == {"11725", "11726"}
    assert ("phphost_apache_inflight_requests", {"pool": "a", "tenant": "t"}, 5.0) in fams[
        "phphost_apache_inflight_requests"]
    r503 = {(s[1]["pool"], s[1]["code"]): s[2] for s in fams["phphost_apache_requests"]}
    assert r503[("a", "503")] == 7 and r503[("b", "503")] == 0 and r503[("a", "200")] == 0
    assert ("phphost_last_run_success", {"command": "apply"}, 0.0) in fams[
        "phphost_last_run_success"]


def test_a_dead_pool_is_down_and_counted_not_fatal() -> None:
    fams = _exposition(_snapshot(ok=False), {"a": 0, "b": 3})
    up = {s[1]["pool"]: s[2] for s in fams["phpfpm_up"]}
    assert up == {"a": 1.0, "b": 0.0}
    assert {s[1]["pool"] for s in fams["phpfpm_active_processes"]} == {"a"}
    errors = {s[1]["pool"]: s[2] for s in fams["phphost_scrape_errors"]}
    assert errors == {"a": 0.0, "b": 3.0}
    assert "phphost_apache_requests" not in fams          # no pool log on this "host"
    assert {s[1]["pool"] for s in fams["phphost_pool_memory_bytes"]} == {"a"}


# --- top ------------------------------------------------------------------------------------


def test_top_rows_rates_and_table() -> None:
    before = _snapshot(requests=RequestCounts())
    req = RequestCounts()
    req.by_code[("a", "s", 503)] = 20
    now = _snapshot(ok=False, requests=req)
    now = Snapshot(before.taken + 2.0, now.pools, True, req, now.runs, 0.1)
    items = top.rows(_cfg(), now, before, {"a": 5 << 20, "b": 7 << 20})
    a, b = items
    assert (a.state, a.pm, a.busy, a.idle, a.max_children, a.queued) == (
        "RUNNING", "static", 0, 1, 5, 3)
    assert a.rps == 0.0 and a.r503 == 10.0 and a.memory == 1000     # cgroup before rss
    assert b.state == "ERROR" and b.busy is None and b.memory == 7 << 20
    text = top.render_text(items, "r503", True, width=120)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["pool", "tenant", "state"] and "503/sv" in lines[0]
    assert lines[1].split()[0] == "a" and lines[2].split()[0] == "b"
    assert "b: timed out" in text
    assert top.rows_json(items)[0]["pool"] == "a"


def test_top_sorting_keys() -> None:
    assert top.next_sort("pool", False, "b") == ("busy", True)
    assert top.next_sort("busy", True, "b") == ("busy", False)
    assert top.next_sort("busy", True, "x") == ("busy", True)
    assert top.next_sort("busy", True, "p") == ("pool", False)
    items = top.rows(_cfg(), _snapshot(ok=False), None)
    assert [r.pool for r in top.sort_rows(items, "busy", True)] == ["a", "b"]  # None last
    assert [r.pool for r in top.sort_rows(items, "pool", True)] == ["b", "a"]


# --- logs -----------------------------------------------------------------------------------


def test_logs_of_a_pool_and_of_a_site() -> None:
    cfg = _cfg()
    tags = [f.tag for f in logs.files_for(cfg, "b")]
    assert tags == ["b.fpm", "b.slow", "b.supervisor", "s.error", "s.access"]
    tags = [f.tag for f in logs.files_for(cfg, "s")]
    assert tags[:3] == ["a.fpm", "a.slow", "a.supervisor"] and tags[-1] == "s.access"
    with pytest.raises(PhphostError, match="known: a, b, s"):
        logs.files_for(cfg, "nope")


def test_log_lines_merge_in_time_order() -> None:
    fpm = logs.timed("a.fpm", ["[03-Dec-2024 18:58:05] WARNING: [pool a] child 7 exited",
                               "continued"])
    err = logs.timed("s.error", ["[Tue Dec 03 18:58:03.123 2024] [proxy:error] AH01102"])
    assert fpm[1].when == fpm[0].when and fpm[0].when - err[0].when == 2
    acc = logs.line_time('127.0.0.1 - - [03/Dec/2024:18:58:04 +0000] "GET / HTTP/1.1" 200 1')
    assert acc is not None
    merged = logs.merge([fpm, err], 2)
    assert [m.tag for m in merged] == ["a.fpm", "a.fpm"]
    assert [m.tag for m in logs.merge([fpm, err], 10)] == ["s.error", "a.fpm", "a.fpm"]


# --- logs: rotation, slow log, a closed pipe ------------------------------------------------


def test_logrotate_conf_covers_every_pool_and_reopens() -> None:
    model = load_spec(str(ROOT / "examples" / "demo.toml"))
    desired = {f.path: f.content for f in desired_state(model).files}
    conf = desired[layout.LOGROTATE_CONF]
    assert f"{layout.LOG_DIR}/*.fpm.log {layout.LOG_DIR}/*.slow.log {{" in conf
    for word in ("compress", "missingok", "notifempty", "rotate 14", "maxsize", "sharedscripts"):
        assert f"\n    {word}" in conf, word
    assert all(f" {layout.program_name(p.name)}" in conf for p in model.pools)
    assert " signal USR1 " in conf
    assert layout.LOGROTATE_CONF not in {f.path for f in desired_state(parse_spec("", "x")).files}
    assert {lf.path for lf in logs.pool_logs("blog")} >= {layout.slow_log("blog"),
                                                          layout.fpm_log("blog")}


def test_a_closed_stdout_exits_141_quietly() -> None:
    """`phphost top --json | head -1`: no 'internal error', the SIGPIPE exit status."""
    code = ("import sys\nfrom phphost.cli import main as m\n"
            "m.COMMANDS['top'] = lambda a: print('x' * 300000) or 0\n"
            "sys.exit(m.main(['top']))\n")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-c", code], stdout=write_end,
                              stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert (proc.returncode, proc.stderr) == (141, b"")


def test_a_broken_pipe_elsewhere_is_still_an_error() -> None:
    """A BrokenPipeError from a socket or a child while stdout is fine is reported."""
    code = ("import sys\nfrom phphost.cli import main as m\n"
            "def boom(a):\n    raise BrokenPipeError(32, 'Broken pipe')\n"
            "m.COMMANDS['top'] = boom\nsys.exit(m.main(['top']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                          check=False)
    assert proc.returncode == 1 and b"internal error: BrokenPipeError" in proc.stderr


def test_logs_never_print_a_pools_escape_sequences(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Attacker review: a pool's PHP writes raw bytes to its FPM log (php://stderr with
    decorate_workers_output = no); `phphost logs` printed them, so a tenant could retitle,
    clear or rewrite the admin's terminal. Every control character but tab is \\xNN."""
    evil = "[07-Dec-2026 05:00:00] x\x1b]0;pwned\x07\x1b[2J\x1b[1A\tok\x9b31m\x7f\x00"
    log = tmp_path / "a.fpm.log"
    log.write_bytes(evil.encode("utf-8") + b"\nplain\r[07-Dec-2026 05:00:01] forged\n")
    out = logs.show([logs.LogFile("a.fpm", str(log))], 10)
    assert out[0] == ("a.fpm [07-Dec-2026 05:00:00] x\\x1b]0;pwned\\x07\\x1b[2J\\x1b[1A\tok"
                      "\\x9b31m\\x7f\\x00")
    assert all(not any((ord(c) < 32 and c != "\t") or 0x7f <= ord(c) <= 0x9f for c in line)
               for line in out)
    follower = logs._Follower(logs.LogFile("a.fpm", str(log)))
    with log.open("ab") as fh:
        fh.write(b"late\r\x1b[2Kfake\n")
    assert [logs.shown(t) for t in follower.poll()] == ["late\\x0d\\x1b[2Kfake"]
