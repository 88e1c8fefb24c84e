"""Where an idle FPM master's memory goes, mapping by mapping (issue 12: an awake
master with no request <= 6 MB PSS).

Starts N bare PHP-FPM masters per variant (a throw-away config in a temporary
directory: one ondemand pool as `nobody`, its socket in that directory; no Apache,
no phphost, nothing of the host's configuration is read or changed beyond what
php-fpm itself reads: /etc/php/8.2/fpm/php.ini and, for the "debian" variant, its
conf.d), waits until they are up, reads /proc/PID/smaps of each and stops them by
pid. It prints, per master (the mean over the N masters of each variant):

* private dirty pages, by kind: the heap (PHP's startup tables, malloc), the
  OPcache segment (a shared mapping of /dev/zero: what startup touched in it),
  relocated pages of the binary and shared libraries (.so: RELRO and .data written
  by the dynamic linker), other anonymous memory (Zend's first 2 MB chunk, stack);
* PSS: private pages plus each shared page divided by its sharers, so with N
  masters of one variant up at once the libraries' clean pages count about 1/N.

Variants: "debian" = every module Debian enabled (conf.d), OPcache's interned strings
buffer at PHP's 8 MB, as phphost rendered before; "base" = phphost's base set
(spec/extensions.py) with the buffer sized for `opcache_memory_mb` (render/fpm.py);
and extension-by-extension costs on top of the base set with --each.

    .venv/bin/python scripts/bench_master_memory.py [--masters 20] [--each] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time

from phphost import layout
from phphost.spec.extensions import closure
from phphost.spec.model import PoolSettings

KINDS = ("heap", "opcache", "relocations", "anon")


def kind(name: str) -> str:
    if name.startswith(("/dev/zero", "/SYSV")):
        return "opcache"
    if name == "[heap]":
        return "heap"
    if name in ("", "[stack]") or name.startswith("[anon"):
        return "anon"
    return "relocations" if (".so" in name or name.startswith("/usr/sbin/php")) else "other"


def smaps(pid: int) -> dict[str, int]:
    """kB per kind of private dirty pages, plus "pss" and "rss"."""
    out: collections.Counter[str] = collections.Counter()
    current = "anon"
    with open(f"/proc/{pid}/smaps", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if not parts[0].endswith(":"):                  # a mapping's header
                current = kind(parts[5] if len(parts) > 5 else "")
            elif parts[0] == "Private_Dirty:":
                out[current] += int(parts[1])
            elif parts[0] in ("Pss:", "Rss:"):
                out[parts[0][:-1].lower()] += int(parts[1])
    return dict(out)


def fpm_conf(directory: str, i: int) -> str:
    path = os.path.join(directory, f"m{i}.conf")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"[global]\npid = {directory}/m{i}.pid\nerror_log = {directory}/m{i}.log\n"
                 f"daemonize = no\n[p{i}]\nuser = nobody\ngroup = nogroup\n"
                 f"listen = {directory}/m{i}.sock\npm = ondemand\npm.max_children = 2\n")
    return path


def variant_args(extensions: tuple[str, ...] | None, opcache_mb: int,
                 isb: int | None) -> tuple[list[str], dict[str, str]]:
    """-d flags and environment: None = Debian's conf.d, else exactly these (in order)."""
    flags = ["opcache.enable=1", f"opcache.memory_consumption={opcache_mb}"]
    env = dict(os.environ)
    if extensions is not None:
        env["PHP_INI_SCAN_DIR"] = ""
        flags = ["zend_extension=opcache",
                 *(f"extension={e}" for e in extensions), *flags]
    if isb is not None:
        flags.append(f"opcache.interned_strings_buffer={isb}")
    return [a for f in flags for a in ("-d", f)], env


def run_variant(n: int, extensions: tuple[str, ...] | None, opcache_mb: int,
                isb: int | None) -> dict[str, float]:
    args, env = variant_args(extensions, opcache_mb, isb)
    with tempfile.TemporaryDirectory(prefix="phphost-mem-") as d:
        procs = [subprocess.Popen([layout.FPM_BINARY, "--nodaemonize", "--fpm-config",
                                   fpm_conf(d, i), *args], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for i in range(n)]
        try:
            deadline = time.monotonic() + 30
            while not all(os.path.exists(f"{d}/m{i}.sock") for i in range(n)):
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit(f"masters did not start: see {d}/m*.log")
                time.sleep(0.1)
            time.sleep(0.5)
            rows = [smaps(p.pid) for p in procs]
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait()
    keys = {k for r in rows for k in r}
    mean = {k: sum(r.get(k, 0) for r in rows) / n / 1024 for k in keys}
    mean["dirty"] = sum(mean.get(k, 0.0) for k in (*KINDS, "other"))
    return mean


def line(label: str, m: dict[str, float]) -> str:
    cols = " ".join(f"{m.get(k, 0.0):7.2f}" for k in (*KINDS, "dirty", "pss"))
    return f"{label:34s} {cols}"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--masters", type=int, default=20, help="masters up at once per variant")
    ap.add_argument("--opcache-mb", type=int, default=64, help="opcache_memory_mb (64: default)")
    ap.add_argument("--each", action="store_true", help="each extension on top of the base set")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        ap.error("run as root (FPM masters switch their workers to nobody)")
    from phphost.render.fpm import interned_strings_mb
    isb = interned_strings_mb(PoolSettings(opcache_memory_mb=args.opcache_mb))
    variants: list[tuple[str, tuple[str, ...] | None, int | None]] = [
        ("debian (before)", None, None),
        ("debian, buffer sized", None, isb),
        ("opcache alone, buffer sized", (), isb),
        ("base (phphost default)", closure(()), isb),
        ("base, buffer 1 MB", closure(()), 1),
    ]
    if args.each:
        variants += [(f"base + {e}", closure((e,)), isb)
                     for e in ("apcu", "curl", "gd", "intl", "xsl", "ffi", "readline")]
    out: dict[str, dict[str, float]] = {}
    if not args.json:
        print(f"{args.masters} masters up at once per variant, opcache_memory_mb "
              f"{args.opcache_mb} (buffer sized: {isb} MB); MB per master")
        print(f"{'variant':34s} {'heap':>7s} {'opcache':>7s} {'relocs':>7s} {'anon':>7s} "
              f"{'dirty':>7s} {'pss':>7s}")
    for label, exts, buf in variants:
        out[label] = run_variant(args.masters, exts, args.opcache_mb, buf)
        if not args.json:
            print(line(label, out[label]), flush=True)
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
