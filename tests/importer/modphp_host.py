"""A real mod_php host to import, beside the demo host and never touching it: a second
apache2 (prefork, Debian's libapache2-mod-php8.2 extracted with dpkg-deb from the
.deb scripts/setup-demo downloads, never installed) with its own ServerRoot, PidFile
and loopback ports, started and stopped by its pid. Ten vhosts: static, a redirect,
unused PHP, php_value/php_admin_flag in the vhost, .htaccess values, a sub-directory
application (DokuWiki, from Debian's package), TLS (a self-signed cert made here),
Adminer (Debian's package) and engine off. The MPM and mod_php are loaded the Debian
way, by links in mods-enabled/ to mods-available/ (Debian's own .load/.conf files,
php8.2.load pointing at the extracted module); conf-enabled/ (empty, included) is where
`phphost migrate` adds its own. Its envvars gives apache2 the environment the tests
start it with, so an apache2 that `phphost migrate` restarts runs as this one did."""

from __future__ import annotations

import ctypes
import glob
import http.client
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DEBS = "/var/cache/phphost/debs"
NEEDED = ("libapache2-mod-php8.2", "adminer", "dokuwiki")
# mod_php on prefork, as Debian's a2enmod leaves them (stage 4 of migrate takes them out)
MODPHP_LINKS = ("mpm_prefork.conf", "mpm_prefork.load", "php8.2.conf", "php8.2.load")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
       "PHP_INI_SCAN_DIR": "/etc/php/8.2/fpm/conf.d"}
MODULES = "/usr/lib/apache2/modules"
APACHE = "/usr/sbin/apache2"
SHOW_INI = ("<?php header('Content-Type: application/json'); echo json_encode(["
            "'memory_limit' => ini_get('memory_limit'), "
            "'display_errors' => ini_get('display_errors'), "
            "'upload_max_filesize' => ini_get('upload_max_filesize'), "
            "'short_open_tag' => ini_get('short_open_tag'), "
            "'max_input_vars' => ini_get('max_input_vars'), 'sapi' => PHP_SAPI]);\n")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, so a killed test
    run leaves no apache2 behind (PR_SET_PDEATHSIG survives exec)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def debs() -> dict[str, str] | None:
    found = {name: sorted(glob.glob(f"{DEBS}/{name}_*.deb")) for name in NEEDED}
    return None if not all(found.values()) else {n: f[-1] for n, f in found.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ModPhpHost:
    base: Path                       # /srv/phphost-import-XXXX: everything lives here
    http: int = field(default_factory=free_port)
    https: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def apache_root(self) -> Path:
        return self.base / "apache"

    @property
    def conf(self) -> Path:
        return self.apache_root / "apache2.conf"

    def docroot(self, site: str) -> Path:
        return self.base / site / "htdocs"

    # --- building --------------------------------------------------------------------------

    def build(self, packages: dict[str, str]) -> None:
        ext = self.base / "pkg"
        for deb in packages.values():
            subprocess.run(["dpkg-deb", "-x", deb, str(ext)], check=True)
        (self.apache_root / "sites").mkdir(parents=True)
        for debian in ("mods-available", "mods-enabled", "conf-enabled"):   # migrate's places
            (self.apache_root / debian).mkdir()
        self._modules(ext)
        (self.base / "logs").mkdir()
        (self.apache_root / "envvars").write_text(
            "".join(f"export {k}={v}\n" for k, v in ENV.items() if k not in ("PATH", "LANG")))
        self._php_ini()
        self._tls()
        self._content(ext)
        self.conf.write_text(self._main_conf(ext))
        self._sites()

    def _modules(self, ext: Path) -> None:
        available, enabled = self.apache_root / "mods-available", self.apache_root / "mods-enabled"
        for name in ("proxy.load", "proxy_fcgi.load", "actions.load", "actions.conf",
                     "mpm_prefork.load", "mpm_prefork.conf", "mpm_event.load", "mpm_event.conf"):
            shutil.copy(f"/etc/apache2/mods-available/{name}", available)
        load = (ext / "etc/apache2/mods-available/php8.2.load").read_text()
        (available / "php8.2.load").write_text(load.replace(
            "/usr/lib/apache2/modules/libphp8.2.so", f"{ext}/usr/lib/apache2/modules/libphp8.2.so"))
        shutil.copy(ext / "etc/apache2/mods-available/php8.2.conf", available)
        for name in MODPHP_LINKS:
            (enabled / name).symlink_to(f"../mods-available/{name}")

    def _php_ini(self) -> None:
        (self.base / "php").mkdir()
        text = Path("/usr/lib/php/8.2/php.ini-production").read_text()
        text = text.replace("memory_limit = 128M", "memory_limit = 160M")
        (self.base / "php" / "php.ini").write_text(text + "\nmax_input_vars = 1500\n")

    def _tls(self) -> None:
        tls = self.base / "tls"
        tls.mkdir()
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=secure.test", "-keyout", str(tls / "secure.key"),
                        "-out", str(tls / "secure.pem")], check=True, capture_output=True)

    def _write(self, site: str, rel: str, text: str) -> None:
        path = self.docroot(site) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def _content(self, ext: Path) -> None:
        self._write("static", "index.html", "static site\n")
        self._write("unused", "index.html", "no PHP here\n")
        self._write("values", "index.php", SHOW_INI)
        self._write("hta", "index.php", SHOW_INI)
        self._write("hta", ".htaccess", "php_value upload_max_filesize 7M\n"
                    "php_flag short_open_tag on\nDirectoryIndex index.php index.html\n"
                    "RewriteEngine On\nRewriteRule ^old$ index.php [L]\n"
                    "AddHandler application/x-httpd-php .html\n")
        self._write("hta", "page.html", "<?php echo 'html ran';\n")
        self._write("hta", "sub/index.php", SHOW_INI)
        self._write("hta", "sub/.htaccess", "php_value max_execution_time 17\n")
        self._write("apps", "index.php", "<?php echo 'apps home';\n")
        self._dokuwiki(ext, self.docroot("apps") / "wiki")
        self._write("secure", "index.php", "<?php echo 'secure ' . (empty($_SERVER['HTTPS']) ? "
                    "'plain' : 'tls');\n")
        self.docroot("adminer").mkdir(parents=True)
        shutil.copy(ext / "usr/share/adminer/adminer.php", self.docroot("adminer") / "index.php")
        self._write("engine", "index.php", "<?php echo 'engine ran';\n")
        for home in self.base.iterdir():
            if (home / "htdocs").is_dir():
                subprocess.run(["chmod", "-R", "a+rX", str(home)], check=True)

    def _dokuwiki(self, ext: Path, wiki: Path) -> None:
        """DokuWiki from Debian's package as a classic self-contained install: its
        code, conf/ and a data/ the web user writes, in one sub-directory."""
        shutil.copytree(ext / "usr/share/dokuwiki", wiki, symlinks=True)
        shutil.copytree(ext / "etc/dokuwiki", wiki / "conf", symlinks=True)
        shutil.copytree(ext / "var/lib/dokuwiki/data", wiki / "data", symlinks=True)
        for link in [p for p in wiki.rglob("*") if p.is_symlink()]:
            target = os.readlink(link)
            inside = ext / target.lstrip("/") if target.startswith("/") else None
            link.unlink()
            if inside is not None and inside.is_dir():
                shutil.copytree(inside, link, symlinks=False)
            elif inside is not None and inside.exists():
                shutil.copy(inside, link)
        shutil.copy(wiki / ".htaccess.dist", wiki / ".htaccess")   # what Debian's postinst does
        (wiki / "inc" / "preload.php").write_text(
            f"<?php\ndefine('DOKU_CONF', '{wiki}/conf/');\n")
        (wiki / "conf" / "local.php").write_text(
            f"<?php\n$conf['savedir'] = '{wiki}/data';\n$conf['title'] = 'Imported wiki';\n")
        web = pwd.getpwnam("www-data")
        for path in [wiki / "data", *(wiki / "data").rglob("*")]:
            os.chown(path, web.pw_uid, web.pw_gid)

    def _main_conf(self, ext: Path) -> str:
        mods = ["authz_core", "authz_host", "authn_core", "authn_file",
                "auth_basic", "authz_user", "access_compat", "dir", "mime", "alias",
                "rewrite", "ssl", "socache_shmcb", "setenvif"]
        load = "\n".join(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in mods)
        return f"""ServerRoot "{self.apache_root}"
{load}
IncludeOptional mods-enabled/*.load
IncludeOptional mods-enabled/*.conf
<IfModule php_module>
    PHPINIDir {self.base}/php
</IfModule>
PidFile {self.base}/apache2.pid
ErrorLog {self.base}/logs/error.log
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
CustomLog {self.base}/logs/access.log combined
DefaultRuntimeDir {self.base}
Mutex file:{self.base} default
Listen 127.0.0.1:{self.http}
Listen 127.0.0.1:{self.https} https
ServerName localhost
User www-data
Group www-data
<IfModule mpm_prefork_module>
    StartServers 2
    MinSpareServers 1
    MaxSpareServers 3
</IfModule>
TypesConfig /etc/mime.types
DirectoryIndex index.php index.html
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory {self.base}/>
    AllowOverride All
    Require all granted
</Directory>
IncludeOptional conf-enabled/*.conf
IncludeOptional sites/*.conf
"""

    def _vhost(self, name: str, body: str, port: int | None = None) -> str:
        return (f"<VirtualHost 127.0.0.1:{port or self.http}>\n    ServerName {name}\n"
                f"{body}</VirtualHost>\n")

    def _sites(self) -> None:
        sites = self.apache_root / "sites"
        d = self.docroot
        sites.joinpath("10-static.conf").write_text(self._vhost(
            "static.test", f"    ServerAlias www.static.test\n    DocumentRoot {d('static')}\n"))
        sites.joinpath("20-redirect.conf").write_text(self._vhost(
            "old.test", "    Redirect permanent / http://static.test/\n"))
        sites.joinpath("30-unused.conf").write_text(self._vhost(
            "unused.test", f"    DocumentRoot {d('unused')}\n"))
        sites.joinpath("40-values.conf").write_text(self._vhost(
            "values.test", f"    DocumentRoot {d('values')}\n    php_value memory_limit 99M\n"
            "    php_admin_flag display_errors on\n    ErrorDocument 404 /missing.html\n"))
        sites.joinpath("50-hta.conf").write_text(self._vhost(
            "hta.test", f"    DocumentRoot {d('hta')}\n"))
        sites.joinpath("60-apps.conf").write_text(self._vhost(
            "apps.test", f"    ServerAlias www.apps.test\n    DocumentRoot {d('apps')}\n"))
        sites.joinpath("70-secure.conf").write_text(
            self._vhost("secure.test",
                        f"    Redirect permanent / https://secure.test:{self.https}/\n")
            + self._vhost("secure.test", f"    DocumentRoot {d('secure')}\n    SSLEngine on\n"
                          f"    SSLCertificateFile {self.base}/tls/secure.pem\n"
                          f"    SSLCertificateKeyFile {self.base}/tls/secure.key\n", self.https))
        sites.joinpath("80-adminer.conf").write_text(self._vhost(
            "adminer.test", f"    DocumentRoot {d('adminer')}\n"))
        sites.joinpath("90-engine.conf").write_text(self._vhost(
            "engine.test", f"    DocumentRoot {d('engine')}\n    php_admin_flag engine off\n"))

    # --- running ---------------------------------------------------------------------------

    @property
    def pid_file(self) -> Path:
        return self.base / "apache2.pid"

    def start(self) -> None:
        """apache2 in the foreground, a child of this process; one that `phphost
        migrate` restarted (a daemon) is stopped first."""
        self.stop()
        self.proc = subprocess.Popen([APACHE, "-d", str(self.apache_root), "-f", str(self.conf),
                                      "-DFOREGROUND"], env=ENV,
                                     # prefork's shutdown signals its whole process group
                                     start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"apache2 exited: {(self.base / 'logs/error.log').read_text()}")
            try:
                self.get("static.test", "/")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the mod_php apache2 did not answer within 15 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)      # our own apache2 parent, by its pid
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        daemon = self.daemon_pid()
        if daemon is not None:                          # started by phphost migrate (stage 4)
            os.kill(daemon, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while self.daemon_pid() == daemon and time.monotonic() < deadline:
                time.sleep(0.1)

    def daemon_pid(self) -> int | None:
        """The pid in this host's PidFile when it is a live apache2 of this ServerRoot
        (the one stage 4 of migrate started), else None."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        if state in ("Z", "X") or str(self.apache_root).encode() not in cmdline:
            return None
        return None if self.proc is not None and self.proc.pid == pid else pid

    def serving(self) -> bool:
        return (self.proc is not None and self.proc.poll() is None) or \
            self.daemon_pid() is not None

    def get(self, host: str, path: str, tls: bool = False) -> tuple[int, str]:
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                "127.0.0.1", self.https, timeout=10, context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.http, timeout=10)
        try:
            conn.request("GET", path, headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
