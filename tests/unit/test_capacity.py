"""Capacity report (plan/capacity.py) and its /proc parsers (facts/capacity.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phphost.cli.result import PlanResult
from phphost.errors import PlanError
from phphost.facts.capacity import (
    PoolMemory,
    parse_meminfo_total,
    parse_pss,
    parse_status,
    pool_memory,
)
from phphost.plan import actions as A
from phphost.plan.capacity import DEFAULT_MASTER, DEFAULT_WORKER, MIB, capacity, refuse_unless_fits
from phphost.spec.loader import load_spec

DEMO = str(Path(__file__).resolve().parents[2] / "examples" / "demo.toml")
GIB = 1024 * MIB


def test_parsers() -> None:
    assert parse_meminfo_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n") == 24576000 * 1024
    assert parse_meminfo_total("") == 0
    assert parse_pss("Rss:  12000 kB\nPss:   3072 kB\n") == 3072 * 1024
    assert parse_pss("Rss: 1 kB\n") is None
    assert parse_status("Name:\tphp-fpm8.2\nUid:\t1001\t1001\t1001\t1001\nPPid:\t77\n") == (
        "php-fpm8.2", 1001, 77)
    assert parse_status("Name:\tx\n") is None


def test_defaults_where_nothing_runs_and_measured_where_it_does() -> None:
    model = load_spec(DEMO)
    measured = {"files": PoolMemory(2, 30 * MIB, 9 * MIB)}
    cap = capacity(model, measured, 24 * GIB)
    files = next(p for p in cap.pools if p.pool == "files")
    blog = next(p for p in cap.pools if p.pool == "blog")
    assert files.committed == 6 * 30 * MIB + 9 * MIB + 32 * MIB
    assert (files.worker_measured, blog.worker_measured) == (True, False)
    assert blog.committed == 3 * DEFAULT_WORKER + DEFAULT_MASTER + 32 * MIB
    assert cap.committed == sum(p.committed for p in cap.pools) and cap.fits
    assert cap.lines(verbose=False)[0].startswith("capacity: ")
    assert len(cap.lines(verbose=True)) == 1 + len(model.pools)
    refuse_unless_fits(cap, DEMO, force=False)       # fits: no error


def test_refused_when_the_worst_case_does_not_fit_unless_forced() -> None:
    cap = capacity(load_spec(DEMO), {}, 256 * MIB)
    assert not cap.fits
    with pytest.raises(PlanError) as err:
        refuse_unless_fits(cap, DEMO, force=False)
    text = str(err.value)
    assert DEMO in text and "256M" in text and "--force" in text and "max_children" in text
    refuse_unless_fits(cap, DEMO, force=True)


def test_pool_memory_from_a_fake_proc(tmp_path: Path) -> None:
    def proc(pid: int, name: str, uid: int, ppid: int, pss_kb: int) -> None:
        d = tmp_path / str(pid)
        d.mkdir()
        (d / "status").write_text(f"Name:\t{name}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
                                  f"PPid:\t{ppid}\n")
        (d / "smaps_rollup").write_text(f"Rss: 1 kB\nPss: {pss_kb} kB\n")
    proc(10, "php-fpm8.2", 0, 1, 8000)          # master (root)
    proc(11, "php-fpm8.2", 0, 10, 3000)         # root: not a worker
    proc(12, "php-fpm8.2", 65534, 10, 5000)     # nobody's workers
    proc(13, "php-fpm8.2", 65534, 10, 7000)
    proc(14, "bash", 65534, 1, 9000)            # nobody, but not php-fpm
    got = pool_memory({"p": "nobody", "q": "no-such-user-x"}, proc=str(tmp_path))
    assert got["p"] == PoolMemory(2, 7000 * 1024, 8000 * 1024)
    assert got["q"] == PoolMemory()


def test_plan_output_carries_the_report() -> None:
    cap = capacity(load_spec(DEMO), {}, 24 * GIB)
    result = PlanResult(A.Plan(()), verbose=True, capacity=cap)
    assert "capacity: " in result.text() and "files: 6 x 40M (default)" in result.text()
    data = json.loads(result.json())
    assert data["capacity"]["fits"] is True and len(data["capacity"]["pools"]) == 5
    assert "fingerprint" in data
