"""`phphost migrate` through all seven stages and back, on a brand-new Debian 12 root.

Stages 6 and 7 hand the sites to phphost's own rendering in /etc/apache2 and create
users: on this shared host those belong to the demo, so the whole walk runs where the
old server IS the host's Apache, a fresh root in namespaces of its own
(`scripts/fresh-root --migrate`, docs/fresh-root.md): setup-demo's packages plus
libapache2-mod-php8.2 installed offline, the content of tests/importer/modphp_host.py
served by mod_php on prefork from the root's /etc/apache2, then `phphost import` and
`phphost migrate --to N` for N = 1..7 and back to 0 (tests/fresh/migrate_inside.py),
each step's URL comparison passing. PHPHOST_FRESH_SOURCE=worktree: the working tree.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fresh.test_fresh_root import CANNOT_RUN, LOG_DIR, run_fresh_root

# forward; stage 6 refused up front (exit 4: .htaccess lines phphost answers 500 for),
# the admin's edits; a stage 6 that takes itself back (exit 12: the vhost's ErrorDocument,
# which import listed as lost), the admin's edit, then 6; a stage 7 that takes itself
# back (the wiki's pool needs jail features), the admin's jail features for it, then 7;
# and back to the start
STEPS = [("1", "0"), ("2", "0"), ("3", "0"), ("4", "0"), ("5", "0"), ("6", "4"), ("6", "12"),
         ("6", "0"), ("7", "12"), ("7", "0"),
         ("6", "0"), ("5", "0"), ("4", "0"), ("3", "0"), ("2", "0"), ("1", "0"), ("0", "0")]


def test_migrate_every_stage_and_back_on_a_fresh_debian_root() -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / "migrate.log"
    rc, text, wall = run_fresh_root(log, "--migrate")
    if rc == CANNOT_RUN:
        why = re.search(r"cannot run here: (.*)", text)
        pytest.skip(f"scripts/fresh-root: {why.group(1) if why else text[-500:]}")
    tail = "\n".join(text.splitlines()[-80:])
    assert rc == 0, f"scripts/fresh-root --migrate exited {rc} after {wall:.0f}s; {log}:\n{tail}"
    assert "fresh-root: PASS" in text and "fresh-migrate: PASS" in text, tail
    assert re.search(r"^fresh-root: PID 1, network: lo $", text, re.MULTILINE), tail
    steps = re.findall(r"^fresh-migrate: --to (\d): exit (\d+)", text, re.MULTILINE)
    assert steps == STEPS, steps
    assert "stage 6 taken back by itself (exit 12): stage 5's masters serve as www-data" in text
    assert "stage 7 taken back by itself (exit 12)" in text
    assert "stage 6 refused up front (exit 4)" in text
    assert "stage 6 --dry-run: the links, phphost's plan and every owner change listed" in text
    # every stage compared the URLs and found them the same
    for stage in range(1, 8):
        assert re.search(rf"stage {stage} \(\S+\): done, all \d+ URLs answer as before", text), \
            f"stage {stage} without a passing comparison"
    # stage 6 showed the owner changes before making them, and the plan
    assert "path(s) of the tenant homes change owner, group or mode" in text, tail
    assert "/srv/old/apps/htdocs/wiki/data/pages/migrated.txt: www-data:www-data 0644 -> " \
           "apps:apps 0664" in text, tail
    assert "/srv/old/apps: root:root 0755 -> apps:apps 0750" in text, tail
    # ... before phphost's plan is shown, and that before apply carries it out
    listed = text.rindex("path(s) of the tenant homes change owner, group or mode")
    shown = text.index("* create user php-apps-test-wiki", listed)
    assert re.search(r"\[\d+/\d+\] create user php-apps-test-wiki", text[shown:]), tail
    assert re.search(r"own users, unjailed: .*=\S+@/(,|$)", text, re.MULTILINE), tail
    jailed = re.search(r"^fresh-migrate: own users, jailed: (.*)$", text, re.MULTILINE)
    assert jailed and "@/," not in jailed.group(1) + "," and "www-data" not in jailed.group(1), \
        tail
    assert text.count("the wiki page written before stage 1 reads back; a new page's metadata "
                      "written by php-apps-test-wiki") == 2, tail
    assert "fresh-migrate: back at stage 0: every URL answers as before" in text, tail
    for line in text.splitlines():
        if line.startswith(("fresh-root: ", "fresh-migrate: ")):
            print(line)
    print(f"fresh-root --migrate: pytest wall time {wall:.0f}s (log: {log})")


def test_the_inside_script_is_where_the_mode_runs_it() -> None:
    here = Path(__file__).resolve().parent
    script = (here.parents[1] / "scripts" / "fresh-root").read_text()
    assert "tests.fresh.migrate_inside" in script and (here / "migrate_inside.py").is_file()
