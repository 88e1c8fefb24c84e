"""Nothing unvalidated goes live, and a failure part-way through any apply phase
leaves the host exactly as it was (issue 8).

In-process: the plan is made as `phphost apply` makes it, then executed with spies on
the live side effects or with a failure injected into one phase."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from phphost import files, layout
from phphost.cli.main import _plan
from phphost.errors import HostError, ValidationFailed
from phphost.host import apply as apply_mod
from phphost.host import identities, jails, services, staging
from phphost.spec.loader import load_spec
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.conftest import DEMO
from tests.integration.hostkit import get, master_pids, phphost, snapshot
from tests.integration.test_failures import tls_site


def _quiet(_i: int, _n: int, _what: str) -> None:
    return None


def test_module_closure_follows_depends() -> None:
    mods = staging.module_closure(f"{layout.APACHE_DIR}/mods-available", "ssl")
    assert mods[-1] == "ssl" and {"socache_shmcb", "setenvif", "mime"} <= set(mods)


def test_rejected_config_never_reaches_a_live_file(demo: Model, spec_dir: Path,
                                                   demo_text: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A TLS site whose files are missing (apache2ctl -t rejects it) or not PEM (the
    openssl check rejects them): the validators run on a staged copy and on the files
    before anything else, so no live file, module, user or dir is touched at all."""
    touched: list[str] = []
    for mod, name in ((files, "atomic_write"), (files, "atomic_symlink"), (files, "remove"),
                      (identities, "ensure_dir"), (identities, "set_acl"),
                      (identities, "create_user"), (identities, "create_group")):
        monkeypatch.setattr(mod, name, lambda *a, _n=name, **k: touched.append(_n))
    monkeypatch.setattr(apply_mod, "run", lambda argv, **k: touched.append(argv[0]))
    missing = str(spec_dir / "missing.pem")
    bad_apache = load_spec(hostkit.write_spec(spec_dir, "badtls.toml",
                                              tls_site(demo_text, demo, missing, missing)))
    garbage = spec_dir / "garbage.pem"
    garbage.write_text("not a certificate\n")
    bad_tls = load_spec(hostkit.write_spec(spec_dir, "garbage.toml",
                                           tls_site(demo_text, demo, str(garbage), str(garbage))))
    for model in (bad_apache, bad_tls):
        plan = _plan(model)
        assert plan.has_changes()
        with pytest.raises((ValidationFailed, HostError)):
            apply_mod.execute(plan, _quiet)
        assert touched == [], touched
    assert not Path(layout.JOURNAL_DIR).exists()


def _fail_nth(n: int) -> Callable[..., Any]:
    calls = {"n": 0}

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*a: Any, **k: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == n:
                raise RuntimeError("injected failure")
            return real(*a, **k)
        return inner
    return wrap


PHASES = [("identities", identities, "ensure_dir", 2), ("files", files, "atomic_write", 3),
          ("jails", jails, "build", 1), ("services", services, "update_programs", 1),
          ("apache", services, "apache_reload", 1)]


@pytest.mark.parametrize(("phase", "module", "name", "nth"), PHASES,
                         ids=[p[0] for p in PHASES])
def test_failure_in_each_phase_rolls_everything_back(
        demo: Model, spec_dir: Path, demo_text: str, monkeypatch: pytest.MonkeyPatch,
        phase: str, module: Any, name: str, nth: int) -> None:
    """A new tenant + pool + site and a changed pool: an unexpected exception in one
    phase is reported as a failed change naming the action (exit 5, never a
    traceback) and the host is as before: same config trees, masters, answers."""
    text = demo_text + """
[tenants.stagex]
home = "/srv/phphost-test/stagex"

[pools.stagex]
tenant = "stagex"
pm = "ondemand"
max_children = 1
writable = ["data"]

[sites.stagex]
server_name = "stagex.demo.test"
tenant = "stagex"
docroot = "htdocs"
pool = "stagex"
"""
    text = hostkit.set_pool_key(text, "pools.search", "max_children", "3")
    model = load_spec(hostkit.write_spec(spec_dir, "grow.toml", text))
    before, pids = snapshot(), master_pids()
    monkeypatch.setattr(module, name, _fail_nth(nth)(getattr(module, name)))
    plan = _plan(model)
    with pytest.raises(HostError, match="failed unexpectedly"):
        apply_mod.execute(plan, _quiet)
    monkeypatch.undo()
    after = snapshot()
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert not changed, (phase, sorted(changed)[:10])
    assert set(master_pids()) == set(pids)
    assert get("blog.demo.test", "/")[0] == 200
    final = phphost("plan", "--json", str(DEMO), check=False)
    assert final.returncode == 0, final.stdout[:3000]


def test_saved_plan_is_applied_only_unchanged(demo: Model, spec_dir: Path,
                                              demo_text: str) -> None:
    """`apply --plan FILE` applies exactly what `plan --json` printed, and refuses
    (exit 4, nothing changed) once the host moved on."""
    spec = hostkit.write_spec(spec_dir, "saved.toml",
                              hostkit.set_pool_key(demo_text, "pools.search", "max_requests",
                                                   "321"))
    saved = spec_dir / "plan.json"
    try:
        saved.write_text(phphost("plan", spec, "--json", check=False).stdout)
        conf = Path(layout.fpm_conf("search"))
        original = conf.read_text()
        conf.write_text(original + "; someone else was here\n")
        before = snapshot()
        proc = phphost("apply", spec, "--plan", str(saved), check=False)
        assert proc.returncode == 4 and "changed since" in proc.stderr, proc.stderr
        assert snapshot() == before
        conf.write_text(original)
        saved.write_text(phphost("plan", spec, "--json", check=False).stdout)
        phphost("apply", spec, "--plan", str(saved))
        assert "pm.max_requests = 321" in conf.read_text()
    finally:
        phphost("apply", str(DEMO))
