"""Build the master launcher (launcher/launch.c) on this host with gcc.

    python -m phphost.host.launcher build [DEST [SOURCE]]   # default layout.LAUNCHER

apply calls build_launcher() after it writes layout.LAUNCHER_SOURCE (and journals the
binary and the digest it replaces); setup-demo builds it once up front. Each build records
the binary's sha256 in DEST.sha256 (layout.LAUNCHER_DIGEST): plan rebuilds a binary that
no longer matches its record (facts/gather.py), e.g. a weakened one a test left behind.
"""

from __future__ import annotations

import os
import sys

from phphost import files, layout
from phphost.errors import HostError
from phphost.launcher.program import build_argv
from phphost.runner import run


def build_launcher(dest: str = layout.LAUNCHER, source: str | None = None,
                   record: bool = True) -> None:
    """Compile the launcher to dest (root-owned, 0755), atomically: a failed build
    leaves the old binary in place. With record, its sha256 goes to dest.sha256
    (root-only, atomic); without (a deliberately different build), the old record stays,
    so the binary no longer matches it and the next apply rebuilds it."""
    os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
    tmp = f"{dest}.phphost-tmp"    # a rollback removes a half-built one
    proc = run(build_argv(tmp, source), check=False)
    if proc.returncode != 0:
        raise HostError(f"gcc could not build the launcher {dest} from "
                        f"{source or 'launch.c'}:\n{(proc.stderr or proc.stdout).strip()[-2000:]}\n"
                        "Install gcc and libc6-dev (scripts/setup-demo does)")
    os.chmod(tmp, 0o755)  # noqa: S103 - supervisord runs it as root; not secret
    digest = files.sha256_file(tmp)
    os.replace(tmp, dest)
    if record:
        files.atomic_write(f"{dest}.sha256", digest + "\n", 0o600)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "build" or len(argv) > 3:
        print("usage: python -m phphost.host.launcher build [DEST [SOURCE]]", file=sys.stderr)
        return 64
    dest = argv[1] if len(argv) >= 2 else layout.LAUNCHER
    try:
        build_launcher(dest, argv[2] if len(argv) == 3 else None)
    except HostError as err:
        print(err, file=sys.stderr)
        return 5
    print(dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
