"""`phphost migrate` on the private mod_php host of modphp_host.py: import, then the
stages forward one at a time (1 PHP off where unused, 2 the web user's FPM beside
mod_php, 3 the PHP sites moved to it in two groups), the URL comparison passing
after each, then back to 0 with the old host serving as before and nothing of
migrate's left. A stage that changes what a visitor sees is taken back by itself
(exit 12); bad input changes nothing.

The web user's FPM runs under the host's supervisord, so this holds the integration
lock; it never applies a spec (the demo host's pools and sites stay as they are)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from phphost import layout
from phphost.importer.migrate import render
from tests.importer.modphp_host import ModPhpHost

PHPHOST = str(Path(sys.executable).parent / "phphost")
STATE = f"{layout.STATE_DIR}/migrate.json"
PATHS = [("static.test", "/"), ("www.static.test", "/"), ("unused.test", "/"),
         ("old.test", "/x"), ("values.test", "/"), ("hta.test", "/"), ("hta.test", "/sub/"),
         ("apps.test", "/"), ("www.apps.test", "/"), ("apps.test", "/wiki/doku.php"),
         ("adminer.test", "/"), ("hta.test", "/page.html")]
# what differs by design or from one request to the next: the SAPI's name (mod_php
# -> fpm-fcgi is the point of stage 3), DokuWiki's task runner stamp, Adminer's CSP
# nonce and form tokens (new for every page)
IGNORE = [r'"sapi":"[^"]*"', r"taskrunner\.php\?[^\"']*", r'nonce="[^"]*"', r"'\d+:\d+'"]


def phphost(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([PHPHOST, *args], capture_output=True, text=True, timeout=600)
    print(f"$ phphost {' '.join(args)}\n{proc.stdout}", end="")   # shown with pytest -s
    assert proc.returncode in ok, f"phphost {' '.join(args)}: {proc.returncode}\n" \
                                  f"{proc.stdout}{proc.stderr}"
    return proc


def urls_file(host: ModPhpHost, path: Path) -> Path:
    lines = [f"http://{n}:{host.http}{p}" for n, p in PATHS]
    lines.append(f"https://secure.test:{host.https}/")
    path.write_text("# the URLs a visitor uses\n" + "\n".join(lines) + "\n")
    return path


def sapi(host: ModPhpHost, name: str) -> str:
    return str(json.loads(host.get(name, "/")[1])["sapi"])


def leftovers(host: ModPhpHost) -> list[str]:
    root = host.apache_root
    paths = [root / "conf-enabled" / render.OVERLAY_NAME, root / "mods-enabled" / "proxy.load",
             root / "mods-enabled" / "proxy_fcgi.load", Path(render.SUPERVISOR_CONF),
             Path(render.FPM_CONF)]
    return [str(p) for p in paths if os.path.lexists(p)]


def test_migrate_forward_and_back(modphp: ModPhpHost, tmp_path: Path, host_lock: None) -> None:
    if modphp.proc is None or modphp.proc.poll() is not None:
        modphp.start()
    spec = tmp_path / "imported.toml"
    phphost("import", "--apache-root", str(modphp.apache_root), "--out", str(spec))
    urls = urls_file(modphp, tmp_path / "urls.txt")
    common = [str(spec), "--apache-root", str(modphp.apache_root), "--urls", str(urls),
              *(a for rx in IGNORE for a in ("--ignore", rx))]
    first = {(n, p): modphp.get(n, p) for n, p in PATHS}
    assert sapi(modphp, "values.test") == "apache2handler"
    try:
        phphost("migrate", *common, "--to", "php-off")
        assert modphp.get("unused.test", "/x.php")[0] == 403      # was mod_php's 404
        phphost("migrate", *common, "--to", "2")
        assert sapi(modphp, "values.test") == "apache2handler"     # FPM runs, nothing sent yet
        out = phphost("migrate", *common, "--to", "move", "--sites", "*apps*").stdout
        assert "stage 3 (move): done" in out, out
        assert sapi(modphp, "values.test") == "apache2handler"
        phphost("migrate", *common, "--to", "move")                  # the rest
        for name in ("values.test", "hta.test"):
            assert sapi(modphp, name) == "fpm-fcgi", name
        assert json.loads(Path(STATE).read_text())["stage"] == 3
        # without the SAPI ignored, stage 3 differs: taken back to 2 by itself
        phphost("migrate", *common, "--to", "2")
        strict = [str(spec), "--apache-root", str(modphp.apache_root), "--urls", str(urls),
                  *(a for rx in IGNORE[1:] for a in ("--ignore", rx))]
        out = phphost("migrate", *strict, "--to", "3", "--json", ok=(12,)).stdout
        report = json.loads(out)
        assert report["stage"] == 2 and report["failed_stage"] == 3, report
        assert any("values.test" in d["url"] for d in report["differences"]), report
        assert sapi(modphp, "values.test") == "apache2handler"
    finally:
        back = phphost("migrate", *common, "--to", "0", ok=(0, 12))
    assert back.returncode == 0, back.stdout + back.stderr
    assert leftovers(modphp) == []
    assert json.loads(Path(STATE).read_text())["stage"] == 0
    last = {(n, p): modphp.get(n, p) for n, p in PATHS}
    assert {k for k in first if _plain(first[k]) != _plain(last[k])} == set()


def _plain(seen: tuple[int, str]) -> tuple[int, str]:
    body = seen[1]
    for rx in IGNORE[1:]:
        body = re.sub(rx, "", body)
    return seen[0], body


def test_bad_input_changes_nothing(modphp: ModPhpHost, tmp_path: Path, host_lock: None) -> None:
    if modphp.proc is None or modphp.proc.poll() is not None:
        modphp.start()
    spec = tmp_path / "imported.toml"
    phphost("import", "--apache-root", str(modphp.apache_root), "--out", str(spec))
    base = [str(spec), "--apache-root", str(modphp.apache_root)]
    bad = phphost("migrate", *base, "--to", "sideways", ok=(2,))
    assert "no such stage" in bad.stderr and "0 start" in bad.stderr
    assert modphp.get("apps.test", "/wiki/doku.php")[0] == 200
    dry = phphost("migrate", *base, "--to", "3", "--dry-run").stdout
    assert "stage 3 (move) would:" in dry and "SetHandler" in dry and leftovers(modphp) == []
    # without --urls: / of every name, and the paths the access log shows
    assert f"http://apps.test:{modphp.http}/wiki/doku.php" in dry, dry
    later = phphost("migrate", *base, "--to", "jails", ok=(2,))
    assert "not built yet" in later.stderr
    other = tmp_path / "other.toml"
    other.write_text(spec.read_text().replace('server_name = "static.test"',
                                              'server_name = "elsewhere.test"'))
    wrong = phphost("migrate", str(other), "--apache-root", str(modphp.apache_root),
                    "--to", "1", ok=(4,))
    assert "static-test" in wrong.stderr and "no vhost" in wrong.stderr, wrong.stderr
    assert "Nothing was changed" in wrong.stderr
    assert leftovers(modphp) == []
    # a migration under way belongs to its spec: another spec is refused
    # (engine off: mod_php sent the PHP source, stage 1 denies it; so the URLs are given)
    volatile = ["--urls", str(urls_file(modphp, tmp_path / "urls.txt")),
                *(a for rx in IGNORE[1:] for a in ("--ignore", rx))]
    phphost("migrate", *base, "--to", "1", *volatile)
    try:
        copy = tmp_path / "copy.toml"
        copy.write_text(spec.read_text())
        refused = phphost("migrate", str(copy), "--apache-root", str(modphp.apache_root),
                          "--to", "1", ok=(4,))
        assert "stands at stage 1" in refused.stderr, refused.stderr
    finally:
        phphost("migrate", *base, "--to", "0", *volatile)
    assert leftovers(modphp) == []


@pytest.fixture(autouse=True)
def _no_migration_left() -> None:
    """A previous run must not have left a migration under way on this host."""
    if os.path.exists(STATE):
        assert json.loads(Path(STATE).read_text())["stage"] == 0, f"{STATE} is not at 0"
