"""A spec directory (conf.d style) reads as one spec; every mistake names the file
of the directory that holds the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from phphost.errors import SpecError
from phphost.spec.loader import load_spec
from phphost.spec.model import Model
from tests.specdir import split_spec

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo.toml"

GLOBAL = """
[apache]
proxy_timeout = 30

[templates.base]
pm = "ondemand"
max_children = 4
"""

ACME = """
[tenants.acme]
home = "/srv/www/acme"

[pools.web]
tenant = "acme"
template = "base"

[sites.main]
server_name = "acme.example.org"
tenant = "acme"
docroot = "htdocs"
pool = "web"
"""

BETA = """
[tenants.beta]
home = "/srv/www/beta"

[pools.beta]
tenant = "beta"
template = "base"
max_children = 2

[sites.beta]
server_name = "beta.example.org"
tenant = "beta"
docroot = "htdocs"
pool = "beta"
"""


def write(d: Path, **files: str) -> Path:
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / f"{name.replace('_', '-')}.toml").write_text(text)
    return d


def fails(d: Path, file: str, key: str, *words: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(str(d))
    err = info.value
    assert (err.file, err.key) == (str(d / file) if file else str(d), key), str(err)
    assert err.problem and err.remedy
    for word in words:
        assert word in str(err), str(err)
    return err


def plain(model: Model) -> Model:
    return dataclasses.replace(model, source="", origins=())


def test_directory_reads_as_one_spec(tmp_path: Path) -> None:
    d = write(tmp_path / "spec.d", a_global=GLOBAL, acme=ACME, beta=BETA)
    model = load_spec(str(d))
    assert model.source == str(d)
    assert [p.name for p in model.pools] == ["beta", "web"]
    assert model.pool("beta").settings.max_children == 2       # template from another file
    assert model.apache.proxy_timeout == 30
    assert model.file_of("pools.beta") == str(d / "beta.toml")
    assert model.file_of("apache") == str(d / "a-global.toml")
    assert model.file_of("tenants.nobody") == str(d)


def test_split_demo_is_the_same_model(tmp_path: Path) -> None:
    files = split_spec(DEMO.read_text(), tmp_path / "demo.d")
    assert set(files) == {"00-global.toml", "ncs.toml", "blog.toml", "docs.toml", "wiki.toml"}
    assert plain(load_spec(str(tmp_path / "demo.d"))) == plain(load_spec(str(DEMO)))


def test_only_toml_files_in_sorted_order(tmp_path: Path) -> None:
    d = write(tmp_path / "d", acme=ACME, beta=BETA, zz_global=GLOBAL)
    (d / "notes.txt").write_text("[pools.x]\nnot = 'read'\n")
    (d / ".editor.toml").write_text("garbage = [")
    (d / "sub").mkdir()
    (d / "sub" / "x.toml").write_text("garbage = [")
    assert [p.name for p in load_spec(str(d)).pools] == ["beta", "web"]


def test_empty_directory(tmp_path: Path) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    (d / "README").write_text("x")
    fails(d, "", "", "no *.toml")


def test_pool_defined_in_two_files(tmp_path: Path) -> None:
    twice = BETA.replace("[pools.beta]", "[pools.web]").replace('pool = "beta"', 'pool = "web"')
    d = write(tmp_path / "d", a_global=GLOBAL, acme=ACME, beta=twice)
    err = fails(d, "beta.toml", "pools.web", "also defined in", "acme.toml")
    assert "one file" in err.remedy


@pytest.mark.parametrize("section", ["apache", "exporter"])
def test_single_table_in_two_files(tmp_path: Path, section: str) -> None:
    d = write(tmp_path / "d", a_global=GLOBAL + "\n[exporter]\n", acme=ACME,
              b_more=f"[{section}]\n")
    fails(d, "b-more.toml", section, f"[{section}] is also defined in", "a-global.toml")


def test_template_and_tenant_defined_twice(tmp_path: Path) -> None:
    again = "[templates.base]\npm = 'static'\n"
    d = write(tmp_path / "d", a_global=GLOBAL, acme=ACME, b_again=again)
    fails(d, "b-again.toml", "templates.base", "also defined in", "a-global.toml")
    d2 = write(tmp_path / "d2", a_global=GLOBAL, acme=ACME, b_again=ACME.split("[pools")[0])
    fails(d2, "b-again.toml", "tenants.acme", "also defined in", "acme.toml")


def test_unknown_keys_name_their_file(tmp_path: Path) -> None:
    d = write(tmp_path / "d", a_global=GLOBAL, acme=ACME, beta=BETA + "\n[pool.x]\n")
    fails(d, "beta.toml", "pool", "unknown key 'pool'", "did you mean 'pools'")
    bad = BETA.replace("max_children = 2", "max_childs = 2")
    d2 = write(tmp_path / "d2", a_global=GLOBAL, acme=ACME, beta=bad)
    fails(d2, "beta.toml", "pools.beta.max_childs", "unknown key")
    d3 = write(tmp_path / "d3", a_global=GLOBAL.replace("proxy_timeout", "proxy_timout"),
               acme=ACME)
    fails(d3, "a-global.toml", "apache.proxy_timout", "unknown key")


def test_value_errors_name_the_defining_file(tmp_path: Path) -> None:
    d = write(tmp_path / "d", a_global=GLOBAL.replace("max_children = 4", "max_children = 0"),
              acme=ACME)
    fails(d, "a-global.toml", "templates.base.max_children", "too small")
    d2 = write(tmp_path / "d2", a_global=GLOBAL, acme=ACME,
               beta=BETA.replace('pool = "beta"', 'pool = "nope"'))
    fails(d2, "beta.toml", "sites.beta.pool", "'nope' is not defined")


def test_cross_file_conflicts_name_the_file_of_the_key(tmp_path: Path) -> None:
    clash = BETA.replace("beta.example.org", "acme.example.org")
    d = write(tmp_path / "d", a_global=GLOBAL, acme=ACME, beta=clash)
    fails(d, "acme.toml", "sites.main.server_name", "acme.example.org", "site 'beta'")
    nested = BETA.replace("/srv/www/beta", "/srv/www/acme/beta")
    d2 = write(tmp_path / "d2", a_global=GLOBAL, acme=ACME, beta=nested)
    fails(d2, "beta.toml", "tenants.beta.home", "overlaps")


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    d = write(tmp_path / "d", a_global=GLOBAL, acme=ACME, beta="[pools.x\n")
    fails(d, "beta.toml", "", "invalid TOML")


def test_section_of_the_wrong_type(tmp_path: Path) -> None:
    d = write(tmp_path / "d", a_global=GLOBAL, acme=ACME, beta="pools = 3\n")
    fails(d, "beta.toml", "pools", "expected table")


def test_unreadable_file(tmp_path: Path) -> None:
    d = write(tmp_path / "d", a_global=GLOBAL, acme=ACME)
    (d / "b.toml").write_bytes(b"\xff\xfe")
    fails(d, "b.toml", "", "not UTF-8")
