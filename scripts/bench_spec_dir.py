#!/usr/bin/env python3
"""How a many-tenant spec directory and a tenant-limited plan scale. Pure: nothing on
the host is read or changed (the facts are those of a converged host, made up).

    .venv/bin/python scripts/bench_spec_dir.py [--tenants 1000]

For N tenants (one pool and one site each, unjailed so no ldd runs) it writes a
spec directory (a global file and one file per tenant) and a single-file spec to a
scratch directory (removed at the end), then times: loading each, the record of the
last apply (dump and load), the tenant-limited model and its scope, and planning the
whole host versus one tenant (desired state + planner on converged facts)."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from phphost import layout
from phphost.facts.gather import DirFact, Facts
from phphost.facts.parse import ProgramStatus
from phphost.facts.state import State
from phphost.plan.desired import Desired, desired_state
from phphost.plan.planner import make_plan
from phphost.plan.scope import make_scope
from phphost.render.nftables import digest
from phphost.spec.loader import load_spec
from phphost.spec.snapshot import dump_model, limited_model, load_model

T = TypeVar("T")

GLOBAL = """[apache]
max_request_workers = 150

[templates.base]
pm = "ondemand"
max_children = 2
"""


def tenant(i: int) -> str:
    name = f"t{i:05d}"
    return f"""[tenants.{name}]
home = "/srv/bench/{name}"

[pools.{name}]
tenant = "{name}"
template = "base"
jail = {{ enabled = false }}

[sites.{name}]
server_name = "{name}.bench.test"
tenant = "{name}"
docroot = "htdocs"
pool = "{name}"
"""


def timed(what: str, fn: Callable[[], T]) -> T:
    start = time.perf_counter()
    out = fn()
    print(f"  {what:<46} {1000 * (time.perf_counter() - start):9.1f} ms")
    return out


def converged(d: Desired) -> tuple[Facts, State]:
    facts = Facts(
        files={f.path: f.content for f in d.files}, links=dict(d.links),
        users={u.name: u.group for u in d.users}, groups=frozenset(d.groups),
        dirs={x.path: DirFact(x.owner, x.group, x.mode) for x in d.dirs},
        acls={a.path: frozenset(a.entries) for a in d.acls}, modules=frozenset(d.modules_on),
        programs={layout.program_name(p): ProgramStatus(layout.program_name(p), "RUNNING", 1)
                  for p in d.pools},
        supervisor_running=True, apache_running=True, nft_live="t", nft_loaded=digest("t"))
    state = State(pools=d.pools, sites=d.sites, users=tuple(u.name for u in d.users),
                  pool_users=tuple(u.name for u in d.users if u.system), groups=d.groups,
                  homes=d.homes, files=tuple(f.path for f in d.files))
    return facts, state


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tenants", type=int, default=1000)
    n = ap.parse_args().tenants
    scratch = Path(tempfile.mkdtemp(prefix="phphost-bench-spec-"))
    try:
        specdir = scratch / "spec.d"
        specdir.mkdir()
        (specdir / "00-global.toml").write_text(GLOBAL)
        for i in range(n):
            (specdir / f"t{i:05d}.toml").write_text(tenant(i))
        (scratch / "one.toml").write_text(GLOBAL + "".join(tenant(i) for i in range(n)))
        print(f"{n} tenants, one pool and one site each")
        one = timed("load the single file", lambda: load_spec(str(scratch / "one.toml")))
        model = timed(f"load the directory ({n + 1} files)", lambda: load_spec(str(specdir)))
        text = timed("record of the last apply: dump", lambda: dump_model(one))
        print(f"  {'  its size':<46} {len(text) / 1024:9.1f} KiB")
        applied = timed("record of the last apply: load", lambda: load_model(text, "x"))
        full = timed("desired state, whole host", lambda: desired_state(model, {}, ()))
        facts, state = converged(full)
        plan = timed("plan, whole host", lambda: make_plan(full, facts, state))
        assert not plan.has_changes(), [a.describe() for a in plan.changes][:5]
        mine = {"t00007"}
        limited = timed("tenant-limited model (one tenant)",
                        lambda: limited_model(model, applied, mine))
        scope = timed("its scope", lambda: make_scope(mine, (model, applied, limited), state))
        part = timed("desired state, tenant-limited", lambda: desired_state(limited, {}, ()))
        timed("narrow what gather reads", lambda: scope.narrow(part.wanted()))
        plan = timed("plan, one tenant", lambda: make_plan(part, facts, state, None, scope))
        assert not plan.has_changes(), [a.describe() for a in plan.changes][:5]
        wanted, narrowed = part.wanted(), scope.narrow(part.wanted())
        print(f"  gather reads: dirs {len(wanted.dirs)} -> {len(narrowed.dirs)}, "
              f"ACL trees {len(wanted.grants)} -> {len(narrowed.grants)}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
