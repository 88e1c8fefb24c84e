"""The audit's readers (Apache and FPM config text, versions, tree scans) and the
CLI's output and exit status."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from phphost.audit import apacheconf as ac
from phphost.audit import apacheview as av
from phphost.audit import facts as audit_facts
from phphost.audit import fpmconf, versions
from phphost.audit import rules as audit_rules
from phphost.audit.findings import Finding
from phphost.cli import audit as cli_audit
from phphost.exitcodes import ExitCode
from tests.unit.test_audit_fixture import CLEAN, DEMO

APACHE = """\
# comment
ServerRoot "/etc/apache2"
<VirtualHost *:80>
    ServerName a.test
    ServerAlias b.test \\
        c.test
    DocumentRoot "/srv/a"
    <Directory "/srv/a">
        AllowOverride None
    </Directory>
    Include sites/*.inc
</VirtualHost>
MaxRequestWorkers 90
"""


def test_apache_parse_sections_continuations_quotes() -> None:
    ds = ac.parse("main.conf", APACHE)
    alias = ac.named(ds, "serveralias")[0]
    assert alias.args == ("b.test", "c.test") and alias.line == 5
    over = ac.named(ds, "allowoverride")[0]
    assert [s.kind for s in over.context] == ["virtualhost", "directory"]
    assert over.section("directory") is not None and over.where == "main.conf:9"
    vhost = ac.vhosts(ds)[0]
    assert ac.vhost_names(ds, vhost) == {"a.test", "b.test", "c.test"}
    assert ac.vhost_roots(ds, vhost) == ["/srv/a"]
    assert ac.global_value(ds, "maxrequestworkers") == "90"


def test_apache_load_expands_includes_in_place_with_context() -> None:
    texts = {"/etc/apache2/apache2.conf": APACHE, "/etc/apache2/sites/x.inc": "Alias /x /srv/x\n"}
    ds = ac.load("/etc/apache2/apache2.conf", texts.get,
                 lambda pattern: [p for p in texts if p.endswith(".inc")], "/etc/apache2")
    alias = ac.named(ds, "alias")[0]
    assert alias.file == "/etc/apache2/sites/x.inc" and alias.vhost is not None
    assert [d.name for d in ds].index("alias") < [d.name for d in ds].index("maxrequestworkers")


@pytest.mark.parametrize(("section", "path", "covers"), [
    ("/", "/srv/a", True), ("/srv", "/srv/a/b", True), ("/srv/a/", "/srv/a", True),
    ("/srv/*/htdocs", "/srv/blog/htdocs/x", True), ("/srv/b", "/srv/a", False),
    ("/srv/a/b", "/srv/a", False),
])
def test_path_covers(section: str, path: str, covers: bool) -> None:
    assert ac.path_covers(section, path) is covers


def test_url_covers_is_by_segment() -> None:
    assert ac.url_covers("/status", "/status") and ac.url_covers("/status", "/status/x")
    assert not ac.url_covers("/status", "/statusx") and ac.url_covers("/", "/anything")


POOLS = """\
; comment
[global]
pid = /run/x.pid

[web]
user = php-web
listen = /run/web.sock   ; trailing comment
listen.mode = "0660"
php_admin_value[memory_limit] = 128M
"""


def test_fpm_parse() -> None:
    (pool,) = fpmconf.parse_fpm("/etc/x.conf", POOLS, "/etc/x.conf")
    assert pool.name == "web" and pool.line == 5
    assert pool.get("listen") == "/run/web.sock" and pool.get("listen.mode") == "0660"
    assert pool.get("php_admin_value[memory_limit]") == "128M"
    assert pool.where("listen") == "/etc/x.conf:7" and pool.number("pm.max_children", 5) == 5


@pytest.mark.parametrize(("value", "kind", "host", "port"), [
    ("/run/a.sock", "unix", "", 0), ("127.0.0.1:9000", "tcp", "127.0.0.1", 9000),
    ("9000", "tcp", "", 9000), ("[::1]:9001", "tcp", "::1", 9001),
    ("0.0.0.0:9000", "tcp", "", 9000),
])
def test_listen_of(value: str, kind: str, host: str, port: int) -> None:
    listen = fpmconf.listen_of(value)
    assert (listen.kind, listen.host, listen.port) == (kind, host, port)


def test_d_flags_and_supervisor_command() -> None:
    conf = "[program:x]\ncommand=/l -- /php-fpm -d opcache.enable=1 -d opcache.jit=off\n"
    command = fpmconf.supervisor_command(conf)
    assert fpmconf.d_flags(command) == {"opcache.enable": "1", "opcache.jit": "off"}


def test_backend_of() -> None:
    b = av.backend_of("proxy:unix:/run/a.sock|fcgi://pool-a/")
    assert b == av.Backend("/run/a.sock", "pool-a", 0)
    assert av.backend_of("fcgi://127.0.0.1:9000/var/www/$1") == av.Backend("", "127.0.0.1", 9000)
    assert av.backend_of("http://backend/") is None


def test_mpm_rounds_like_httpd() -> None:
    ds = ac.parse("x", "ServerLimit 4\nThreadsPerChild 25\nMaxRequestWorkers 110\n")
    limits = av.mpm(ds)
    assert (limits.max_request_workers, limits.processes) == (100, 4)
    assert av.mpm([]).max_request_workers == 400


def test_versions() -> None:
    assert versions.parse_version("Server version: Apache/2.4.59 (Debian)") == (2, 4, 59)
    assert versions.apache_advisories((2, 4, 71)) == []
    assert [a.fixed for a in versions.apache_advisories((2, 4, 64))] == [(2, 4, 65)]
    assert versions.php_advisories((8, 2, 36)) == []
    assert versions.php_advisories((8, 3, 7))[0].ids[0] == "CVE-2024-4577"


def test_scan_tree_finds_modes(tmp_path: Path) -> None:
    (tmp_path / "ok.php").write_text("x")
    os.chmod(tmp_path / "ok.php", 0o640)
    for name, mode in (("ww", 0o646), ("wr", 0o644), ("gw", 0o660)):
        (tmp_path / name).write_text("x")
        os.chmod(tmp_path / name, mode)
    (tmp_path / "link").symlink_to("/etc/passwd")
    scan = audit_facts.scan_tree("t", str(tmp_path))
    assert scan.world_writable == (str(tmp_path / "ww"),)
    assert sorted(scan.world_readable) == [str(tmp_path / "wr"), str(tmp_path / "ww")]
    assert scan.group_writable == (str(tmp_path / "gw"),)
    assert scan.entries == 5 and not scan.truncated


def test_scan_tree_is_bounded(tmp_path: Path) -> None:
    for i in range(10):
        (tmp_path / f"f{i}").write_text("x")
    scan = audit_facts.scan_tree("t", str(tmp_path), limit=4)
    assert scan.truncated and scan.entries == 4


def test_scan_tree_reads_htaccess_without_following_links(tmp_path: Path) -> None:
    """PHA027's input: regular .htaccess files only; a symlink or a FIFO named
    .htaccess is never opened (a tenant would make root read /etc/shadow or hang)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".htaccess").write_text("Require all denied\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / ".htaccess").symlink_to("/etc/shadow")
    (tmp_path / "c").mkdir()
    os.mkfifo(tmp_path / "c" / ".htaccess")
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / ".htaccess").write_text("#" * (audit_facts.MAX_HTACCESS_BYTES + 10))
    scan = audit_facts.scan_tree("t", str(tmp_path))
    texts = dict(scan.htaccess)
    assert set(texts) == {str(tmp_path / "a" / ".htaccess"), str(tmp_path / "big" / ".htaccess")}
    assert texts[str(tmp_path / "a" / ".htaccess")] == "Require all denied\n"
    assert len(texts[str(tmp_path / "big" / ".htaccess")]) == audit_facts.MAX_HTACCESS_BYTES


def test_parse_modules() -> None:
    text = "Loaded Modules:\n core_module (static)\n php_module (shared)\n"
    assert audit_facts.parse_modules(text) == frozenset({"core_module", "php_module"})


def test_parents() -> None:
    assert audit_facts.parents("/var/lib/x") == ["/", "/var", "/var/lib", "/var/lib/x"]


# --- CLI ----------------------------------------------------------------------------------


def _args(**over: object) -> argparse.Namespace:
    base: dict[str, object] = {"spec": str(DEMO), "json": False, "rule": [],
                               "fail_above": "info", "list": False}
    base.update(over)
    return argparse.Namespace(**base)


def test_cli_clean_host_exits_zero(monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(audit_facts, "gather", lambda model: CLEAN)
    assert cli_audit.cmd_audit(_args(json=True)) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["severity"] for f in out["findings"]] == ["info"]     # blog's public uploads
    assert out["failed"] is False


def test_cli_exit_status_follows_threshold(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    low = Finding("PHA017", "low", "/etc/x", "differs", "apply")
    monkeypatch.setattr(audit_facts, "gather", lambda model: CLEAN)
    monkeypatch.setattr(audit_rules, "run_rules", lambda model, facts, only: [low])
    assert cli_audit.cmd_audit(_args()) == ExitCode.FINDINGS
    assert "PHA017 LOW" in capsys.readouterr().out
    assert cli_audit.cmd_audit(_args(fail_above="low")) == 0


def test_cli_rejects_unknown_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_audit.cmd_audit(_args(rule=["PHA999"])) == 2
    assert "PHA999" in capsys.readouterr().err
