"""staging.validate_fpm tests pool configs many to one php-fpm -t, and still names
the one config FPM rejects, with FPM's words."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from phphost import layout
from phphost.errors import ValidationFailed
from phphost.host import staging
from phphost.plan import actions as A


def conf(pool: str, extra: str = "", timeout: str = "10s") -> A.WriteFile:
    text = (f"; Managed by phphost\n\n[global]\npid = /run/phphost/{pool}.pid\n"
            f"error_log = /var/log/phphost/{pool}.fpm.log\ndaemonize = no\n"
            f"process_control_timeout = {timeout}\n\n[{pool}]\nuser = php-{pool}\n"
            f"listen = /run/phphost/{pool}.sock\n{extra}")
    return A.WriteFile("new", path=f"{layout.FPM_CONF_DIR}/{pool}.conf", content=text)


def test_alike_configs_share_a_batch_and_others_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "FPM_TESTS_BATCH", 3)
    confs = [conf(f"p{i}") for i in range(7)]
    confs.insert(4, conf("slow", timeout="30s"))        # another [global]: alone
    sizes = [len(b) for b in staging._batches(confs)]
    assert sizes == [3, 1, 1, 3]
    assert staging._split(confs[0].content)[1].startswith("[p0]\n")
    two = A.WriteFile("x", path=f"{layout.FPM_CONF_DIR}/two.conf",
                      content=conf("a").content + "[b]\nuser = x\n")
    assert staging._split(two.content) == ("", "")       # not one pool: tested alone


class FakeFpm:
    """php-fpm -t that rejects a config containing BAD, counting its runs."""

    def __init__(self) -> None:
        self.runs: list[str] = []

    def __call__(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        text = Path(argv[-1]).read_text()
        self.runs.append(text)
        bad = "BAD" in text
        return subprocess.CompletedProcess(argv, 1 if bad else 0, "",
                                           f"ALERT: BAD in {argv[-1]}" if bad else "")


@pytest.fixture()
def fpm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeFpm:
    fake = FakeFpm()
    monkeypatch.setattr(staging, "run", fake)
    monkeypatch.setattr(layout, "RUN_DIR", str(tmp_path))
    return fake


def test_one_run_for_many_pools(fpm: FakeFpm) -> None:
    staging.validate_fpm([conf(f"p{i}") for i in range(250)])
    assert len(fpm.runs) == 3                             # 100 + 100 + 50
    assert all(f"[p{i}]" in "".join(fpm.runs) for i in range(250))


def test_the_rejected_config_is_named(fpm: FakeFpm) -> None:
    confs = [conf(f"p{i}") for i in range(250)]
    confs[142] = conf("p142", "pm = BAD\n")
    with pytest.raises(ValidationFailed) as err:
        staging.validate_fpm(confs)
    text = str(err.value)
    assert f"rejected {layout.FPM_CONF_DIR}/p142.conf" in text
    assert f"BAD in {layout.FPM_CONF_DIR}/p142.conf" in text   # FPM's words, live path
    assert len(fpm.runs) == 3 + 100                       # the bad batch, one by one
