#!/usr/bin/env python3
"""Build jails for many pools under a scratch root and report time and disk per jail.

    sudo .venv/bin/python scripts/bench_jails.py [--pools 100] [--features base,dns,...]

Root only (device nodes, chown). Everything lives in one scratch directory under
/var/lib (same filesystem as /var/lib/phphost, as the store's hard links need), which
is removed at the end, also on errors. The pool users are fictitious (uids from
61000): only their passwd/group lines are invented, no account is created.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

from phphost.facts.hostview import RealHostView
from phphost.facts.jailscan import scan_jail
from phphost.host.jailbuild import build_jail, remove_jail
from phphost.host.jailstore import Store
from phphost.jail.features import build_manifest
from phphost.runner import run
from phphost.spec.model import JailSpec, Pool, PoolSettings, Tenant

MAX_POOLS = 500
FEATURES = "base,dns,tls,iconv,locale,shell"
UID0 = 61000


class BenchHost(RealHostView):
    """The real host, plus invented passwd/group lines for the benchmark's pools."""

    def passwd_entry(self, user: str) -> str | None:
        if user.startswith("bench-"):
            uid = UID0 + int(user.split("-")[1])
            return f"{user}:x:{uid}:{UID0}::/nonexistent:/usr/sbin/nologin"
        return super().passwd_entry(user)

    def group_entry(self, group: str) -> str | None:
        if group == "bench":
            return f"bench:x:{UID0}:"
        return super().group_entry(group)


@dataclass
class Row:
    pool: str
    entries: int
    manifest_s: float
    build_s: float
    rebuild_s: float
    extra_bytes: int
    inodes: int


def extra_usage(root: str, store_inodes: set[tuple[int, int]]) -> tuple[int, int]:
    """(bytes allocated, inodes) of a jail beyond the shared store objects."""
    size = inodes = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            key = (st.st_dev, st.st_ino)
            if key in store_inodes or key in seen:
                continue
            seen.add(key)
            size += st.st_blocks * 512
            inodes += 1
    st = os.lstat(root)
    return size + st.st_blocks * 512, inodes + 1


def bench(pools: int, features: tuple[str, ...], base: str) -> tuple[list[Row], str]:
    host = BenchHost()
    store_dir = os.path.join(base, "jail-store")
    home_root = os.path.join(base, "homes")
    rows: list[Row] = []
    for i in range(pools):
        name = f"bench-{i:03d}"
        tenant = Tenant("bench", "root", "bench", os.path.join(home_root, "bench"))
        pool = Pool(name, "bench", name, f"/run/phphost/{name}.sock", PoolSettings(),
                    jail=JailSpec(True, features))
        t0 = time.perf_counter()
        manifest = build_manifest(pool, tenant, host)
        t1 = time.perf_counter()
        root = os.path.join(base, "jails", name)
        build_jail(manifest, root, store_dir)
        t2 = time.perf_counter()
        if build_jail(manifest, root, store_dir):
            raise SystemExit(f"{name}: a second build changed something")
        t3 = time.perf_counter()
        rows.append(Row(name, len(manifest.entries), t1 - t0, t2 - t1, t3 - t2, 0, 0))
    store_inodes = set(Store(store_dir).index())
    for row in rows:
        row.extra_bytes, row.inodes = extra_usage(os.path.join(base, "jails", row.pool),
                                                  store_inodes)
    return rows, store_dir


def du_total(store: str, jails: str) -> str:
    """du counts a hard-linked inode once per run: store first, then the jails."""
    out = run(["du", "-sk", "--total", store, jails], timeout=300).stdout.splitlines()
    return " / ".join(line.replace("\t", " ") for line in out)


def ms(values: list[float]) -> str:
    return (f"{statistics.mean(values) * 1000:8.1f} {statistics.median(values) * 1000:8.1f} "
            f"{max(values) * 1000:8.1f}")


def report(rows: list[Row], store: str, du: str, features: tuple[str, ...]) -> None:
    objects, store_bytes = Store(store).usage()
    first, rest = rows[0], rows[1:] or rows
    print(f"jails: {len(rows)}   features: {','.join(features)}   entries/jail: "
          f"{first.entries}")
    print(f"{'':28} {'mean':>8} {'median':>8} {'max':>8}   (ms)")
    print(f"{'manifest (cached host view)':28} {ms([r.manifest_s for r in rest])}")
    print(f"{'build, first jail':28} {first.build_s * 1000:8.1f}   (fills the store)")
    print(f"{'build, other jails':28} {ms([r.build_s for r in rest])}")
    print(f"{'rebuild, nothing changed':28} {ms([r.rebuild_s for r in rows])}")
    extra = [r.extra_bytes / 1024 for r in rows]
    print(f"{'extra disk per jail (KiB)':28} {statistics.mean(extra):8.1f} "
          f"{statistics.median(extra):8.1f} {max(extra):8.1f}")
    inodes = [float(r.inodes) for r in rows]
    print(f"{'extra inodes per jail':28} {statistics.mean(inodes):8.1f} "
          f"{statistics.median(inodes):8.1f} {max(inodes):8.1f}")
    print(f"store (once): {objects} objects, {store_bytes / 2**20:.1f} MiB")
    print(f"du -sk store jails: {du}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--features", default=FEATURES)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_jails: run as root (device nodes, chown)", file=sys.stderr)
        return 1
    if not 1 <= args.pools <= MAX_POOLS:
        print(f"bench_jails: --pools must be 1..{MAX_POOLS}", file=sys.stderr)
        return 64
    features = tuple(f for f in args.features.split(",") if f)
    base = tempfile.mkdtemp(prefix="phphost-bench-", dir="/var/lib")
    try:
        rows, store = bench(args.pools, features, base)
        report(rows, store, du_total(store, os.path.join(base, "jails")), features)
        t0 = time.perf_counter()
        for row in rows:
            remove_jail(os.path.join(base, "jails", row.pool))
        removed = len(Store(store).gc())
        print(f"remove all jails + gc: {time.perf_counter() - t0:.2f} s "
              f"({removed} store objects freed)")
        if scan_jail(os.path.join(base, "jails", rows[0].pool)):
            raise SystemExit("a jail survived its removal")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
