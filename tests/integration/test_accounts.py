"""A spec naming an existing system account as a tenant (`mail`, `ssl-cert`) is
refused by plan and apply with exit 4 and nothing on the host changes; `adopt = true`
is the explicit way to take over an unprivileged existing account."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phphost import layout
from phphost.exitcodes import ExitCode
from phphost.spec.model import Model
from tests.integration import hostkit

EXIT_PLAN = ExitCode.PLAN


def _with_tenant(demo_text: str, name: str, extra: str = "") -> str:
    return (demo_text + f'\n[tenants.{name}]\nhome = "/srv/phphost-demo/{name}"\n{extra}\n'
            f'[pools.{name}app]\ntenant = "{name}"\ntemplate = "base"\n')


@pytest.mark.parametrize("name", ["mail", "ssl-cert"])
def test_system_account_as_tenant_is_refused(demo: Model, demo_text: str, spec_dir: Path,
                                             name: str) -> None:
    spec = hostkit.write_spec(spec_dir, f"{name}.toml", _with_tenant(demo_text, name))
    before = hostkit.snapshot()
    state = Path(layout.STATE_FILE).read_text()
    for command in ("plan", "apply"):
        proc = hostkit.phphost(command, spec, check=False)
        assert proc.returncode == EXIT_PLAN, (command, proc.stdout, proc.stderr)
        assert f"tenants.{name}:" in proc.stderr and "did not create it" in proc.stderr
        assert "adopt = true" in proc.stderr and "Traceback" not in proc.stderr
    assert hostkit.snapshot() == before
    assert Path(layout.STATE_FILE).read_text() == state
    assert not os.path.exists(f"/srv/phphost-demo/{name}")
    assert hostkit.phphost("plan", str(hostkit.ROOT / "examples" / "demo.toml"),
                           check=False).returncode == 0


def test_adopt_lifts_the_refusal_at_plan_time(demo: Model, demo_text: str,
                                              spec_dir: Path) -> None:
    """Plan only (nothing applied): with adopt = true the account check passes."""
    spec = hostkit.write_spec(spec_dir, "adopt.toml",
                              _with_tenant(demo_text, "mail", "adopt = true"))
    proc = hostkit.phphost("plan", spec, check=False)
    assert "did not create it" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 10), (proc.stdout, proc.stderr)
