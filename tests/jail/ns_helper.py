"""Run in a subprocess: enter a private mount namespace, bind SRC onto TARGET inside
the jail ROOT (so the mount IS visible to this process), then try to rebuild and to
remove the jail. Both must refuse. Prints one line per attempt.

    python -m tests.jail.ns_helper ROOT STORE SRC TARGET
"""

from __future__ import annotations

import os
import sys

from phphost.errors import HostError
from phphost.host.jailbuild import build_jail, remove_jail
from phphost.jail.manifest import Manifest
from phphost.jail.mounts import MountSpec
from phphost.launcher.launch import mount_one, private_namespace


def main(root: str, store: str, source: str, target: str) -> int:
    private_namespace()
    slash = os.open("/", os.O_PATH | os.O_DIRECTORY)
    jail = os.open(root, os.O_PATH | os.O_DIRECTORY)
    mount_one(MountSpec(source, target, writable=True), jail, slash, inside_mount=False)
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
    raise SystemExit(main(*sys.argv[1:5]))
