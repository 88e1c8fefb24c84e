from __future__ import annotations

import pytest

from phphost.errors import PlanError
from phphost.jail.closure import (
    Closure,
    UntrustedProgram,
    env_target,
    parse_ldd,
    parse_shebang,
    resolve_chain,
)
from tests.unit.test_jail_fakes import (
    ELF,
    LDD_DASH,
    LDD_EUC_JP_RELATIVE,
    LDD_MISSING,
    LDD_SCRIPT,
    LDD_STATIC,
    LIB,
    debian_host,
)


def test_parse_ldd_dynamic() -> None:
    assert parse_ldd(LDD_DASH) == ("/lib/x86_64-linux-gnu/libc.so.6",
                                   "/lib64/ld-linux-x86-64.so.2")


def test_parse_ldd_keeps_relative_components_for_the_resolver() -> None:
    assert parse_ldd(LDD_EUC_JP_RELATIVE)[0] == "/usr/lib/x86_64-linux-gnu/gconv/./libJIS.so"


@pytest.mark.parametrize("out", [LDD_STATIC, LDD_SCRIPT, ""])
def test_parse_ldd_nothing(out: str) -> None:
    assert parse_ldd(out) == ()


def test_parse_ldd_not_found_names_the_library() -> None:
    with pytest.raises(PlanError, match=r"/usr/bin/latex: ldd cannot find 'libkpathsea.so.6'"):
        parse_ldd(LDD_MISSING, "/usr/bin/latex")


@pytest.mark.parametrize(("head", "want"), [
    (b"#!/bin/sh\nexec x\n", ("/bin/sh", None)),
    (b"#! /usr/bin/perl -w\n", ("/usr/bin/perl", "-w")),
    (b"#!/usr/bin/env -S python3 -u\n", ("/usr/bin/env", "-S python3 -u")),
    (b"#!/bin/bash\t-e \r\n", ("/bin/bash", "-e")),
    (b"#!\n", None),
    (ELF, None),
    (b"echo hi\n", None),
])
def test_parse_shebang(head: bytes, want: tuple[str, str | None] | None) -> None:
    assert parse_shebang(head) == want


def test_env_target() -> None:
    assert env_target("-S python3 -u") == "python3"
    assert env_target("LANG=C perl") == "perl"
    assert env_target(None) is None


def test_resolve_chain_merged_usr() -> None:
    h = debian_host()
    chain = resolve_chain("/lib64/ld-linux-x86-64.so.2", h.readlink)
    assert chain.links == (("/lib64", "usr/lib64"),
                           ("/usr/lib64/ld-linux-x86-64.so.2",
                            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
                           ("/lib", "usr/lib"))
    assert chain.real == f"{LIB}/ld-linux-x86-64.so.2"


def test_resolve_chain_relative_and_dotdot() -> None:
    links = {"/opt/tex/bin/latex": "../lib/latex-real", "/usr/local/bin/latex":
             "/opt/tex/bin/latex"}
    chain = resolve_chain("/usr/local/bin/latex", links.get)
    assert chain.real == "/opt/tex/lib/latex-real"
    assert [link for link, _ in chain.links] == ["/usr/local/bin/latex", "/opt/tex/bin/latex"]


def test_resolve_chain_loop() -> None:
    with pytest.raises(PlanError, match="symlinks"):
        resolve_chain("/a", {"/a": "/b", "/b": "/a"}.get)


def test_program_closure_follows_shebang_wrappers() -> None:
    """gs-like wrappers: a script whose interpreter is itself a script."""
    h = debian_host()
    h.add_exec("/usr/bin/ps2pdf", b"#!/usr/bin/gswrap\n")
    h.add_exec("/usr/bin/gswrap", b"#!/bin/sh\nexec gs \"$@\"\n")
    c = Closure(h)
    c.add_program("/usr/bin/ps2pdf")
    assert {"/usr/bin/ps2pdf", "/usr/bin/gswrap", "/usr/bin/dash", f"{LIB}/libc.so.6",
            f"{LIB}/ld-linux-x86-64.so.2"} <= set(c.needs)
    assert c.needs["/usr/bin/sh"].link == "dash"       # /bin/sh -> dash kept a symlink
    assert c.needs["/bin"].link == "usr/bin"
    assert h.ldd_calls == ["/usr/bin/dash"]             # scripts are not ldd'ed


def test_program_closure_env_interpreter() -> None:
    h = debian_host()
    h.add_exec("/usr/bin/env", ELF + b"env", LDD_DASH)
    h.add_exec("/usr/bin/python3", ELF + b"py", LDD_DASH)
    h.add_exec("/usr/local/bin/tool", b"#!/usr/bin/env python3\n")
    c = Closure(h)
    c.add_program("/usr/local/bin/tool")
    assert "/usr/bin/python3" in c.needs and "/usr/bin/env" in c.needs


def test_shebang_nesting_limit() -> None:
    h = debian_host()
    for i in range(6):
        h.add_exec(f"/usr/bin/w{i}", f"#!/usr/bin/w{i + 1}\n".encode())
    h.add_exec("/usr/bin/w6", b"#!/bin/sh\n")
    with pytest.raises(PlanError, match="nest deeper"):
        Closure(h).add_program("/usr/bin/w0")


def test_tex_symlink_into_a_mount_is_kept_and_not_copied() -> None:
    """Seed 002: latex must stay a symlink into the TeX tree, which is mounted."""
    h = debian_host()
    h.links["/usr/local/bin/latex"] = "/usr/local/texlive/2018/bin/x86_64-linux/latex"
    h.links["/usr/local/texlive"] = "/srv/texlive"
    h.add_exec("/srv/texlive/2018/bin/x86_64-linux/latex", ELF + b"tex", LDD_DASH)
    c = Closure(h, skip=lambda p: p.startswith("/srv/texlive/"))
    c.add_program("/usr/local/bin/latex")
    assert c.needs["/usr/local/bin/latex"].link == "/usr/local/texlive/2018/bin/x86_64-linux/latex"
    assert c.needs["/usr/local/texlive"].link == "/srv/texlive"
    assert "/srv/texlive/2018/bin/x86_64-linux/latex" not in c.needs
    assert f"{LIB}/libc.so.6" in c.needs     # its libraries still come in


def test_missing_program() -> None:
    with pytest.raises(PlanError, match="does not exist"):
        Closure(debian_host()).add_program("/usr/bin/nope")


def test_tree_keeps_symlinks() -> None:
    c = Closure(debian_host())
    c.add_tree("/usr/share/zoneinfo")
    assert c.needs["/usr/share/zoneinfo/Cuba"].link == "America/Havana"
    assert c.needs["/usr/share/zoneinfo/Europe"].kind == "dir"
    assert c.needs["/usr/share/zoneinfo/Europe/Paris"].kind == "file"


def test_shebang_naming_a_secret_in_a_tenant_script_is_never_read() -> None:
    """A tenant writes `#!/etc/shadow` into a script the spec lists: root must not
    read the line (else /etc/shadow lands in the jail)."""
    h = debian_host()
    h.add_exec("/srv/www/ncs/bin/tool", b"#!/etc/shadow\n")
    h.files["/etc/shadow"] = b"root:$6$secret:::\n"
    c = Closure(h)
    with pytest.raises(UntrustedProgram, match="/srv/www is owned by uid 1001"):
        c.add_program("/srv/www/ncs/bin/tool")
    assert h.head_calls == [] and h.ldd_calls == []
    assert "/etc/shadow" not in c.needs


def test_roots_symlink_into_a_tenant_tree_is_not_trusted() -> None:
    h = debian_host()
    h.links["/usr/local/bin/tool"] = "/srv/www/ncs/bin/tool"
    h.add_exec("/srv/www/ncs/bin/tool", ELF + b"x", LDD_DASH)
    with pytest.raises(UntrustedProgram, match="/srv/www"):
        Closure(h).add_program("/usr/local/bin/tool")
    assert h.ldd_calls == []


def test_tenant_symlink_to_a_root_file_is_not_followed() -> None:
    """A tenant's `tool -> /etc/shadow`: the link is foreign, so nothing is copied."""
    h = debian_host()
    h.links["/srv/www/ncs/bin/tool"] = "/etc/shadow"
    h.files["/etc/shadow"] = b"root:$6$secret:::\n"
    c = Closure(h)
    with pytest.raises(UntrustedProgram):
        c.add_program("/srv/www/ncs/bin/tool")
    assert "/etc/shadow" not in c.needs


def test_interpreter_of_a_root_script_in_a_tenant_dir_is_refused() -> None:
    h = debian_host()
    h.add_exec("/usr/local/bin/tool", b"#!/srv/www/ncs/bin/interp\n")
    h.add_exec("/srv/www/ncs/bin/interp", ELF + b"i", LDD_DASH)
    with pytest.raises(UntrustedProgram, match="/srv/www/ncs/bin/interp"):
        Closure(h).add_program("/usr/local/bin/tool")
    assert "/srv/www/ncs/bin/interp" not in h.head_calls + h.ldd_calls


def test_library_in_a_tenant_dir_is_refused() -> None:
    h = debian_host()
    h.add_exec("/usr/local/bin/tool", ELF + b"t",
               "\tlibx.so => /srv/www/ncs/lib/libx.so (0x1)\n")
    h.files["/srv/www/ncs/lib/libx.so"] = ELF + b"x"
    c = Closure(h)
    with pytest.raises(UntrustedProgram, match=r"/srv/www/ncs/lib/libx\.so"):
        c.add_program("/usr/local/bin/tool")
    assert "/srv/www/ncs/lib/libx.so" not in c.needs
