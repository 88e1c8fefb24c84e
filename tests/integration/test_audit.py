"""`phphost audit` on the live demo host: clean as applied, and each crafted bad host
(a hand-edited rendered file, a chmod, an extra FPM pool file) triggers its rule.
Every change is undone in teardown and the host is shown to match the spec again."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phphost import layout
from phphost.exitcodes import ExitCode
from phphost.spec.model import Model
from tests.integration.conftest import DEMO
from tests.integration.hostkit import phphost

EXIT_FINDINGS = ExitCode.FINDINGS
EXTRA_POOL = "/etc/php/8.2/fpm/pool.d/zz-phphost-audit-test.conf"


def audit(*extra: str) -> tuple[int, list[dict[str, Any]]]:
    proc = phphost("audit", str(DEMO), "--json", *extra, check=False)
    assert proc.returncode in (0, EXIT_FINDINGS), proc.stderr
    return proc.returncode, json.loads(proc.stdout)["findings"]


def hits(findings: list[dict[str, Any]], rule: str) -> list[dict[str, Any]]:
    return [f for f in findings if f["rule"] == rule]


@contextlib.contextmanager
def edited(path: str, old: str, new: str) -> Iterator[None]:
    """`path` with `old` replaced by `new`; the exact original content, mode and owner
    come back afterwards (nothing was reloaded, so nothing else needs undoing)."""
    original = Path(path).read_bytes()
    st = os.stat(path)
    text = original.decode()
    assert old in text, f"{old!r} not in {path}"
    try:
        Path(path).write_text(text.replace(old, new, 1))
        yield
    finally:
        Path(path).write_bytes(original)
        os.chmod(path, stat.S_IMODE(st.st_mode))
        os.chown(path, st.st_uid, st.st_gid)


@contextlib.contextmanager
def chmodded(path: str, mode: int) -> Iterator[None]:
    before = stat.S_IMODE(os.lstat(path).st_mode)
    try:
        os.chmod(path, mode)
        yield
    finally:
        os.chmod(path, before)


@pytest.fixture
def matches_spec_after(demo: Model) -> Iterator[Model]:
    """After the test: `phphost plan` finds nothing to change, or apply restores it."""
    yield demo
    if phphost("plan", str(DEMO), check=False).returncode != 0:
        phphost("apply", str(DEMO))
        pytest.fail("the test left the host different from the spec (re-applied)")


def test_demo_host_has_no_findings_above_info(demo: Model) -> None:
    code, findings = audit()
    assert code == 0, findings
    assert all(f["severity"] == "info" for f in findings), findings


def test_extra_fpm_pool_on_tcp_without_allowed_clients(matches_spec_after: Model) -> None:
    assert not os.path.exists(EXTRA_POOL)
    try:
        Path(EXTRA_POOL).write_text("[audittest]\nuser = nobody\ngroup = nogroup\n"
                                    "listen = 127.0.0.1:9473\npm = static\n"
                                    "pm.max_children = 1\n")
        code, findings = audit()
    finally:
        os.unlink(EXTRA_POOL)
    found = hits(findings, "PHA002")
    assert code == EXIT_FINDINGS and [f["severity"] for f in found] == ["high"]
    assert found[0]["where"] == f"{EXTRA_POOL}:4"


def test_world_and_group_writable_tenant_file(matches_spec_after: Model) -> None:
    site = matches_spec_after.sites[0]
    assert site.docroot is not None and site.tenant is not None
    target = f"{site.docroot}/index.html"
    with chmodded(target, 0o666):
        code, findings = audit()
    assert code == EXIT_FINDINGS
    assert target in hits(findings, "PHA003")[0]["problem"]
    assert target in hits(findings, "PHA005")[0]["problem"]
    assert hits(findings, "PHA004")[0]["severity"] == "low"     # the home stays closed


def test_world_writable_socket(matches_spec_after: Model) -> None:
    sock = matches_spec_after.pool("blog").socket
    with chmodded(sock, 0o666):
        _, findings = audit()
    assert [(f["severity"], f["where"]) for f in hits(findings, "PHA001")] == [
        ("critical", sock)]


def test_hand_edited_site_with_allow_override_all(matches_spec_after: Model) -> None:
    conf = layout.site_conf("blog")
    with edited(conf, "AllowOverride AuthConfig", "AllowOverride All"):
        code, findings = audit()
    assert code == EXIT_FINDINGS
    assert [f["severity"] for f in hits(findings, "PHA008")] == ["high"]
    assert [f["where"] for f in hits(findings, "PHA017")] == [conf]


def test_hand_edited_php_off_site_serving_php(matches_spec_after: Model) -> None:
    conf = layout.site_conf("docs")
    with edited(conf, "Require all denied", "Require all granted"):
        _, findings = audit()
    assert [f["severity"] for f in hits(findings, "PHA009")] == ["high"]


def test_hand_edited_pool_listen_mode(matches_spec_after: Model) -> None:
    conf = layout.fpm_conf("files")
    with edited(conf, "listen.mode = 0660", "listen.mode = 0666"):
        _, findings = audit()
    assert [f["severity"] for f in hits(findings, "PHA001")] == ["critical"]


def test_global_conf_without_pool_bounds(matches_spec_after: Model) -> None:
    conf = layout.APACHE_GLOBAL_CONF
    text = Path(conf).read_text()
    bounds = text[text.index("# per pool"):text.index("# FPM status")]
    with edited(conf, bounds, ""):
        _, findings = audit("--rule", "PHA013")
    assert {f["where"] for f in findings if f["severity"] == "high"} == {
        f"tenants.{t.name}" for t in matches_spec_after.tenants
        if matches_spec_after.pools_of(t.name)}
