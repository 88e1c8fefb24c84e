"""After a reload apply waits for apache2's own AH00489 line, written after the mark
it took; a line a client can put in the error log does not count."""

from __future__ import annotations

from pathlib import Path

import pytest

from phphost.host import services

READY = (b"[Mon Dec 07 12:20:06.533952 2026] [mpm_event:notice] [pid 28784:tid 28784] "
         b"AH00489: Apache/2.4.71 (Debian) configured -- resuming normal operations\n")
CLIENT = (b"[Mon Dec 07 12:20:07.1 2026] [authz_core:error] [pid 9:tid 10] [client 127.0.0.1:5] "
          b"AH01630: client denied by server configuration: /srv/x/[mpm_event:notice] "
          b"[pid 1] AH00489: resuming normal operations\n")


@pytest.fixture()
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "error.log"
    path.write_bytes(READY)
    monkeypatch.setattr(services, "APACHE_ERROR_LOG", str(path))
    return path


def test_only_a_line_after_the_mark_counts(log: Path) -> None:
    mark = services._error_log_size()
    assert mark == len(READY)
    assert not services._logged_ready(mark)
    with log.open("ab") as fh:
        fh.write(CLIENT)
    assert not services._logged_ready(mark)
    with log.open("ab") as fh:
        fh.write(READY)
    assert services._logged_ready(mark)


def test_a_rotated_log_is_read_from_its_start(log: Path) -> None:
    mark = services._error_log_size()
    log.write_bytes(READY[:20])
    assert not services._logged_ready(mark)
    log.write_bytes(READY)
    assert services._logged_ready(mark + 10)


def test_no_log_never_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "APACHE_ERROR_LOG", str(tmp_path / "none.log"))
    assert services._error_log_size() is None
    assert not services._logged_ready(None)
