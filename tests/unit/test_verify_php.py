"""The PHP probes verify runs inside pools are valid PHP (php -l), as composed."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from phphost.verify.probes import site_script, snippet

PHP = shutil.which("php")
NAMES = sorted(p.name for p in (resources.files("phphost.verify") / "php").iterdir()
               if p.name.endswith(".php") and not p.name.startswith("_"))


def test_every_probe_is_there() -> None:
    assert {"whoami.php", "fs.php", "procs.php", "fcgi.php", "opcache.php", "session.php",
            "http.php", "jail.php", "site_ini.php"} <= set(NAMES)


@pytest.mark.skipif(PHP is None, reason="php CLI not installed")
@pytest.mark.parametrize("name", NAMES)
def test_probe_lints(name: str, tmp_path: Path) -> None:
    text = site_script(name) if name.startswith("site_") else snippet(name)
    assert text.startswith("<?php\n") and text.splitlines().count("<?php") == 1
    path = tmp_path / name
    path.write_text(text)
    proc = subprocess.run([str(PHP), "-l", str(path)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
