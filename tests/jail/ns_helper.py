"""Run by the launcher in the private mount namespace where it bound a directory inside
the jail ROOT (so the mount IS visible to this process): try to rebuild and to remove
the jail. Both must refuse. Prints one line per attempt.

    launch --pool p --jail ROOT --mount SRC:TARGET:rw -- python -m tests.jail.ns_helper ROOT STORE
"""

from __future__ import annotations

import sys

from phphost.errors import HostError
from phphost.host.jailbuild import build_jail, remove_jail
from phphost.jail.manifest import Manifest


def main(root: str, store: str) -> int:
    empty = Manifest("p", 0, 0, ())
    for what, attempt in (("build", lambda: build_jail(empty, root, store)),
                          ("remove", lambda: remove_jail(root))):
        try:
            attempt()
            print(f"{what}: DONE")
        except HostError as err:
            print(f"{what}: refused: {err}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
