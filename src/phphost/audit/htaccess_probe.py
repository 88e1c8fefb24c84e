"""PHA023's behaviour probe: does the Apache installed here let an .htaccess
expression read a file? A throwaway apache2 (its own config, a loopback port, a
scratch dir under /run, never the live server's config or pid file) serves one
directory whose .htaccess says `Require expr "file('SECRET') =~ /TOKEN/"`:

- 500 with "not available in restricted context" in its error log: refused (fixed);
- 200: the expression read the file as the web user: allowed (the hole);
- anything else, or apache2 not starting: unknown (the version table still decides).

The same expression in the main config (`in_htaccess=False`) is allowed on every
Apache, which is how the tests show the probe can see a read at all."""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

from phphost import layout

APACHE = layout.APACHE_BINARY
MODULES = layout.APACHE_MODULES_DIR
ALLOWED, REFUSED = "allowed", "refused"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(d: str, port: int, rule: str, in_htaccess: bool) -> str:
    main_rule = "" if in_htaccess else f"<Directory {d}/htdocs/probe>\n    {rule}\n</Directory>\n"
    return f"""ServerRoot "{d}"
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
ServerName localhost
Listen 127.0.0.1:{port}
PidFile {d}/apache2.pid
ErrorLog {d}/error.log
LogLevel warn
Mutex file:{d}
DefaultRuntimeDir {d}
User {layout.WEB_USER}
Group {layout.WEB_USER}
StartServers 1
ServerLimit 1
ThreadsPerChild 4
MaxRequestWorkers 4
DocumentRoot {d}/htdocs
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory {d}/htdocs>
    AllowOverride All
    Require all granted
</Directory>
{main_rule}"""


def _get(port: int, path: str) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


def probe(in_htaccess: bool = True, timeout: float = 8.0) -> str:
    """"allowed", "refused" or "unknown: why"."""
    if not os.path.exists(APACHE) or os.geteuid() != 0:
        return "unknown: needs root and /usr/sbin/apache2"
    d = tempfile.mkdtemp(prefix="phphost-audit-probe-", dir="/run")
    proc: subprocess.Popen[bytes] | None = None
    try:
        os.chmod(d, 0o755)      # noqa: S103 - www-data reads the probe's docroot
        token = secrets.token_hex(8)
        secret = os.path.join(d, "secret")
        with open(secret, "w") as fh:
            fh.write(token + "\n")
        os.chmod(secret, 0o644)   # readable by www-data: the question is whether it may read
        for sub in ("htdocs", "htdocs/probe", "htdocs/control"):
            os.mkdir(os.path.join(d, sub), 0o755)
            with open(os.path.join(d, sub, "x.txt"), "w") as fh:
                fh.write("x\n")
        rule = f"Require expr \"file('{secret}') =~ /{token}/\""
        if in_htaccess:
            with open(os.path.join(d, "htdocs/probe/.htaccess"), "w") as fh:
                fh.write(rule + "\n")
        port = _free_port()
        conf = os.path.join(d, "apache2.conf")
        with open(conf, "w") as fh:
            fh.write(_config(d, port, rule, in_htaccess))
        proc = subprocess.Popen([APACHE, "-f", conf, "-DFOREGROUND"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"})
        deadline = time.monotonic() + timeout
        control = None
        while time.monotonic() < deadline and proc.poll() is None:
            control = _get(port, "/control/x.txt")
            if control is not None:
                break
            time.sleep(0.1)
        if control != 200:
            err = proc.stderr.read(300).decode("utf-8", "replace") if proc.poll() is not None \
                and proc.stderr else ""
            return f"unknown: the throwaway apache2 did not serve its control ({control}) {err}"
        status = _get(port, "/probe/x.txt")
        log = _read(os.path.join(d, "error.log"))
        if status == 200:
            return ALLOWED
        if status == 500 and "restricted context" in log:
            return REFUSED
        return f"unknown: the probe got HTTP {status}"
    finally:
        if proc is not None:
            proc.terminate()        # our own child (apache2 -DFOREGROUND) by its pid
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def _read(path: str) -> str:
    with contextlib.suppress(OSError), open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()
    return ""
