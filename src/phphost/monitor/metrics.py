"""A Snapshot as Prometheus metric families. Pure.

FPM's numbers keep the names of the widely used php-fpm exporters (hipages,
bakins/Lusitaniae): ``phpfpm_up``, ``phpfpm_accepted_connections``, ... with a
``pool`` and a ``tenant`` label. prometheus_client writes counters with the
OpenMetrics ``_total`` suffix (``phpfpm_accepted_connections_total``, as bakins'
exporter does; hipages' omits it). phphost's own metrics start with ``phphost_``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from phphost.fastcgi.status import FpmStatus
from phphost.monitor.collect import PoolView, Snapshot
from phphost.render.monitorconfig import MonitorConfig

POOL = ["pool", "tenant"]
CHILD = ["pool", "tenant", "child"]

# (name, help, FpmStatus attribute, counter?)
FPM_POOL_METRICS: tuple[tuple[str, str, str, bool], ...] = (
    ("phpfpm_start_since", "Seconds since the FPM master started.", "start_since", False),
    ("phpfpm_accepted_connections", "Requests accepted by the pool.", "accepted_conn", True),
    ("phpfpm_listen_queue", "Requests waiting for a free process (always 0 on a Unix "
     "socket: see phphost_apache_queued_requests).", "listen_queue", False),
    ("phpfpm_max_listen_queue", "Most requests ever waiting (0 on Unix sockets).",
     "max_listen_queue", False),
    ("phpfpm_listen_queue_length", "Size of the socket backlog.", "listen_queue_len", False),
    ("phpfpm_idle_processes", "Idle worker processes.", "idle_processes", False),
    ("phpfpm_active_processes", "Busy worker processes (including the one answering "
     "this status request).", "active_processes", False),
    ("phpfpm_total_processes", "Worker processes, idle and busy.", "total_processes", False),
    ("phpfpm_max_active_processes", "Most busy processes since the master started.",
     "max_active_processes", False),
    ("phpfpm_max_children_reached", "Times pm.max_children stopped the pool from forking.",
     "max_children_reached", True),
    ("phpfpm_slow_requests", "Requests that exceeded request_slowlog_timeout.",
     "slow_requests", True),
)


def _gauge(name: str, text: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=labels)


def _counter(name: str, text: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, labels=labels)


def fpm_families(views: tuple[PoolView, ...]) -> list[Metric]:
    """phpfpm_* from each pool's status; a pool that did not answer has phpfpm_up 0
    and no other phpfpm_* sample; a pool not asked (asleep, or an ondemand master
    without workers: asking would wake it or start one) has no phpfpm_* sample."""
    up = _gauge("phpfpm_up", "1 when the pool answered its status page in this scrape.", POOL)
    fams: list[Metric] = [up]
    pool_fams = [(_counter if counter else _gauge)(name, text, POOL)
                 for name, text, _attr, counter in FPM_POOL_METRICS]
    fams += pool_fams
    proc = _process_families()
    for v in views:
        labels = [v.name, v.tenant]
        st = v.scrape.status
        if v.scrape.quiet is not None:
            continue
        up.add_metric(labels, 1.0 if st is not None else 0.0)
        if st is None:
            continue
        for fam, (_n, _t, attr, _c) in zip(pool_fams, FPM_POOL_METRICS, strict=True):
            fam.add_metric(labels, float(getattr(st, attr)))
        _add_processes(proc, labels, st)
    return fams + proc.values()


@dataclass(frozen=True)
class _ProcessFamilies:
    requests: CounterMetricFamily
    duration: GaugeMetricFamily
    cpu: GaugeMetricFamily
    memory: GaugeMetricFamily
    state: GaugeMetricFamily

    def values(self) -> list[Metric]:
        return [self.requests, self.duration, self.cpu, self.memory, self.state]


def _process_families() -> _ProcessFamilies:
    return _ProcessFamilies(
        requests=_counter("phpfpm_process_requests", "Requests this worker served.", CHILD),
        duration=_gauge("phpfpm_process_request_duration", "Duration of the worker's "
                        "current or last request in microseconds.", CHILD),
        cpu=_gauge("phpfpm_process_last_request_cpu", "CPU percent of the worker's last "
                   "request.", CHILD),
        memory=_gauge("phpfpm_process_last_request_memory", "Peak memory in bytes of the "
                      "worker's last request.", CHILD),
        state=_gauge("phpfpm_process_state", "1 for the worker's state (Idle, Running, "
                     "Reading headers, ...).", [*CHILD, "state"]),
    )


def _add_processes(fams: _ProcessFamilies, labels: list[str], st: FpmStatus) -> None:
    for p in st.processes:
        child = [*labels, str(p.pid)]
        fams.requests.add_metric(child, float(p.requests))
        fams.duration.add_metric(child, float(p.request_duration))
        fams.cpu.add_metric(child, p.last_request_cpu)
        fams.memory.add_metric(child, float(p.last_request_memory))
        fams.state.add_metric([*child, p.state[:40]], 1.0)


def host_families(snap: Snapshot, cfg: MonitorConfig,
                  scrape_errors: Mapping[str, int]) -> list[Metric]:
    """phphost_*: masters, Apache's side of each pool, cgroups, jails, scrape health."""
    master = _gauge("phphost_master_up", "1 when supervisord runs the pool's FPM master.", POOL)
    inflight = _gauge("phphost_apache_inflight_requests", "Apache's connections to the "
                      "pool's socket: accepted by a worker or queued in its backlog.", POOL)
    queued = _gauge("phphost_apache_queued_requests", "Connections waiting in the pool "
                    "socket's backlog (what phpfpm_listen_queue cannot show).", POOL)
    errors = _counter("phphost_scrape_errors", "Scrapes in which the pool's status could "
                      "not be read (dead, stuck, too slow or malformed).", POOL)
    took = _gauge("phphost_scrape_pool_seconds", "How long the pool's status took.", POOL)
    built = _gauge("phphost_jail_built_timestamp_seconds", "When the pool's jail last "
                   "changed (unix time).", POOL)
    asleep = _gauge("phphost_pool_asleep", "1 when the pool's master is asleep (socket "
                    "activation: no FPM process; not asked, so not woken).", POOL)
    info = _gauge("phphost_pool_info", "The pool's settings, as labels.",
                  [*POOL, "pm", "user", "max_children"])
    for v in snap.pools:
        labels = [v.name, v.tenant]
        master.add_metric(labels, 1.0 if v.program and v.program.state == "RUNNING" else 0.0)
        errors.add_metric(labels, float(scrape_errors.get(v.name, 0)))
        asleep.add_metric(labels, 1.0 if v.scrape.quiet == "asleep" else 0.0)
        took.add_metric(labels, v.scrape.seconds)
        if v.load is not None:
            inflight.add_metric(labels, float(v.load.queued + v.load.accepted))
            queued.add_metric(labels, float(v.load.queued))
        if v.jail_built is not None:
            built.add_metric(labels, v.jail_built)
    for p in cfg.pools:
        info.add_metric([p.name, p.tenant, p.pm, p.user, str(p.max_children)], 1.0)
    return [master, inflight, queued, errors, took, built, asleep, info,
            *_cgroup_families(snap), *_site_families(cfg), *_request_families(snap, cfg),
            *_run_families(snap), *_self_families(snap)]


def _cgroup_families(snap: Snapshot) -> list[Metric]:
    mem = _gauge("phphost_pool_memory_bytes", "Memory of the pool's cgroup.", POOL)
    cpu = _counter("phphost_pool_cpu_seconds", "CPU time of the pool's cgroup.", POOL)
    pids = _gauge("phphost_pool_pids", "Processes in the pool's cgroup.", POOL)
    for v in snap.pools:
        cg, labels = v.cgroup, [v.name, v.tenant]
        if cg is None:
            continue
        if cg.memory_bytes is not None:
            mem.add_metric(labels, float(cg.memory_bytes))
        if cg.cpu_seconds is not None:
            cpu.add_metric(labels, cg.cpu_seconds)
        if cg.pids is not None:
            pids.add_metric(labels, float(cg.pids))
    return [f for f in (mem, cpu, pids) if f.samples]


def _site_families(cfg: MonitorConfig) -> list[Metric]:
    info = _gauge("phphost_site_info", "A pool serving the site (its own pool or a route's).",
                  ["site", "tenant", "server_name", "pool"])
    for s in cfg.sites:
        for pool in s.pools:
            info.add_metric([s.name, s.tenant, s.server_name, pool], 1.0)
    return [info]


def _request_families(snap: Snapshot, cfg: MonitorConfig) -> list[Metric]:
    """From Apache's pool log; 200 and 503 of every site's pools are always present
    (at 0), so that rate() and increase() see the first ones."""
    req = snap.requests
    if req is None:
        return []
    tenants = {p.name: p.tenant for p in cfg.pools}
    fam = _counter("phphost_apache_requests", "Requests Apache handed to the pool (or "
                   "refused with 503 at its bound), by final status.",
                   ["pool", "tenant", "site", "code"])
    counts = dict(req.by_code)
    for s in cfg.sites:
        for pool in s.pools:
            for code in (200, 503):
                counts.setdefault((pool, s.name, code), 0)
    for (pool, site, code), n in sorted(counts.items()):
        fam.add_metric([pool, tenants.get(pool, ""), site, str(code)], float(n))
    secs = _counter("phphost_apache_request_seconds", "Total time Apache spent on the "
                    "pool's requests.", POOL)
    for p in cfg.pools:
        secs.add_metric([p.name, p.tenant], req.micros.get(p.name, 0) / 1e6)
    skipped = _counter("phphost_pool_log_skipped_bytes", "Pool log bytes not read because "
                       "more arrived between two scrapes than one read takes.", [])
    skipped.add_metric([], float(req.skipped_bytes))
    bad = _counter("phphost_pool_log_bad_lines", "Pool log lines that did not parse.", [])
    bad.add_metric([], float(req.bad_lines))
    return [fam, secs, skipped, bad]


def _run_families(snap: Snapshot) -> list[Metric]:
    when = _gauge("phphost_last_run_timestamp_seconds", "When the last `phphost COMMAND` "
                  "finished (apply, check, verify, audit).", ["command"])
    code = _gauge("phphost_last_run_exit_code", "Its exit status.", ["command"])
    ok = _gauge("phphost_last_run_success", "1 when it exited 0.", ["command"])
    secs = _gauge("phphost_last_run_duration_seconds", "How long it ran.", ["command"])
    for cmd, run in sorted(snap.runs.items()):
        when.add_metric([cmd], run.finished)
        code.add_metric([cmd], float(run.exit_code))
        ok.add_metric([cmd], 1.0 if run.exit_code == 0 else 0.0)
        secs.add_metric([cmd], run.seconds)
    return [when, code, ok, secs]


def _self_families(snap: Snapshot) -> list[Metric]:
    sup = _gauge("phphost_supervisor_up", "1 when supervisord answered.", [])
    sup.add_metric([], 1.0 if snap.supervisor_up else 0.0)
    took = _gauge("phphost_scrape_seconds", "How long collecting this scrape took.", [])
    took.add_metric([], snap.seconds)
    return [sup, took]


def all_families(snap: Snapshot, cfg: MonitorConfig,
                 scrape_errors: Mapping[str, int]) -> Iterator[Metric]:
    yield from fpm_families(snap.pools)
    yield from host_families(snap, cfg, scrape_errors)
