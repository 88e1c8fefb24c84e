from __future__ import annotations

import pytest

from phphost import layout
from phphost.errors import PlanError
from phphost.jail.features import build_manifest
from phphost.jail.manifest import Entry, Manifest
from phphost.launcher import mailer
from phphost.spec.model import Mount
from tests.unit.test_jail_fakes import ELF, LDD_DASH, LIB, TENANT, debian_host, pool


def manifest(**kw: object) -> Manifest:
    return build_manifest(pool(**kw), TENANT, debian_host())  # type: ignore[arg-type]


def entry(m: Manifest, path: str) -> Entry:
    found = m.get(path)
    assert found is not None, f"{path} not in manifest"
    return found


def text(m: Manifest, path: str) -> str:
    content = entry(m, path).content
    assert content is not None
    return content.decode()


def test_base() -> None:
    m = manifest()
    assert (m.uid, m.gid) == (990, 1001)
    assert text(m, "/etc/passwd") == ("root:x:0:0:root:/root:/bin/bash\n"
                                      "php-blog:x:990:1001::/nonexistent:/usr/sbin/nologin\n")
    # no member lists: they would name other tenants' and pools' users
    assert text(m, "/etc/group") == "root:x:0:\nncs:x:1001:\n"
    assert text(m, "/etc/nsswitch.conf").endswith("hosts: files\n")
    tmp = entry(m, "/tmp")
    assert (tmp.kind, tmp.owner, tmp.fstype, tmp.size) == ("mount", "root", "tmpfs", 64 << 20)
    assert {e.path: e.device for e in m.entries if e.kind == "device"} == {
        "/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/random": (1, 8), "/dev/urandom": (1, 9)}
    # tzdata bound read-only at its own path, none of its files linked in
    zone = entry(m, "/usr/share/zoneinfo")
    assert (zone.kind, zone.source, zone.writable) == ("mount", "/usr/share/zoneinfo", False)
    assert not any(p.startswith("/usr/share/zoneinfo/") for p in m.by_path())
    assert entry(m, "/etc/localtime").source == "/usr/share/zoneinfo/Etc/UTC"
    assert entry(m, f"{LIB}/libnss_files.so.2").why == "base"
    assert "/usr/bin/dash" not in m.by_path() and "/usr/bin/sh" not in m.by_path()


def test_files_are_read_only_and_root_owned() -> None:
    m = manifest(features=("dns", "tls", "shell"))
    for e in m.entries:
        if e.kind == "file":
            assert e.owner == "root" and e.mode in (0o444, 0o555) and e.digest, e.path
    assert entry(m, "/usr/bin/dash").mode == 0o555
    assert entry(m, "/etc/resolv.conf").mode == 0o444


def test_pending_when_pool_user_does_not_exist_yet() -> None:
    h = debian_host()
    del h.passwd["php-blog"]
    m = build_manifest(pool(), TENANT, h)
    assert m.uid is None and m.pending == ("/etc/passwd",)
    with pytest.raises(PlanError, match="create users"):
        m.owner_ids("pool")


def test_dns() -> None:
    m = manifest(features=("dns",))
    for path in ("/etc/resolv.conf", "/etc/hosts", "/etc/host.conf",
                 f"{LIB}/libnss_dns.so.2", f"{LIB}/libresolv.so.2"):
        assert entry(m, path).kind == "file"
    assert text(m, "/etc/nsswitch.conf").endswith("hosts: files dns\n")
    assert entry(m, f"{LIB}/libnss_files.so.2").why == "base, dns"


def test_tls_keeps_openssldir_links() -> None:
    m = manifest(features=("tls",))
    assert entry(m, "/etc/ssl/certs/ca-certificates.crt").kind == "file"
    assert entry(m, "/usr/lib/ssl/cert.pem").source == "/etc/ssl/certs/ca-certificates.crt"
    assert entry(m, "/usr/lib/ssl/openssl.cnf").kind == "symlink"


def test_shell_is_dash_with_its_closure() -> None:
    m = manifest(features=("shell",))
    assert entry(m, "/bin").source == "usr/bin"
    assert entry(m, "/usr/bin/sh").source == "dash"
    assert entry(m, "/usr/bin/dash").why == "shell"
    assert entry(m, "/lib64").source == "usr/lib64"
    assert entry(m, f"{LIB}/ld-linux-x86-64.so.2").kind == "file"


def test_mail_without_shell_gets_the_mail_only_sh() -> None:
    m = manifest(features=("mail",))
    binary = entry(m, mailer.JAIL_SENDMAIL)
    sh = entry(m, "/usr/bin/sh")
    assert (sh.kind, sh.source, sh.digest) == ("file", layout.SENDMAIL_BINARY, binary.digest)
    assert "mail-only" in sh.why
    assert layout.SENDMAIL_BINARY not in m.by_path()
    assert text(m, mailer.JAIL_CONF).splitlines()[1:] == [
        "server 127.0.0.1:25", "sender php-blog@web1.example.org", "helo web1.example.org"]
    assert "/usr/bin/dash" not in m.by_path()


def test_mail_with_shell_uses_dash() -> None:
    m = manifest(features=("mail", "shell"))
    assert entry(m, "/usr/bin/sh").kind == "symlink"
    assert entry(m, mailer.JAIL_SENDMAIL).kind == "file"


def test_mail_to_a_host_name_needs_dns() -> None:
    with pytest.raises(PlanError, match="add the 'dns' feature"):
        manifest(features=("mail",), smtp="smtp.example.org:587")
    assert manifest(features=("mail", "dns"), smtp="smtp.example.org:587").get("/etc/hosts")
    assert manifest(features=("mail",), smtp="[::1]:25").get(mailer.JAIL_SENDMAIL)


def test_mail_without_the_built_mailer_says_how_to_build_it() -> None:
    h = debian_host()
    del h.files[layout.SENDMAIL_BINARY]
    with pytest.raises(PlanError, match=r"build it: gcc .* -o /usr/local/lib/phphost/"):
        build_manifest(pool(features=("mail",)), TENANT, h)


def test_sessions_iconv_locale() -> None:
    m = manifest(features=("sessions", "iconv", "locale"))
    s = entry(m, "/var/lib/php/sessions")
    assert (s.owner, s.mode) == ("pool", 0o700)
    assert entry(m, f"{LIB}/gconv/gconv-modules.d/gconv-modules-extra.conf").why == "iconv"
    assert entry(m, "/usr/lib/locale/C.utf8/LC_CTYPE").why == "locale"


def test_mounts() -> None:
    m = manifest(features=("proc", "mysql"),
                 mounts=(Mount("/srv/shared/fonts", "/usr/share/fonts/extra"),
                         Mount("/srv/cache/blog", "/var/cache/blog", writable=True)))
    got = [(e.path, e.source, e.writable, e.fstype, e.why) for e in m.mounts]
    assert got == [
        ("/proc", "proc", False, "proc", "proc"),
        ("/tmp", "tmpfs", True, "tmpfs", "base"),
        ("/run/mysqld", "/run/mysqld", False, "bind", "mysql"),
        ("/srv/www/ncs", "/srv/www/ncs", False, "bind", "home"),
        ("/usr/share/zoneinfo", "/usr/share/zoneinfo", False, "bind", "base"),
        ("/var/cache/blog", "/srv/cache/blog", True, "bind", "mount"),
        ("/srv/www/ncs/data", "/srv/www/ncs/data", True, "bind", "writable"),
        ("/usr/share/fonts/extra", "/srv/shared/fonts", False, "bind", "mount"),
    ]
    assert entry(m, "/srv/www").kind == "dir"


def test_program_in_the_tenant_home_is_refused_without_an_interpreter() -> None:
    h = debian_host()
    h.add_exec("/srv/www/ncs/wiki/texvc", ELF + b"texvc", LDD_DASH)
    with pytest.raises(PlanError, match=r"pools\.blog\.jail\.programs\[0\] = "
                       r"'/srv/www/ncs/wiki/texvc': .*/srv/www is owned by uid 1001.*"
                       r"interpreter = \"/usr/bin/php\""):
        build_manifest(pool(programs=("/srv/www/ncs/wiki/texvc",)), TENANT, h)
    assert h.ldd_calls.count("/srv/www/ncs/wiki/texvc") == 0
    assert "/srv/www/ncs/wiki/texvc" not in h.head_calls


def test_tenant_script_with_a_declared_interpreter_is_seen_through_the_mount() -> None:
    h = debian_host()
    h.add_exec("/srv/www/ncs/bin/tool", b"#!/etc/shadow\n")
    h.files["/etc/shadow"] = b"root:$6$secret:::\n"
    m = build_manifest(pool(programs=("/srv/www/ncs/bin/tool",),
                            interpreters=(("/srv/www/ncs/bin/tool", "/bin/dash"),)), TENANT, h)
    assert "/srv/www/ncs/bin/tool" not in m.by_path()
    assert "/etc/shadow" not in m.by_path()
    assert "/srv/www/ncs/bin/tool" not in h.head_calls + h.ldd_calls
    assert "program /srv/www/ncs/bin/tool" in entry(m, "/usr/bin/dash").why


def test_declared_interpreter_must_be_roots() -> None:
    h = debian_host()
    h.add_exec("/srv/www/ncs/bin/tool", b"#!/bin/sh\n")
    h.add_exec("/srv/www/ncs/bin/php", ELF + b"php", LDD_DASH)
    with pytest.raises(PlanError, match=r"programs\[0\].*srv/www/ncs/bin/php.*root-owned"):
        build_manifest(pool(programs=("/srv/www/ncs/bin/tool",),
                            interpreters=(("/srv/www/ncs/bin/tool", "/srv/www/ncs/bin/php"),)),
                       TENANT, h)


def test_untrusted_program_outside_any_mount_is_refused_even_with_an_interpreter() -> None:
    h = debian_host()
    h.add_exec("/tmp/tool", b"#!/bin/sh\n")
    with pytest.raises(PlanError, match=r"/tmp/tool: /tmp is owned.*same-path mount"):
        build_manifest(pool(programs=("/tmp/tool",), interpreters=(("/tmp/tool", "/bin/dash"),)),
                       TENANT, h)


@pytest.mark.parametrize(("target", "error"), [
    ("/tmp/shared", "a directory the pool writes"),
    ("/usr/share", "would be hidden by the mount"),
    ("/dev", "would be hidden by the mount"),
    ("/usr/share/zoneinfo", "is wanted as a ro mount"),
    ("/lib/extra", "beneath /lib, which is a symlink"),
    ("/etc/passwd", "is wanted as"),
])
def test_colliding_mount_targets(target: str, error: str) -> None:
    with pytest.raises(PlanError, match=error):
        manifest(mounts=(Mount("/srv/shared", target),))


def test_manifest_is_sorted_and_parents_exist() -> None:
    m = manifest(features=("dns", "tls", "shell", "sessions"))
    paths = [e.path for e in m.entries]
    assert paths == sorted(paths)
    by_path = m.by_path()
    for path in paths[1:]:
        parent = path.rsplit("/", 1)[0] or "/"
        assert by_path[parent].kind in ("dir", "mount"), path


def test_writable_dir_deep_in_the_home_is_mounted_over_the_home_mount() -> None:
    """`writable = ["htdocs/uploads"]` on a jailed pool: no parent dirs inside the
    home mount (the mount provides them), and no "hidden by the mount" refusal."""
    m = manifest(writable=("/srv/www/ncs/htdocs/uploads",))
    mounts = {e.path for e in m.mounts}
    assert {"/srv/www/ncs", "/srv/www/ncs/htdocs/uploads"} <= mounts
    assert m.get("/srv/www/ncs/htdocs") is None


def test_phplibs_binds_the_shared_library_dirs_read_only() -> None:
    h = debian_host()
    h.files.update({"/usr/share/php/SimplePie/autoloader.php": b"<?php",
                    "/usr/share/javascript/jquery/jquery.min.js": b"/**/",
                    "/usr/share/php-geshi/geshi.php": b"<?php",
                    "/usr/share/php8.2-common/common/ftp.ini": b"extension=ftp"})
    h.links["/usr/share/php-old"] = "/srv/www/ncs/lib"     # a symlink is never bound
    m = build_manifest(pool(features=("phplibs",)), TENANT, h)
    got = [(e.path, e.source, e.writable) for e in m.mounts if e.why == "phplibs"]
    assert sorted(got) == [("/usr/share/javascript", "/usr/share/javascript", False),
                           ("/usr/share/php", "/usr/share/php", False),
                           ("/usr/share/php-geshi", "/usr/share/php-geshi", False)]
    assert "/usr/share/php/SimplePie/autoloader.php" not in m.by_path()   # bound, not copied
    # without the feature: nothing of them
    plain = build_manifest(pool(), TENANT, h)
    assert not [e for e in plain.entries if e.path.startswith("/usr/share/php")]


def test_tzdata_reached_through_a_symlink_is_linked_in_not_bound() -> None:
    """The launcher binds no source reached through a symlink: a host whose tzdata
    sits elsewhere behind a link gets the files linked in, as before the bind."""
    h = debian_host()
    for name in [p for p in h.files if p.startswith("/usr/share/zoneinfo/")]:
        h.files[name.replace("/usr/share/zoneinfo/", "/data/tz/")] = h.files.pop(name)
    h.links = {k.replace("/usr/share/zoneinfo/", "/data/tz/"): v for k, v in h.links.items()}
    h.links["/usr/share/zoneinfo"] = "/data/tz"
    m = build_manifest(pool(), TENANT, h)
    assert not any(e.kind == "mount" and e.source in ("/usr/share/zoneinfo", "/data/tz")
                   for e in m.entries)
    assert entry(m, "/data/tz/Europe/Paris").kind == "file"
