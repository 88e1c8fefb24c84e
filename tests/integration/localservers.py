"""Local servers the `phphost check` probes talk to, all on loopback: a tiny DNS
responder (UDP, A records), an HTTPS server with a throwaway CA, and the host changes
that let a jail reach them (resolv.conf, the CA trust store), each restored afterwards.

The jails copy the host's /etc/resolv.conf and CA bundle at apply time, so the
context managers here change the host's files first; re-apply afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

RESOLV_CONF = Path("/etc/resolv.conf")
LOCAL_CA = Path("/usr/local/share/ca-certificates/phphost-test.crt")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HTTPS_BODY = b"phphost check: TLS ok\n"


# ---------------------------------------------------------------- DNS


def parse_query(packet: bytes) -> tuple[int, int, str, int, bytes]:
    """(id, flags, name, qtype, the question section) of a DNS query."""
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        raise ValueError("one question only")
    labels, pos = [], 12
    while packet[pos]:
        length = packet[pos]
        labels.append(packet[pos + 1:pos + 1 + length].decode("ascii").lower())
        pos += 1 + length
    qtype = struct.unpack("!H", packet[pos + 1:pos + 3])[0]
    return qid, flags, ".".join(labels), qtype, packet[12:pos + 5]


def answer(packet: bytes, zone: dict[str, str]) -> bytes:
    """The response to a query: A records from `zone`, NODATA for other types of a
    known name, NXDOMAIN for unknown names."""
    qid, flags, name, qtype, question = parse_query(packet)
    rd = flags & 0x0100
    if name not in zone:
        return struct.pack("!HHHHHH", qid, 0x8403 | rd, 1, 0, 0, 0) + question
    if qtype != 1:
        return struct.pack("!HHHHHH", qid, 0x8400 | rd, 1, 0, 0, 0) + question
    rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(zone[name])
    return struct.pack("!HHHHHH", qid, 0x8400 | rd, 1, 1, 0, 0) + question + rr


class DnsServer:
    """Answers A queries for `zone` on a UDP loopback address, in a thread."""

    def __init__(self, zone: dict[str, str], host: str = "127.0.0.1", port: int = 53) -> None:
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))      # OSError when the port is taken
        self.sock.settimeout(0.2)
        self.queries: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                packet, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                _id, _flags, name, qtype, _q = parse_query(packet)
                self.queries.append((name, qtype))
                self.sock.sendto(answer(packet, self.zone), peer)
            except (ValueError, IndexError, struct.error):
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def port_free(port: int, kind: socket.SocketKind, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def host_resolver(nameserver: str = "127.0.0.1") -> Iterator[None]:
    """The host's /etc/resolv.conf names only `nameserver` (rewritten in place, as it
    may be a bind mount), restored byte for byte afterwards."""
    saved = RESOLV_CONF.read_bytes()
    try:
        with open(RESOLV_CONF, "w", encoding="ascii") as fh:
            fh.write(f"# phphost check test (restored afterwards)\nnameserver {nameserver}\n"
                     "options timeout:1 attempts:1\n")
        yield
    finally:
        with open(RESOLV_CONF, "wb") as fh:
            fh.write(saved)


# ---------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Pki:
    dir: str
    ca: str
    cert: str
    key: str


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(ip: str = "127.0.0.1") -> Pki:
    """A throwaway CA and a server certificate for `ip` (an IP SAN), in a temp dir."""
    d = tempfile.mkdtemp(prefix="phphost-check-pki-")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt",
             "-days", "2", "-subj", "/CN=phphost check test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _openssl("req", *ec, "-keyout", f"{d}/srv.key", "-out", f"{d}/srv.csr", "-subj", f"/CN={ip}")
    Path(f"{d}/ext.cnf").write_text(f"subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\n"
                                    "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", f"{d}/srv.csr", "-CA", f"{d}/ca.crt", "-CAkey",
             f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/srv.crt", "-days", "2",
             "-extfile", f"{d}/ext.cnf")
    return Pki(d, f"{d}/ca.crt", f"{d}/srv.crt", f"{d}/srv.key")


@contextlib.contextmanager
def trusted_ca(ca_file: str) -> Iterator[None]:
    """The CA in the host's trust store (and so in /etc/ssl/certs/ca-certificates.crt)
    until the block ends."""
    if LOCAL_CA.exists():
        raise RuntimeError(f"{LOCAL_CA} exists already: an earlier test run left it?")
    before = hashlib.sha256(CA_BUNDLE.read_bytes()).hexdigest()
    shutil.copyfile(ca_file, LOCAL_CA)
    os.chmod(LOCAL_CA, 0o644)
    try:
        subprocess.run(["update-ca-certificates"], check=True, capture_output=True, timeout=120)
        yield
    finally:
        LOCAL_CA.unlink(missing_ok=True)
        subprocess.run(["update-ca-certificates"], check=True, capture_output=True, timeout=120)
        after = hashlib.sha256(CA_BUNDLE.read_bytes()).hexdigest()
        if after != before:
            raise RuntimeError(f"{CA_BUNDLE} differs from before the test after restoring")


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(HTTPS_BODY)))
        self.end_headers()
        self.wfile.write(HTTPS_BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


class HttpsServer:
    """GET anything -> HTTPS_BODY, on 127.0.0.1:<free port>, in a thread."""

    def __init__(self, pki: Pki, host: str = "127.0.0.1") -> None:
        self.httpd = http.server.ThreadingHTTPServer((host, 0), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.cert, pki.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://{host}:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,),
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(2)


# ---------------------------------------------------------------- MariaDB


MARIADB_INIT = "/etc/init.d/mariadb"
MYSQL_SOCKET = "/run/mysqld/mysqld.sock"


def mysql(sql: str) -> str:
    proc = subprocess.run(["mariadb", "--protocol=socket", "-uroot", "-N", "-B", "-e", sql],
                          check=True, capture_output=True, text=True, timeout=60)
    return proc.stdout


def _user_exists(user: str) -> bool:
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", user):
        raise ValueError(f"{user!r} is not a plain user name")
    where = f"User = '{user}' AND Host = 'localhost'"
    return mysql(f"SELECT COUNT(*) FROM mysql.user WHERE {where}").strip() != "0"  # noqa: S608


@contextlib.contextmanager
def mariadb(users: list[str]) -> Iterator[bool]:
    """MariaDB running (started here only if installed and not running; stopped
    again only if started here), with `users` (pool users: plain names, no quotes)
    able to log in by unix_socket; only the logins made here are dropped again.
    Yields False when MariaDB is not installed."""
    if not os.path.exists(MARIADB_INIT) or shutil.which("mariadb") is None:
        yield False
        return
    started = False
    if not os.path.exists(MYSQL_SOCKET):
        subprocess.run([MARIADB_INIT, "start"], check=True, capture_output=True, timeout=120)
        started = True
    made: list[str] = []
    try:
        for user in users:
            if not _user_exists(user):     # checks the name too
                mysql(f"CREATE USER '{user}'@'localhost' IDENTIFIED VIA unix_socket")
                made.append(user)
        yield True
    finally:
        for user in made:
            with contextlib.suppress(subprocess.CalledProcessError):
                mysql(f"DROP USER IF EXISTS '{user}'@'localhost'")
        if started:
            subprocess.run([MARIADB_INIT, "stop"], check=False, capture_output=True,
                           timeout=120)
