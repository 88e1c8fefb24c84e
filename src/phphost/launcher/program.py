"""The master launcher: launch.c beside this file, a small C program (libc only) that
supervisord runs beside every FPM master. Pure helpers; building it on the host is
host.launcher's (`python -m phphost.host.launcher build`), and apply builds it from the
copy of the source it installs (layout.LAUNCHER_SOURCE)."""

from __future__ import annotations

from importlib import resources

from phphost.launcher.mailer import build_argv as _cc_argv


def source_path() -> str:
    return str(resources.files("phphost.launcher").joinpath("launch.c"))


def source_text() -> str:
    return (resources.files("phphost.launcher") / "launch.c").read_text(encoding="utf-8")


def build_argv(dest: str, source: str | None = None, cc: str = "gcc") -> list[str]:
    """Pure: the compiler command line (the sendmail's hardening flags)."""
    return _cc_argv(dest, source or source_path(), cc)


def launcher_argv(binary: str, pool: str, jail: str, mounts_file: str,
                  command: list[str], pid_ns: bool = False) -> list[str]:
    """Pure: a launcher command line for a jailed master (tests and hand runs)."""
    return [binary, "--pool", pool, "--jail", jail, *(["--pid-ns"] if pid_ns else []),
            "--mounts", mounts_file, "--", *command]
