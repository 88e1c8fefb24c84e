"""`phphost import` on a real mod_php host (Debian's libapache2-mod-php8.2 on prefork,
ten vhosts, DokuWiki and Adminer from Debian's packages): the spec it writes loads,
names the same sites, aliases, docroots, ports, TLS files and PHP values, `phphost plan`
works on it, the problems name file and line, and import changes nothing. Broken
configs stop it with exit 9 and nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phphost.exitcodes import ExitCode
from phphost.spec.loader import load_spec
from phphost.spec.model import Model
from tests.importer.modphp_host import ModPhpHost

PHPHOST = str(Path(sys.executable).parent / "phphost")


def phphost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PHPHOST, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PHPHOST_DEBUG": "1"})


@pytest.fixture(scope="module")
def imported(modphp: ModPhpHost, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[Model, dict[str, Any], Path]]:
    out = tmp_path_factory.mktemp("import") / "imported.toml"
    proc = phphost("import", "--apache-root", str(modphp.apache_root), "--out", str(out), "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr
    yield load_spec(str(out)), json.loads(proc.stdout), out


def test_the_source_host_runs_mod_php(modphp: ModPhpHost) -> None:
    status, body = modphp.get("values.test", "/")
    assert status == 200
    seen = json.loads(body)
    assert seen["sapi"] == "apache2handler" and seen["memory_limit"] == "99M"
    assert seen["max_input_vars"] == "1500"                   # PHPINIDir's php.ini
    assert json.loads(modphp.get("hta.test", "/")[1])["upload_max_filesize"] == "7M"
    assert modphp.get("hta.test", "/page.html") == (200, "html ran")   # AddHandler .html
    assert modphp.get("engine.test", "/index.php") == (200, "<?php echo 'engine ran';\n")
    status, body = modphp.get("apps.test", "/wiki/doku.php")
    assert status == 200 and "Imported wiki" in body          # DokuWiki, Debian's package
    status, body = modphp.get("adminer.test", "/")
    assert status == 200 and "Adminer" in body                 # Adminer, Debian's package
    assert modphp.get("secure.test", "/", tls=True) == (200, "secure tls")


def test_spec_serves_the_same_names_docroots_ports_and_tls(
        modphp: ModPhpHost, imported: tuple[Model, dict[str, Any], Path]) -> None:
    model, _, _ = imported
    assert (model.apache.http_port, model.apache.https_port) == (modphp.http, modphp.https)
    sites = {s.server_name: s for s in model.sites}
    assert sorted(sites) == ["adminer.test", "apps.test", "engine.test", "hta.test", "old.test",
                             "secure.test", "static.test", "unused.test", "values.test"]
    d = modphp.docroot
    assert sites["static.test"].aliases == ("www.static.test",)
    assert sites["apps.test"].aliases == ("www.apps.test",)
    for name in ("static", "unused", "values", "hta", "apps", "secure", "adminer", "engine"):
        assert sites[f"{name}.test"].docroot == str(d(name))
    assert sites["old.test"].redirect == "http://static.test/"
    tls = sites["secure.test"].tls
    assert tls is not None and (tls.cert, tls.key) == (
        f"{modphp.base}/tls/secure.pem", f"{modphp.base}/tls/secure.key")
    assert sum(s.tls is not None for s in model.sites) == 1


def test_php_is_on_exactly_where_it_ran(imported: tuple[Model, dict[str, Any], Path]) -> None:
    model, _, _ = imported
    php = {s.server_name: s.php for s in model.sites}
    assert php == {"adminer.test": True, "apps.test": True, "engine.test": False,
                   "hta.test": True, "old.test": False, "secure.test": True,
                   "static.test": False, "unused.test": False, "values.test": True}


def test_php_values_routes_and_data_dirs(modphp: ModPhpHost,
                                         imported: tuple[Model, dict[str, Any], Path]) -> None:
    model, _, _ = imported
    sites = {s.server_name: s for s in model.sites}
    values = model.pool(sites["values.test"].pool or "")
    assert dict(values.settings.php_values)["memory_limit"] == "99M"
    assert dict(values.settings.php_admin_values)["display_errors"] == "on"
    assert dict(values.settings.php_ini) == {"max_input_vars": "1500", "memory_limit": "160M"}
    hta = model.pool(sites["hta.test"].pool or "")
    assert dict(hta.settings.php_values) == {"short_open_tag": "on", "upload_max_filesize": "7M"}
    assert sites["hta.test"].allow_override == ("DirectoryIndex",)
    apps = sites["apps.test"]
    assert [(r.path, r.pool) for r in apps.routes] == [("/wiki/", "apps-test-wiki")]
    wiki = model.pool("apps-test-wiki")
    assert wiki.writable == (f"{modphp.docroot('apps')}/wiki/data",)
    assert "RedirectMatch" in apps.allow_override and "Require" in apps.allow_override
    assert all(not p.jail.enabled for p in model.pools)


def test_problems_name_file_and_line(modphp: ModPhpHost,
                                     imported: tuple[Model, dict[str, Any], Path]) -> None:
    _, report, _ = imported
    by_where = {(p["where"], p["kind"]): p for p in report["problems"]}
    sites = modphp.apache_root / "sites"
    hta = modphp.docroot("hta")
    assert "errordocument" in by_where[(f"{sites}/40-values.conf:6", "lost")]["what"]
    rewrite = by_where[(f"{hta}/.htaccess:5", "lost")]
    assert "rewriterule" in rewrite["what"] and "500" in rewrite["decision"]
    assert "500" in by_where[(f"{hta}/.htaccess:1", "lost")]["decision"]    # php_value
    sub = by_where[(f"{hta}/sub/.htaccess:1", "decide")]
    assert "max_execution_time = 17" in sub["what"] and ".user.ini" in sub["decision"]
    assert "as text" in by_where[(f"{sites}/90-engine.conf:4", "changed")]["what"]
    html = by_where[(f"{hta}/.htaccess:6", "lost")]
    assert "*.html" in html["decision"] and "PHP source" in html["decision"]
    origins = {s["server_name"]: s["from"] for s in report["sites"]}
    assert sorted(origins["secure.test"]) == [f"{sites}/70-secure.conf:1",
                                              f"{sites}/70-secure.conf:5"]


def test_plan_works_on_the_imported_spec(imported: tuple[Model, dict[str, Any], Path]) -> None:
    _, _, out = imported
    proc = phphost("plan", str(out))
    assert proc.returncode in (ExitCode.OK, ExitCode.CHANGES), proc.stderr


def snapshot(*roots: Path) -> dict[str, tuple[int, int, float]]:
    out = {}
    for root in roots:
        for dirpath, _, files in os.walk(root):
            if "/wiki/data" in dirpath or dirpath.endswith("/logs"):
                continue                      # the running apache2 writes there
            for name in [".", *files]:
                st = os.lstat(os.path.join(dirpath, name))
                out[os.path.join(dirpath, name)] = (st.st_mode, st.st_size, st.st_mtime)
    return out


def test_import_changes_nothing(modphp: ModPhpHost, tmp_path: Path) -> None:
    # only the imported host's own tree: the shared host's /etc/apache2 moves under
    # other engineers' integration tests
    before = snapshot(modphp.base)
    out = tmp_path / "spec.toml"
    assert phphost("import", "--apache-root", str(modphp.apache_root), "--out",
                   str(out)).returncode == 0
    assert snapshot(modphp.base) == before
    assert sorted(os.listdir(tmp_path)) == ["spec.toml"]
    again = phphost("import", "--apache-root", str(modphp.apache_root), "--out", str(out))
    assert again.returncode == ExitCode.IMPORT and "--force" in again.stderr


# --- broken input: exit 9, a message naming the place, nothing written ---------------------


@pytest.fixture
def broken(modphp: ModPhpHost, tmp_path: Path) -> Path:
    """A copy of the mod_php host's config (same docroots), for breaking."""
    root = tmp_path / "apache"
    shutil.copytree(modphp.apache_root, root)
    conf = root / "apache2.conf"
    conf.write_text(conf.read_text().replace(f'ServerRoot "{modphp.apache_root}"',
                                             f'ServerRoot "{root}"'))
    return root


def refused(root: Path, tmp_path: Path) -> str:
    out = tmp_path / "never.toml"
    proc = phphost("import", "--apache-root", str(root), "--out", str(out))
    assert proc.returncode == ExitCode.IMPORT, proc.stderr
    assert not out.exists() and "Traceback" not in proc.stderr
    return proc.stderr


def test_include_of_a_missing_file(broken: Path, tmp_path: Path) -> None:
    conf = broken / "apache2.conf"
    lines = conf.read_text().splitlines()
    conf.write_text("\n".join([*lines, "Include /nonexistent/phphost-missing.conf"]) + "\n")
    said = refused(broken, tmp_path)
    assert f"line {len(lines) + 1} of {conf}" in said and "phphost-missing.conf" in said


def test_vhost_without_docroot(broken: Path, tmp_path: Path) -> None:
    (broken / "sites" / "95-bad.conf").write_text(
        "<VirtualHost 127.0.0.1:80>\n    ServerName bad.test\n</VirtualHost>\n")
    said = refused(broken, tmp_path)
    assert f"{broken}/sites/95-bad.conf:1" in said and "no DocumentRoot" in said


def test_unreadable_htaccess(broken: Path, tmp_path: Path) -> None:
    docroot = tmp_path / "locked" / "htdocs"
    docroot.mkdir(parents=True)
    (docroot / "index.html").write_text("x")
    (docroot / ".htaccess").write_text("Require all granted\n")
    os.chmod(docroot / ".htaccess", 0o600)           # root's: www-data cannot read it
    (broken / "sites" / "95-locked.conf").write_text(
        f"<Directory {tmp_path}/locked/>\n    AllowOverride All\n</Directory>\n"
        f"<VirtualHost 127.0.0.1:80>\n    ServerName locked.test\n    DocumentRoot {docroot}\n"
        "</VirtualHost>\n")
    said = refused(broken, tmp_path)
    assert f"{docroot}/.htaccess" in said and "cannot read" in said
