"""apply validates Apache on a staged view of /etc/apache2 (host/staging.py): only the
directories the plan changes (and those whose relative links point into them) are
made anew, the rest are links to the live tree. The view must read exactly like a
full copy with the plan's changes, and staging must never write to the live tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from phphost import layout
from phphost.errors import HostError
from phphost.host import opened, staging
from phphost.plan import actions as A


def _tree(root: Path) -> dict[str, str]:
    """Every path under root -> what reading it gives (following links), or the
    link's target for a link."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                out[rel] = path.read_text()
    return out


def _view(root: Path) -> dict[str, str]:
    """What apache2 reads under root: files by name, through any links (directories
    that are links walked too), broken links left out."""
    out: dict[str, str] = {}
    for dirpath, _dirs, filenames in os.walk(root, followlinks=True):
        for name in filenames:
            path = Path(dirpath, name)
            if path.exists():
                out[str(path.relative_to(root))] = path.read_text()
    return out


@pytest.fixture()
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "apache2"
    for d in ("sites-available", "sites-enabled", "conf-available", "conf-enabled",
              "mods-available", "mods-enabled", "conf-available/sub"):
        (root / d).mkdir(parents=True)
    (root / "apache2.conf").write_text("IncludeOptional sites-enabled/*.conf\n")
    for site in ("a", "b"):
        (root / f"sites-available/{site}.conf").write_text(f"site {site}\n")
    os.symlink("../sites-available/a.conf", root / "sites-enabled/a.conf")
    (root / "conf-available/x.conf").write_text("x old\n")
    (root / "conf-available/sub/y.conf").write_text("y old\n")
    os.symlink("../conf-available/x.conf", root / "conf-enabled/x.conf")
    (root / "mods-available/foo.load").write_text("# Depends: bar\nLoadModule foo\n")
    (root / "mods-available/bar.load").write_text("LoadModule bar\n")
    monkeypatch.setattr(layout, "APACHE_DIR", str(root))
    return root


def _stage(live: Path, actions: list[A.Action]) -> Path:
    staged = live.parent / "staged"
    staging._stage_apache(str(staged), actions)
    return staged


def test_one_file_changed_reads_as_a_full_copy_and_the_live_tree_is_untouched(
        live: Path) -> None:
    before = _tree(live)
    d = str(live)
    actions: list[A.Action] = [A.WriteFile("t", f"{d}/conf-available/x.conf", "x new\n")]
    staged = _stage(live, actions)
    assert _tree(live) == before
    view = _view(staged)
    assert view["conf-enabled/x.conf"] == "x new\n"       # the enabled link sees the new file
    assert view["sites-enabled/a.conf"] == "site a\n"
    assert view == {**_view(live), "conf-available/x.conf": "x new\n",
                    "conf-enabled/x.conf": "x new\n"}
    assert (staged / "sites-available").is_symlink()      # untouched: one link, no copy


def test_every_kind_of_change_in_the_view_none_in_the_live_tree(live: Path) -> None:
    before = _tree(live)
    d = str(live)
    actions: list[A.Action] = [
        A.WriteFile("t", f"{d}/sites-available/c.conf", "site c\n"),
        A.Symlink("t", f"{d}/sites-enabled/c.conf", "../sites-available/c.conf"),
        A.RemoveFile("t", f"{d}/sites-enabled/a.conf"),
        A.WriteFile("t", f"{d}/sites-available/b.conf", "site b new\n"),
        A.WriteFile("t", f"{d}/conf-available/sub/y.conf", "y new\n"),
        A.WriteFile("t", f"{d}/apache2.conf", "new main\n"),
        A.ApacheModule("t", "foo", True),
    ]
    staged = _stage(live, actions)
    assert _tree(live) == before
    view = _view(staged)
    assert view["sites-enabled/c.conf"] == "site c\n"
    assert "sites-enabled/a.conf" not in view
    assert view["sites-available/b.conf"] == "site b new\n"
    assert view["conf-available/sub/y.conf"] == "y new\n"
    assert view["apache2.conf"] == "new main\n"
    assert view["mods-enabled/foo.load"].startswith("# Depends: bar")
    assert view["mods-enabled/bar.load"] == "LoadModule bar\n"
    assert view["conf-enabled/x.conf"] == "x old\n"


def test_a_link_into_a_changed_dir_stages_its_dir_too(live: Path) -> None:
    """sites-enabled is not changed, but its relative link points into
    sites-available, which is: through a link to the live sites-enabled it would
    read the live file."""
    d = str(live)
    staged = _stage(live, [A.WriteFile("t", f"{d}/sites-available/a.conf", "site a new\n")])
    assert not (staged / "sites-enabled").is_symlink()
    assert _view(staged)["sites-enabled/a.conf"] == "site a new\n"
    assert (live / "sites-available/a.conf").read_text() == "site a\n"




def test_a_test_that_opened_no_changed_live_file_stands_for_the_live_test(live: Path) -> None:
    d = str(live)
    actions: list[A.Action] = [A.WriteFile("t", f"{d}/sites-available/a.conf", "site a new\n"),
                               A.Symlink("t", f"{d}/sites-enabled/c.conf", "../c")]
    # files the plan leaves alone, read through the staged view's links: the same
    assert staging.read_as_staged({d, f"{d}/apache2.conf", f"{d}/sites-available/b.conf",
                                   f"{d}/conf-enabled"}, actions)
    assert not staging.read_as_staged(None, actions)                 # not known
    assert not staging.read_as_staged(set(), [*actions, A.ApacheModule("t", "foo", True)])


@pytest.mark.parametrize("path", ["sites-available/a.conf",      # a changed file, as it was
                                  "conf-available/x.conf",         # a repointed link's target
                                  "sites-enabled",                 # a glob over a changed dir
                                  "sites-available"])
def test_a_changed_live_file_or_directory_opened_needs_the_live_test(live: Path,
                                                                    path: str) -> None:
    d = str(live)
    actions: list[A.Action] = [A.WriteFile("t", f"{d}/sites-available/a.conf", "site a new\n"),
                               A.Symlink("t", f"{d}/sites-enabled/c.conf", "../c"),
                               A.Symlink("t", f"{d}/conf-enabled/x.conf", "../conf-available/z")]
    assert not staging.read_as_staged({f"{d}/apache2.conf", f"{d}/{path}"}, actions)


@pytest.mark.parametrize(("line", "plain"), [
    ("IncludeOptional conf-enabled/*.conf", True),
    ("# IncludeOptional {live}/sites-enabled/*.conf", True),      # a comment
    ("IncludeOptional {live}/sites-enabled/*.conf", False),
    ("include /etc/elsewhere/x.conf", False),
    ('<IfFile !"{live}/sites-enabled/a.conf">', False),            # only stat'ed
    ("ServerRoot /srv/apache", False),
    ("Include ${{CONF}}/x.conf", False),
    ("IncludeOptional ../other/*.conf", False),
    ("Define \\\n  X {live}/y", False),                          # a continued line
    ("DocumentRoot /srv/site", True),
    ("Define X {live}//sites-enabled", False),                     # // is /
    ('"IncludeOptional" /etc/x/*.conf', False),                     # a quoted name
    ("Include \\\r\n  /etc/x.conf", False),                     # a CRLF continuation
    ("\x0bInclude /etc/x.conf", False),                            # a vertical tab first
    ("<Macro Site $name>", False), ("Use Site blog", False),      # mod_macro
    ("<IfF\\\nile !/etc/x.conf>", False)])                          # joined as is
def test_a_file_that_names_live_or_absolute_paths_needs_the_live_test(
        live: Path, line: str, plain: bool) -> None:
    """Such a path is read as the live tree holds it before the writes, or only
    stat'ed, or not there yet: the watch cannot tell."""
    d = str(live)
    (live / "conf-available/x.conf").write_text(line.format(live=d) + "\n", newline="")
    actions: list[A.Action] = [A.WriteFile("t", f"{d}/sites-available/a.conf", "site a new\n")]
    assert staging.read_as_staged({f"{d}/conf-available/x.conf"}, actions) is plain


def test_a_linked_top_level_directory_is_staged_not_written_through(live: Path,
                                                                   tmp_path: Path) -> None:
    """sites-available as a link to a directory elsewhere: the staged view makes it a
    directory of its own, so the plan's write never reaches the live file."""
    elsewhere = tmp_path / "elsewhere"
    (live / "sites-available").rename(elsewhere)
    os.symlink(elsewhere, live / "sites-available")
    d = str(live)
    actions: list[A.Action] = [A.WriteFile("t", f"{d}/sites-available/a.conf", "bad\n")]
    staged = _stage(live, actions)
    assert (elsewhere / "a.conf").read_text() == "site a\n"
    assert _view(staged)["sites-enabled/a.conf"] == "bad\n"


def test_a_write_through_a_deeper_link_is_refused(live: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (live / "conf-available/sub").rename(tmp_path / "old-sub")
    os.symlink(elsewhere, live / "conf-available/sub")
    d = str(live)
    with pytest.raises(HostError, match="outside the Apache tree"):
        _stage(live, [A.WriteFile("t", f"{d}/conf-available/sub/y.conf", "bad\n")])
    assert list(elsewhere.iterdir()) == []


def test_the_watch_sees_a_live_file_opened_through_a_link_from_elsewhere(live: Path,
                                                                      tmp_path: Path) -> None:
    """What the staged view does: a link outside the tree to a file inside it."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(live / "conf-available/sub/y.conf", outside / "y.conf")
    with opened.watch(str(live)) as seen:
        (outside / "y.conf").read_text()
        os.listdir(live / "sites-enabled")
        (live / "sites-available/b.conf").stat()          # a stat is no open
    assert seen.paths is not None
    assert f"{live}/conf-available/sub/y.conf" in seen.paths
    assert f"{live}/sites-enabled" in seen.paths
    assert f"{live}/sites-available/b.conf" not in seen.paths
    with opened.watch(str(live)) as quiet:
        pass
    assert quiet.paths == set()


def test_the_watch_follows_the_trees_links_out_to_files_not_directories(
        live: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "apache.conf").write_text("Alias /pkg /usr/share/pkg\n")
    os.symlink(pkg / "apache.conf", live / "conf-enabled/pkg.conf")
    with opened.watch(str(live)) as seen:
        (live / "conf-enabled/pkg.conf").read_text()
    assert seen.paths == {f"{pkg}/apache.conf"}
    os.symlink(pkg, live / "conf-enabled/pkgdir")
    with opened.watch(str(live)) as unknown:
        pass
    assert unknown.paths is None


def test_an_alias_of_a_directory_in_the_tree_leads_to_the_staged_one(live: Path) -> None:
    """conf.d -> conf-enabled: a glob over conf.d must list the plan's new link."""
    os.symlink("conf-enabled", live / "conf.d")
    d = str(live)
    actions: list[A.Action] = [
        A.WriteFile("t", f"{d}/conf-available/new.conf", "new\n"),
        A.Symlink("t", f"{d}/conf-enabled/new.conf", "../conf-available/new.conf")]
    staged = _stage(live, actions)
    assert _view(staged)["conf.d/new.conf"] == "new\n"
    assert not (live / "conf-enabled/new.conf").exists()


def test_a_file_that_is_no_regular_file_is_not_read_and_needs_the_live_test(
        live: Path) -> None:
    """A FIFO where a config file was opened: not read (no wait), the live test runs."""
    os.mkfifo(live / "conf-available/fifo.conf")
    d = str(live)
    actions: list[A.Action] = [A.WriteFile("t", f"{d}/sites-available/a.conf", "site a new\n")]
    assert not staging.read_as_staged({f"{d}/conf-available/fifo.conf"}, actions)
