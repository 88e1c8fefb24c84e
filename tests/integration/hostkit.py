"""Helpers for integration tests: run phphost, HTTP over loopback, masters'
pids, spec variants, snapshots of config trees."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import subprocess
import sys
import time
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path

from phphost import layout
from phphost.facts.gather import fpm_master_pid, read_programs
from phphost.fastcgi.status import fpm_ping
from phphost.spec.model import Model

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
PHPHOST = str(Path(sys.executable).parent / "phphost")
CONFIG_TREES = ("/etc/apache2", "/etc/phphost", "/etc/supervisor", "/etc/passwd", "/etc/group")


def phphost(*args: str, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([PHPHOST, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"phphost {' '.join(args)} -> {proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def get(host: str, path: str = "/", port: int = 80,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        body = resp.read().decode("utf-8", "replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def master_pids() -> dict[str, int | None]:
    programs, _ = read_programs()
    return {name: st.pid for name, st in programs.items() if name.startswith("phphost-")}


def wake(model: Model, *pools: str) -> dict[str, int]:
    """Socket-activated pools start their master on a connection: ping each pool (all
    when none are named) over its socket until its launcher has a master child; the
    masters' host pids by pool."""
    out: dict[str, int] = {}
    for pool in pools or tuple(p.name for p in model.pools):
        def awake(pool: str = pool) -> bool:
            launcher = master_pids().get(program(pool))
            if launcher is None or not fpm_ping(model.pool(pool).socket):
                return False
            master = fpm_master_pid(launcher)
            if master is not None:
                out[pool] = master
            return master is not None
        wait_for(awake, timeout=20)
    return out


def set_pool_key(text: str, section: str, key: str, value: str) -> str:
    """Set `key = value` in the TOML table [section], replacing an existing line."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.split("#")[0].strip() == f"[{section}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    body = [ln for ln in lines[start + 1:end] if not re.match(rf"{re.escape(key)}\s*=", ln)]
    return "\n".join([*lines[: start + 1], f"{key} = {value}", *body, *lines[end:]]) + "\n"


def write_spec(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


def snapshot() -> dict[str, str]:
    """Path -> (mode, owner, content hash or link target) for the config trees."""
    out: dict[str, str] = {}
    for top in CONFIG_TREES:
        paths = [top] if os.path.isfile(top) else [
            os.path.join(d, n) for d, dirs, files in os.walk(top) for n in dirs + files]
        for p in paths:
            st = os.lstat(p)
            if os.path.islink(p):
                what = "->" + os.readlink(p)
            elif os.path.isfile(p):
                what = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            else:
                what = "dir"
            out[p] = f"{st.st_mode:o} {st.st_uid}:{st.st_gid} {what}"
    return out


def wait_for(check: object, timeout: float = 10.0, interval: float = 0.1) -> float:
    """Poll check() until truthy; return seconds taken. Raises on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if check():  # type: ignore[operator]
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def program(pool: str) -> str:
    return layout.program_name(pool)


def uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


class Browser:
    """HTTP over loopback with the site's Host header and a cookie jar."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None,
                follow: bool = True) -> tuple[int, dict[str, str], str]:
        for _hop in range(6):
            status, got, text = self._once(method, path, form, body, headers or {})
            location = got.get("location", "")
            if not (follow and status in (301, 302, 303) and location):
                return status, got, text
            parsed = urllib.parse.urlsplit(location)
            path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
            method, form, body = "GET", None, None
        raise AssertionError(f"too many redirects at {path}")

    def _once(self, method: str, path: str, form: dict[str, str] | None,
              body: bytes | None, extra: dict[str, str]) -> tuple[int, dict[str, str], str]:
        headers = {"Host": self.host, **extra}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
            for value in resp.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(value).items():
                    if morsel.value in ("", "deleted"):
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, text
        finally:
            conn.close()

    def get(self, path: str) -> tuple[int, str]:
        status, _h, text = self.request("GET", path)
        return status, text

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        status, _h, text = self.request("POST", path, form)
        return status, text
