"""The imported spec applied: every URL of the mod_php host answers the same from
phphost's Apache and FPM pools, except where import said it would not (engine off:
403 instead of PHP source; .html run as PHP by mod_php: served as text). The admin's
part is done as import's report says: the .htaccess lines it marked as a 500 are
removed first.

This reconfigures the host's apache2 and FPM, so it holds the integration lock, and
puts the demo host back afterwards (destroy --purge of the imported spec, which owns
only this test's directory, then apply of examples/demo.toml and its content)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from phphost.spec.loader import load_spec
from phphost.spec.model import Model
from tests.importer.modphp_host import ModPhpHost

ROOT = Path(__file__).resolve().parents[2]
PHPHOST = str(Path(sys.executable).parent / "phphost")
HOST_LOCK = "/run/lock/phphost-integration.lock"
DEMO = ROOT / "examples" / "demo.toml"
INI_KEYS = ("memory_limit", "display_errors", "upload_max_filesize", "short_open_tag",
            "max_input_vars")
URLS = [("static.test", "/"), ("www.static.test", "/"), ("unused.test", "/"),
        ("old.test", "/x"), ("values.test", "/"), ("hta.test", "/"), ("apps.test", "/"),
        ("www.apps.test", "/"), ("apps.test", "/wiki/doku.php"), ("adminer.test", "/"),
        ("secure.test", "/"), ("engine.test", "/index.php"), ("hta.test", "/page.html")]


def phphost(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([PHPHOST, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 10), f"phphost {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc


def seen(host: ModPhpHost, name: str, path: str, tls: bool = False) -> tuple[int, str]:
    """What a visitor sees, without the parts that differ by design (the SAPI name)."""
    status, body = host.get(name, path, tls)
    if status in (301, 302):                 # the target, not Apache's signature line
        target = re.search(r'href="([^"]+)"', body)
        return status, target.group(1) if target else body
    if body.startswith("{"):
        data = json.loads(body)
        return status, json.dumps({k: data[k] for k in INI_KEYS})
    if "Adminer" in body:
        return status, "Adminer login page"
    if "Imported wiki" in body:
        return status, "DokuWiki page"
    return status, body


def do_what_import_says(report: dict[str, Any]) -> list[str]:
    """Remove the .htaccess lines import marked as a 500 under phphost."""
    removed = []
    for p in report["problems"]:
        file, _, line = p["where"].rpartition(":")
        if file.endswith(".htaccess") and "500" in p["decision"]:
            lines = Path(file).read_text().splitlines(keepends=True)
            removed.append(lines[int(line) - 1].strip())
            lines[int(line) - 1] = "# removed for phphost: " + lines[int(line) - 1]
            Path(file).write_text("".join(lines))
    return removed


def data_dirs(report: dict[str, Any]) -> list[str]:
    return [p["where"] for p in report["problems"] if "data dir" in p["what"]]


def give_data_dirs_to_tenants(report: dict[str, Any], model: Model) -> None:
    """The second half of what import's report asks for data dirs the web user owned
    (migrate's identity stage will do it): the tenant owns them."""
    for path in data_dirs(report):
        pool = next(x for x in model.pools if path in x.writable)
        tenant = model.tenant(pool.tenant)
        subprocess.run(["chown", "-R", f"{tenant.user}:{tenant.group}", path], check=True)


def test_imported_spec_serves_the_same(modphp: ModPhpHost, tmp_path: Path,
                                       host_lock: None) -> None:
    before = {(n, p): seen(modphp, n, p) for n, p in URLS}
    before[("secure.test", "tls")] = seen(modphp, "secure.test", "/", tls=True)
    out = tmp_path / "imported.toml"
    report = json.loads(phphost("import", "--apache-root", str(modphp.apache_root),
                                "--out", str(out), "--json").stdout)
    removed = do_what_import_says(report)            # after import carried their values
    assert any("RewriteRule" in line for line in removed)
    for path in data_dirs(report):               # the first half, before applying
        subprocess.run(["chmod", "-R", "g+w", path], check=True)
    modphp.stop()                                 # phphost's Apache takes over its ports
    try:
        phphost("apply", str(out))
        give_data_dirs_to_tenants(report, load_spec(str(out)))
        after = {(n, p): seen(modphp, n, p) for n, p in URLS}
        after[("secure.test", "tls")] = seen(modphp, "secure.test", "/", tls=True)
    finally:
        phphost("destroy", str(out), "--purge")
        phphost("apply", str(DEMO))
        subprocess.run([sys.executable, str(ROOT / "scripts" / "demo_content.py"), str(DEMO),
                        str(ROOT / "examples" / "demo-content")], check=True)
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert set(changed) == {("engine.test", "/index.php"), ("hta.test", "/page.html")}, changed
    assert after[("engine.test", "/index.php")][0] == 403        # was PHP source
    assert after[("hta.test", "/page.html")] == (200, "<?php echo 'html ran';\n")
