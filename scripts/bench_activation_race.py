#!/usr/bin/env python3
"""Requests timed around the stops of idle socket-activated pools, longer than the test
(tests/jail/test_activation_race.py, whose hammer this runs; docs/idle.md, "A request
during a stop"):

    .venv/bin/python scripts/bench_activation_race.py [--pools 12] [--seconds 90]
        [--cycles 1000] [--modes random,worker,master] [--timeout 5] [--weakened]

Private launchers and php-fpm8.2 masters only (a throw-away system user, a directory under
/var/lib, both removed after); nothing of the host's Apache, supervisord or pools is
touched, so the host lock is not needed. --weakened builds the launcher without its nudge
and restart (NUDGE_STUCK, RESTART_STUCK = 0: the launcher as before the fix). Root only.
Prints one line: requests timed, answered per moment, lost, answer times.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import secrets
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.jail.helpers import Account
from tests.jail.test_activation_race import (
    MODES,
    hammer,
    make_rig,
    pools,
    report,
    weakened,
)

from phphost.host.launcher import build_launcher
from phphost.runner import run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pools", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--weakened", action="store_true")
    args = ap.parse_args()
    modes = tuple(args.modes.split(","))
    if os.geteuid() != 0 or not set(modes) <= set(MODES) or args.pools < 1:
        print(f"run as root; --modes from {','.join(MODES)}; --pools >= 1", file=sys.stderr)
        return 64
    tag = secrets.token_hex(3)
    user, group = f"pbru{tag}", f"pbrg{tag}"
    run(["groupadd", "--system", group])
    try:
        run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "--gid", group, user])
        try:
            account = Account(user, group, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
            with tempfile.TemporaryDirectory(prefix="phphost-launch-", dir="/var/lib") as d:
                os.chmod(d, 0o755)  # noqa: S103 - a program, not a secret
                binary = f"{d}/launch"
                build_launcher(binary, record=False)
                with make_rig(account, binary) as rig:
                    if args.weakened:
                        binary = weakened(rig, "launch-weak", "NUDGE_STUCK", "RESTART_STUCK")
                    with pools(rig, binary, args.pools, "b") as started:
                        t0 = time.monotonic()
                        tally = hammer(rig, started, modes, args.cycles, args.seconds,
                                       args.timeout)
                        took = time.monotonic() - t0
            label = "weakened launcher" if args.weakened else "launcher"
            print(report(f"{label}, {args.pools} pools", tally, took))
            return 1 if tally.lost else 0
        finally:
            run(["userdel", user], check=False)
    finally:
        run(["groupdel", group], check=False)


if __name__ == "__main__":
    raise SystemExit(main())
