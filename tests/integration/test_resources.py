"""Resource isolation on the live demo host (issue 7): each jail's private /tmp is a
bounded noexec tmpfs where uploads still land, each master has its own IPC
namespace; verify's resources family is BREACHED on a host weakened for each."""

from __future__ import annotations

import http.client
import json
import os
import pwd
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost import layout
from phphost.facts import cgroups
from phphost.facts.gather import fpm_master_pid
from phphost.layout import jail_root as default_root
from phphost.render.cgroups import pool_cgroup
from phphost.spec.limits import pool_limits
from phphost.spec.loader import load_spec
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.conftest import DEMO
from tests.integration.test_verify import breached, cells, verdicts
from tests.integration.test_verify_weakened import (
    BREACHED,
    check,
    restart_master,
    restore_launcher,
    weaken_launcher,
    weakened,
)

UPLOAD_PHP = r"""<?php
header('Content-Type: application/json');
$f = $_FILES['up'] ?? null;
$out = ['tmp_dir' => $f ? dirname($f['tmp_name']) : null, 'error' => $f['error'] ?? null,
        'upload_tmp_dir' => ini_get('upload_tmp_dir'), 'sys_temp_dir' => sys_get_temp_dir()];
$dest = __DIR__ . '/uploads/' . basename($_GET['name']);
$out['moved'] = $f ? move_uploaded_file($f['tmp_name'], $dest) : false;
$out['size'] = $out['moved'] ? filesize($dest) : null;
if ($out['moved']) { unlink($dest); }
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
$out['session'] = $_SESSION['n'];
$out['session_id'] = session_id();
// fill /tmp until the tmpfs says no: it is bounded by tmp_size
$chunk = str_repeat('x', 1 << 20);
$n = 0;
$fill = sys_get_temp_dir() . '/fill-' . basename($_GET['name']);
$h = @fopen($fill, 'w');
while ($h && $n < 200 && @fwrite($h, $chunk) === strlen($chunk)) { $n++; fflush($h); }
if ($h) { fclose($h); }
@unlink($fill);
$out['tmp_mib_written'] = $n;
echo json_encode($out);
"""


@pytest.fixture
def upload_script(demo: Model) -> Iterator[tuple[str, str]]:
    site = next(s for s in demo.sites if s.name == "blog")
    assert site.docroot is not None
    tenant = demo.tenant("blog")
    name = f"upload-{uuid.uuid4().hex[:8]}.php"
    path = Path(site.docroot) / name
    path.write_text(UPLOAD_PHP)
    pw = pwd.getpwnam(tenant.user)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0o640)
    os.utime(path, (1, 1))     # older than opcache.file_update_protection
    yield site.server_name, f"/{name}"
    path.unlink()


def post_file(host: str, path: str, data: bytes) -> dict[str, object]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a.bin\""
            f"\r\nContent-Type: application/octet-stream\r\n\r\n").encode() + data \
        + f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=60)
    try:
        conn.request("POST", path, body=body, headers={
            "Host": host, "Content-Type": f"multipart/form-data; boundary={boundary}"})
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        assert resp.status == 200, text[:500]
        return dict(json.loads(text))
    finally:
        conn.close()


def test_uploads_and_sessions_work_with_a_bounded_private_tmp(
        demo: Model, upload_script: tuple[str, str]) -> None:
    host, url = upload_script
    out = post_file(host, f"{url}?name=a.bin", os.urandom(300_000))
    assert out["error"] == 0 and out["tmp_dir"] == "/tmp" and out["moved"] is True
    assert out["size"] == 300_000
    assert out["session"] == 1 and out["session_id"]
    limit = demo.pool("blog").settings.tmp_size >> 20
    assert isinstance(out["tmp_mib_written"], int)
    assert limit - 2 <= out["tmp_mib_written"] <= limit, out   # then ENOSPC
    # nothing of it reached the host's directory under the jail
    assert os.listdir(Path(default_root("blog")) / "tmp") == []


def test_ipc_breached_without_an_ipc_namespace(demo: Model) -> None:
    """The installed launcher stops unsharing IPC; blog and search restarted with it
    share the host's IPC namespace, every other master keeps its own."""
    with weakened(demo, undo=(restore_launcher,), restart=("blog", "search")):
        weaken_launcher("#define UNSHARE_IPC CLONE_NEWIPC", "#define UNSHARE_IPC 0")
        restart_master(demo, "blog")
        restart_master(demo, "search")
        status, data = check("resources.ipc")
    assert status == BREACHED
    assert breached(data, "resources.ipc") == {("pool:blog", "pool:search"),
                                               ("pool:search", "pool:blog")}
    assert verdicts(data, "resources.ipc", "pool:files", "pool:blog") == {"blocked"}


def test_tmp_exec_breached_without_the_tmpfs(demo: Model) -> None:
    """blog's mount file loses its /tmp tmpfs and the jail's /tmp is the pool's own
    dir on the host filesystem again (as before): a program written there runs."""
    tmp = Path(default_root("blog")) / "tmp"
    pw = pwd.getpwnam(demo.pool("blog").user)
    mounts = Path(layout.mounts_file("blog"))

    def drop_tmpfs() -> None:
        data = json.loads(mounts.read_text())
        data["mounts"] = [m for m in data["mounts"] if m["type"] != "tmpfs"]
        mounts.write_text(json.dumps(data))

    with weakened(demo, undo=(lambda: os.chown(tmp, 0, 0),), restart=("blog",)):
        drop_tmpfs()
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        restart_master(demo, "blog")
        status, data = check("resources.tmp-exec")
    assert status == BREACHED
    assert breached(data, "resources.tmp-exec") == {("pool:blog", None)}
    assert any("/tmp: ran it" in str(c) for c in cells(data, "resources.tmp-exec", "pool:blog"))


# --- cgroups ----------------------------------------------------------------------------


def _cgroup_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def test_every_master_and_worker_lives_in_its_pool_cgroup(demo: Model) -> None:
    host = cgroups.detect()
    if host.version == "none":
        pytest.skip("no cgroups on this host")
    hostkit.wake(demo)           # socket-activated pools: a master to look at
    pids = hostkit.master_pids()
    for p in demo.pools:
        lim = pool_limits(p)
        cg = pool_cgroup(p.name, lim, host)
        assert cg is not None
        assert all(cgroups.current(cg)[path] == value for path, value in cg.writes), p.name
        launcher = pids[layout.program_name(p.name)]
        assert launcher is not None
        master = fpm_master_pid(launcher)
        assert master is not None and f"/phphost/{p.name}\n" in _cgroup_of(master)
        procs = {int(x) for d in cg.dirs for x in Path(f"{d}/cgroup.procs").read_text().split()}
        assert {launcher, master} <= procs
        limits = Path(f"/proc/{master}/limits").read_text()
        assert re.search(rf"Max processes\s+{lim.nproc}\s+{lim.nproc}", limits), limits
    plan = hostkit.phphost("plan", "-v", str(DEMO))
    assert "No changes" in plan.stdout and "limits of pool blog (cgroup" in plan.stdout
    status = hostkit.phphost("status").stdout
    row = next(line for line in status.splitlines() if line.startswith("blog "))
    assert re.search(r"\d+\.\dM\s+\d+\s+\d+\.\d\ds$", row), status


def test_changed_limits_apply_live_and_unenforceable_ones_are_refused(
        demo: Model, spec_dir: Path) -> None:
    host = cgroups.detect()
    if host.version == "none":
        pytest.skip("no cgroups on this host")
    text = hostkit.set_pool_key(DEMO.read_text(), "pools.blog", "memory_max", '"300M"')
    text = hostkit.set_pool_key(text, "pools.blog", "pids_max", "30")    # below 40: live
    spec = hostkit.write_spec(spec_dir, "limits.toml", text)
    before = hostkit.master_pids()[layout.program_name("blog")]
    try:
        plan = hostkit.phphost("plan", spec, check=False).stdout
        assert "set limits of pool blog (cgroup" in plan and "memory 300M" in plan
        assert "set RLIMIT_NPROC 30 on the running processes of pool blog" in plan
        assert "restart FPM master" not in plan       # limits change live
        hostkit.phphost("apply", spec)
        cg = pool_cgroup("blog", pool_limits(load_spec(spec).pool("blog")), host)
        assert cg is not None and str(300 << 20) in cgroups.current(cg).values()
        assert hostkit.master_pids()[layout.program_name("blog")] == before
        assert before is not None
        hostkit.wake(demo, "blog")
        master = fpm_master_pid(before)
        assert master is not None
        assert re.search(r"Max processes\s+30\s+30", Path(f"/proc/{master}/limits").read_text())
    finally:
        hostkit.phphost("apply", str(DEMO))
    if not host.enforces("io"):
        bad = hostkit.write_spec(spec_dir, "io.toml", hostkit.set_pool_key(
            DEMO.read_text(), "pools.blog", "io_weight", "500"))
        proc = hostkit.phphost("plan", bad, check=False)
        assert proc.returncode != 0 and "pools.blog.io_weight: this host cannot enforce" \
            in proc.stderr, proc.stderr
    assert hostkit.phphost("plan", str(DEMO), check=False).returncode == 0


def test_limits_breached_when_the_launcher_skips_them(demo: Model) -> None:
    """The installed launcher no longer joins the cgroups nor sets RLIMIT_NPROC; blog
    restarted with it forks and allocates past its limits, every other pool is held."""
    with weakened(demo, undo=(restore_launcher,), restart=("blog",)):
        weaken_launcher("#define JOIN_CGROUPS 1", "#define JOIN_CGROUPS 0")
        restart_master(demo, "blog")
        status, data = check("resources.fork", "resources.memory")
    assert status == BREACHED
    assert breached(data, "resources.fork") == {("pool:blog", None)}
    assert breached(data, "resources.memory") == {("pool:blog", None)}
    assert verdicts(data, "resources.memory", "pool:files") == {"blocked"}
