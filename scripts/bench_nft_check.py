#!/usr/bin/env python3
"""What the launcher's network-policy check costs with N pools (issue 12: it runs when
a launcher starts and before every master it starts on a connection, so apply's start
and wake of N new pools runs it 2 x N times).

Loads a table shaped like phphost's (docs/network.md: a dispatch chain `output` with
two rules a pool, a chain per pool) into a network namespace this script creates and
deletes (nothing on the host's own ruleset), then times, over `--runs` runs each:
  - `nft list chain inet phphost output`, what the launcher runs (launch.c policy_has);
  - `nft list chain inet phphost pool-N`, one pool's own chain, for comparison.
Root only.

    .venv/bin/python scripts/bench_nft_check.py --pools 1000 2000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

NFT = "/usr/sbin/nft"


def policy(n: int) -> str:
    out = ["table inet phphost {", "\tchain output {",
           "\t\ttype filter hook output priority filter; policy accept;"]
    out += [f"\t\tct direction reply meta skuid {40000 + i} drop" for i in range(n)]
    out.append("\t\tct state established,related accept")
    out += [f"\t\tmeta skuid {40000 + i} jump pool-p{i}" for i in range(n)]
    out.append("\t}")
    for i in range(n):
        out += [f"\tchain pool-p{i} {{", "\t\ttcp dport 443 accept",
                "\t\tmeta l4proto tcp reject with tcp reset",
                "\t\treject with icmpx admin-prohibited", "\t}"]
    return "\n".join([*out, "}", ""])


def timed(ns: str, argv: list[str], runs: int) -> float:
    """Mean milliseconds of argv inside the namespace, minus `ip netns exec true`."""
    def mean(cmd: list[str]) -> float:
        start = time.perf_counter()
        for _ in range(runs):
            subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True,
                           stdout=subprocess.DEVNULL)
        return (time.perf_counter() - start) * 1000 / runs
    return mean(argv) - mean(["true"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pools", type=int, nargs="+", default=[100, 1000, 2000])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("root only: it creates a network namespace")
    ns = f"phphost-bench-nft-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        print("| pools | list chain output (the launcher's check) | list chain pool-N |")
        print("|---|---|---|")
        for n in args.pools:
            with tempfile.NamedTemporaryFile("w", suffix=".nft") as fh:
                fh.write(policy(n))
                fh.flush()
                subprocess.run(["ip", "netns", "exec", ns, NFT, "-f", fh.name], check=True)
            dispatch = timed(ns, [NFT, "list", "chain", "inet", "phphost", "output"], args.runs)
            own = timed(ns, [NFT, "list", "chain", "inet", "phphost", f"pool-p{n // 2}"],
                        args.runs)
            print(f"| {n} | {dispatch:.1f} ms | {own:.1f} ms |")
            subprocess.run(["ip", "netns", "exec", ns, NFT, "delete", "table", "inet",
                            "phphost"], check=True)
    finally:
        subprocess.run(["ip", "netns", "delete", ns], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
