"""The jail cache on the demo host (facts/jailcache.py, docs/scale.md): a no-op plan
trusts every demo jail without walking it, and root tampering inside one jail (a
file added, a directory chmod'ed) is planned as a rebuild of that jail alone, which
apply then does."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from phphost import layout
from phphost.exitcodes import ExitCode
from phphost.spec.model import Model
from tests.integration.conftest import DEMO
from tests.integration.hostkit import phphost


def _plan() -> dict[str, object]:
    proc = phphost("plan", "--json", str(DEMO), check=False)
    assert proc.returncode in (ExitCode.OK, ExitCode.CHANGES), proc.stderr
    data: dict[str, object] = json.loads(proc.stdout)
    return data


def _built(plan: dict[str, object]) -> set[str]:
    actions = plan["changes"]
    assert isinstance(actions, list)
    return {str(a["pool"]) for a in actions if a.get("action") == "BuildJail"}


def _records() -> set[str]:
    with open(layout.JAIL_CACHE_FILE, encoding="utf-8") as fh:
        return set(json.load(fh)["jails"])


def test_a_no_op_plan_trusts_the_demo_jails_and_sees_tampering(demo: Model) -> None:
    jailed = {p.name for p in demo.pools if p.jail.enabled}
    time.sleep(1.1)             # nothing built within the last second (RACY_NS)
    assert _built(_plan()) == set()
    assert _records() == jailed
    st = os.stat(layout.JAIL_CACHE_FILE)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)
    assert _built(_plan()) == set()         # from the cache this time
    blog, search = Path(layout.jail_root("blog")), Path(layout.jail_root("search"))
    extra = blog / "etc" / "planted"
    try:
        extra.write_text("root planted this\n")
        os.chmod(search / "etc", 0o700)
        assert _built(_plan()) == {"blog", "search"}
    finally:
        phphost("apply", str(DEMO))
    assert not extra.exists() and (os.stat(search / "etc").st_mode & 0o777) == 0o755
    assert _records() == jailed     # apply's own scan of the jails it built (cli/confirm.py)
    time.sleep(1.1)
    assert _built(_plan()) == set()
    assert _records() == jailed
