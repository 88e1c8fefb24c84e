"""Build the jails' sendmail (launcher/sendmail.c) on this host with gcc.

    python -m phphost.host.sendmail build [DEST]   # default DEST = layout.SENDMAIL_BINARY
"""

from __future__ import annotations

import os
import sys

from phphost import layout
from phphost.launcher.mailer import build_argv
from phphost.runner import run


def build_sendmail(dest: str = layout.SENDMAIL_BINARY) -> None:
    """Compile the mailer to dest (root-owned, 0755), atomically."""
    os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
    tmp = f"{dest}.tmp"
    run(build_argv(tmp))
    os.chmod(tmp, 0o755)  # noqa: S103 - a program every pool user runs
    os.replace(tmp, dest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "build" or len(argv) > 2:
        print("usage: python -m phphost.host.sendmail build [DEST]", file=sys.stderr)
        return 64
    dest = argv[1] if len(argv) == 2 else layout.SENDMAIL_BINARY
    build_sendmail(dest)
    print(dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
