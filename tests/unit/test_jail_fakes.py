"""A recorded Debian 12 host (merged /usr) as a HostView, for the pure jail tests.
ldd outputs below are verbatim from a Debian 12 x86_64 host."""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass, field

from phphost import layout
from phphost.jail.closure import HostKind, resolve_chain
from phphost.spec.model import JailSpec, Mount, Pool, PoolSettings, Tenant

LDD_DASH = """\
\tlinux-vdso.so.1 (0x00007f6827881000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f682766c000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f6827883000)
"""
LDD_NSS_DNS = """\
\tlinux-vdso.so.1 (0x00007f003dd1c000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f003db24000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f003dd1e000)
"""
LDD_EUC_JP_RELATIVE = """\
\tlinux-vdso.so.1 (0x00007fc17de95000)
\tlibJIS.so => /usr/lib/x86_64-linux-gnu/gconv/./libJIS.so (0x00007fc17de6c000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007fc17dc81000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007fc17de97000)
"""
LDD_STATIC = "\tstatically linked\n"
LDD_SCRIPT = "\tnot a dynamic executable\n"
LDD_MISSING = """\
\tlinux-vdso.so.1 (0x00007ffd1b5f2000)
\tlibkpathsea.so.6 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b2a9c5000)
"""

ELF = b"\x7fELF\x02\x01\x01"
LIB = "/usr/lib/x86_64-linux-gnu"


@dataclass
class FakeHost:
    """Files (content), symlinks (raw targets) and directories, plus ldd outputs."""

    files: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    ldd_out: dict[str, str] = field(default_factory=dict)
    execs: set[str] = field(default_factory=set)
    passwd: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    ldd_calls: list[str] = field(default_factory=list)
    head_calls: list[str] = field(default_factory=list)
    # paths (files, links, dirs) not root's or writable by others: nothing below a
    # foreign directory is trusted either
    foreign: set[str] = field(default_factory=lambda: {"/srv/www", "/tmp"})

    def _dirs(self) -> set[str]:
        out = {"/"}
        for path in [*self.files, *self.links]:
            parent = posixpath.dirname(path)
            while parent not in out:
                out.add(parent)
                parent = posixpath.dirname(parent)
        return out - set(self.links)

    def kind(self, path: str) -> HostKind | None:
        if path in self.links:
            return "symlink"
        if path in self.files:
            return "file"
        return "dir" if path in self._dirs() else None

    def readlink(self, path: str) -> str | None:
        return self.links.get(path)

    def listdir(self, path: str) -> tuple[str, ...]:
        names = {p[len(path.rstrip("/")) + 1 :].split("/")[0]
                 for p in [*self.files, *self.links, *self._dirs()]
                 if p != path and p.startswith(path.rstrip("/") + "/")}
        return tuple(sorted(names))

    def head(self, path: str) -> bytes:
        self.head_calls.append(path)
        return self.files[path][:256]

    def ldd(self, path: str) -> str:
        self.ldd_calls.append(path)
        return self.ldd_out.get(path, LDD_SCRIPT)

    def untrusted(self, path: str) -> str | None:
        chain = resolve_chain(path, self.readlink)
        for where in [*(link for link, _ in chain.links), chain.real]:
            for p in [where, *_parents(where)]:
                if p in self.foreign:
                    return f"{p} is owned by uid 1001, not root"
        return None

    def digest(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()

    def executable(self, path: str) -> bool:
        return path in self.execs

    def passwd_entry(self, user: str) -> str | None:
        return self.passwd.get(user)

    def group_entry(self, group: str) -> str | None:
        return self.groups.get(group)

    def hostname(self) -> str:
        return "web1.example.org"

    def add_exec(self, path: str, content: bytes, ldd: str | None = None) -> None:
        self.files[path] = content
        self.execs.add(path)
        if ldd is not None:
            self.ldd_out[path] = ldd


def _parents(path: str) -> list[str]:
    out = []
    while path != "/":
        path = posixpath.dirname(path)
        out.append(path)
    return out


def debian_host() -> FakeHost:
    h = FakeHost()
    h.links.update({"/bin": "usr/bin", "/lib": "usr/lib", "/lib64": "usr/lib64",
                    "/sbin": "usr/sbin", "/usr/bin/sh": "dash",
                    "/usr/lib64/ld-linux-x86-64.so.2":
                        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                    "/etc/localtime": "/usr/share/zoneinfo/Etc/UTC",
                    "/usr/share/zoneinfo/Cuba": "America/Havana",
                    "/usr/lib/ssl/cert.pem": "/etc/ssl/certs/ca-certificates.crt",
                    "/usr/lib/ssl/openssl.cnf": "/etc/ssl/openssl.cnf",
                    "/usr/lib/ssl/certs": "/etc/ssl/certs"})
    h.add_exec("/usr/bin/dash", ELF + b"dash", LDD_DASH)
    h.add_exec(f"{LIB}/libc.so.6", ELF + b"libc")
    h.add_exec(f"{LIB}/ld-linux-x86-64.so.2", ELF + b"ld")
    for name in ("libnss_dns.so.2", "libnss_files.so.2", "libresolv.so.2"):
        h.files[f"{LIB}/{name}"] = ELF + name.encode()
        h.ldd_out[f"{LIB}/{name}"] = LDD_NSS_DNS
    h.files.update({
        "/usr/share/zoneinfo/Etc/UTC": b"TZif-utc",
        "/usr/share/zoneinfo/Europe/Paris": b"TZif-paris",
        "/usr/share/zoneinfo/America/Havana": b"TZif-havana",
        "/etc/resolv.conf": b"nameserver 192.0.2.53\n",
        "/etc/hosts": b"127.0.0.1 localhost\n",
        "/etc/host.conf": b"multi on\n",
        "/etc/ssl/certs/ca-certificates.crt": b"-----BEGIN CERTIFICATE-----\n",
        "/etc/ssl/openssl.cnf": b"[openssl_init]\n",
        f"{LIB}/gconv/gconv-modules": b"module ...\n",
        f"{LIB}/gconv/gconv-modules.d/gconv-modules-extra.conf": b"module ...\n",
        f"{LIB}/gconv/EUC-JP.so": ELF + b"eucjp",
        f"{LIB}/gconv/libJIS.so": ELF + b"jis",
        "/usr/lib/locale/C.utf8/LC_CTYPE": b"ctype",
        "/etc/passwd": b"root:x:0:0:root:/root:/bin/bash\n",
    })
    h.add_exec(layout.SENDMAIL_BINARY, ELF + b"sendmail", LDD_DASH)
    h.passwd = {"root": "root:x:0:0:root:/root:/bin/bash",
                "php-blog": "php-blog:x:990:1001::/nonexistent:/usr/sbin/nologin"}
    h.groups = {"root": "root:x:0:", "ncs": "ncs:x:1001:ncs,www-data"}
    return h


TENANT = Tenant("ncs", "ncs", "ncs", "/srv/www/ncs")
OTHER = Tenant("other", "other", "other", "/srv/www/other")


def pool(features: tuple[str, ...] = ("base",), programs: tuple[str, ...] = (),
         mounts: tuple[Mount, ...] = (), writable: tuple[str, ...] = ("/srv/www/ncs/data",),
         smtp: str = "127.0.0.1:25",
         interpreters: tuple[tuple[str, str], ...] = ()) -> Pool:
    return Pool("blog", "ncs", "php-blog", "/run/phphost/blog.sock", PoolSettings(),
                writable=writable,
                jail=JailSpec(True, ("base", *[f for f in features if f != "base"]), programs,
                              mounts, smtp, interpreters))
