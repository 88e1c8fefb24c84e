"""`phphost migrate` on the private mod_php host of modphp_host.py: import, then the
stages forward one at a time (1 PHP off where unused, 2 the web user's FPM beside
mod_php, 3 the PHP sites moved to it in two groups, 4 mod_php off and prefork ->
event after the admin's edits stage 4 asks for, 5 one master per pool, each with its
own OPcache), the URL comparison passing after each, then back to 0 with the old
host serving as before, its module links exactly as they were, and nothing of
migrate's left. A stage that changes what a visitor
sees is taken back by itself (exit 12); bad input changes nothing.

The web user's FPM runs under the host's supervisord, so this holds the integration
lock; it never applies a spec (the demo host's pools and sites stay as they are)."""

from __future__ import annotations

import glob
import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from phphost import layout
from phphost.host import supervisord
from phphost.importer.migrate import oldserver, render
from phphost.importer.migrate.modules import LinkPlan
from tests.importer.modphp_host import APACHE, ENV, MODPHP_LINKS, ModPhpHost

PHPHOST = str(Path(sys.executable).parent / "phphost")
STATE = f"{layout.STATE_DIR}/migrate.json"
PATHS = [("static.test", "/"), ("www.static.test", "/"), ("unused.test", "/"),
         ("old.test", "/x"), ("values.test", "/"), ("hta.test", "/"), ("hta.test", "/sub/"),
         ("apps.test", "/"), ("www.apps.test", "/"), ("apps.test", "/wiki/doku.php"),
         ("adminer.test", "/"), ("hta.test", "/page.html"), ("values.test", "/nothing.php"),
         ("apps.test", "/wiki/nothing.php")]
# what differs by design or from one request to the next: the SAPI's name (mod_php
# -> fpm-fcgi is the point of stage 3), DokuWiki's task runner stamp, Adminer's CSP
# nonce and form tokens (new for every page)
IGNORE = [r'"sapi":"[^"]*"', r"taskrunner\.php\?[^\"']*", r'nonce="[^"]*"', r"'\d+:\d+'"]


def phphost(*args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([PHPHOST, *args], capture_output=True, text=True, timeout=600)
    print(f"$ phphost {' '.join(args)}\n{proc.stdout}", end="")   # shown with pytest -s
    assert proc.returncode in ok, f"phphost {' '.join(args)}: {proc.returncode}\n" \
                                  f"{proc.stdout}{proc.stderr}"
    return proc


def urls_file(host: ModPhpHost, path: Path) -> Path:
    lines = [f"http://{n}:{host.http}{p}" for n, p in PATHS]
    lines.append(f"https://secure.test:{host.https}/")
    path.write_text("# the URLs a visitor uses\n" + "\n".join(lines) + "\n")
    return path


def sapi(host: ModPhpHost, name: str) -> str:
    return str(json.loads(host.get(name, "/")[1])["sapi"])


def leftovers(host: ModPhpHost) -> list[str]:
    root = host.apache_root
    paths = [root / "conf-enabled" / render.OVERLAY_NAME, Path(render.SUPERVISOR_CONF),
             Path(render.FPM_CONF)]
    return [str(p) for p in paths if os.path.lexists(p)] + \
        [f"{name} linked" for name in enabled(host) if name not in MODPHP_LINKS]


def enabled(host: ModPhpHost) -> dict[str, str]:
    """mods-enabled/: name -> link target."""
    where = host.apache_root / "mods-enabled"
    return {p.name: os.readlink(p) for p in sorted(where.iterdir())}


def loaded(host: ModPhpHost) -> set[str]:
    """What `apache2 -M` lists for the host's config."""
    out = subprocess.run([APACHE, "-d", str(host.apache_root), "-f", str(host.conf), "-M"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(" ")}


def running(host: ModPhpHost) -> set[str]:
    """The MPM and PHP modules the running apache2 parent has mapped."""
    pid = int((host.pid_file).read_text())
    maps = Path(f"/proc/{pid}/maps").read_text()
    return set(re.findall(r"(mod_mpm_[a-z]+|libphp8\.2)\.so", maps))


def test_migrate_forward_and_back(modphp: ModPhpHost, tmp_path: Path, host_lock: None) -> None:
    if not modphp.serving():
        modphp.start()
    spec = tmp_path / "imported.toml"
    phphost("import", "--apache-root", str(modphp.apache_root), "--out", str(spec))
    urls = urls_file(modphp, tmp_path / "urls.txt")
    common = [str(spec), "--apache-root", str(modphp.apache_root), "--urls", str(urls),
              *(a for rx in IGNORE for a in ("--ignore", rx))]
    first = {(n, p): modphp.get(n, p) for n, p in PATHS}
    assert sapi(modphp, "values.test") == "apache2handler"
    saved: dict[Path, str | None] = {}          # the admin's files stage 4 has them edit
    try:
        try:
            phphost("migrate", *common, "--to", "php-off")
            assert modphp.get("unused.test", "/x.php")[0] == 403      # was mod_php's 404
            phphost("migrate", *common, "--to", "2")
            assert sapi(modphp, "values.test") == "apache2handler"     # FPM runs, nothing sent
            out = phphost("migrate", *common, "--to", "move", "--sites", "*apps*").stdout
            assert "stage 3 (move): done" in out, out
            assert sapi(modphp, "values.test") == "apache2handler"
            phphost("migrate", *common, "--to", "move")                  # the rest
            for name in ("values.test", "hta.test"):
                assert sapi(modphp, name) == "fpm-fcgi", name
            assert json.loads(Path(STATE).read_text())["stage"] == 3
            stage4(modphp, common, saved)
            # without the SAPI ignored, stage 3 differs: taken back to 2 by itself
            phphost("migrate", *common, "--to", "2")
            strict = [str(spec), "--apache-root", str(modphp.apache_root), "--urls", str(urls),
                      *(a for rx in IGNORE[1:] for a in ("--ignore", rx))]
            out = phphost("migrate", *strict, "--to", "3", "--json", ok=(12,)).stdout
            report = json.loads(out)
            assert report["stage"] == 2 and report["failed_stage"] == 3, report
            assert any("values.test" in d["url"] for d in report["differences"]), report
            assert sapi(modphp, "values.test") == "apache2handler"
        finally:
            if _stage() >= 4:                   # (after a failure in stage4/stage5)
                phphost("migrate", *common, "--to", "3", ok=(0, 4, 5, 6, 12))
            restore(saved)                      # mod_php needs its lines again below 3
            back = phphost("migrate", *common, "--to", "0", ok=(0, 4, 5, 6, 9, 12))
    finally:
        restore(saved)
        if _stage() != 0:
            _clean_up()
        modphp.start()                          # the fixture's own apache2 again
    assert back.returncode == 0, back.stdout + back.stderr
    assert leftovers(modphp) == [] and split_left() == []
    assert enabled(modphp) == {n: f"../mods-available/{n}" for n in MODPHP_LINKS}
    assert json.loads(Path(STATE).read_text())["stage"] == 0
    last = {(n, p): modphp.get(n, p) for n, p in PATHS}
    assert {k for k in first if _plain(first[k]) != _plain(last[k])} == set()


def stage4(host: ModPhpHost, common: list[str], saved: dict[Path, str | None]) -> None:
    """3 -> 4 -> 3. Refused while the admin's config or an .htaccess holds lines that
    need mod_php (each named); taken back by itself (exit 12) when a URL in the list
    changes (a .phtml mod_php ran: 403); after the admin's edits: mod_php off, event
    running, every URL as before; back at 3 every module link exactly as it was."""
    links = enabled(host)
    assert {"php_module", "mpm_prefork_module"} <= loaded(host)
    for to in ("modphp-off", "pools"):     # stage 5 goes through 4: refused the same
        refused = phphost("migrate", *common, "--to", to, ok=(4,))
        assert "sites/40-values.conf:4: php_value memory_limit 99M" in refused.stderr, \
            refused.stderr
        assert "90-engine.conf:" in refused.stderr and "Nothing was changed" in refused.stderr
        assert enabled(host) == links and running(host) == {"mod_mpm_prefork", "libphp8.2"}
        assert json.loads(Path(STATE).read_text())["stage"] == 3 and split_left() == []
    # the admin removes them (the pools hold the values) and reloads
    sites = host.apache_root / "sites"
    edit(saved, sites / "40-values.conf", "    php_value memory_limit 99M\n"
         "    php_admin_flag display_errors on\n", "")
    edit(saved, sites / "90-engine.conf", "    php_admin_flag engine off\n", "")
    subprocess.run([APACHE, "-d", str(host.apache_root), "-f", str(host.conf), "-k", "graceful"],
                   check=True)
    # .htaccess lines that need mod_php: php_value/php_flag (a 500 without it), the
    # AddHandler that made page.html PHP (403 without it): each named, nothing changed
    refused = phphost("migrate", *common, "--to", "4", ok=(4,)).stderr
    hta = host.docroot("hta")
    for line in (f"{hta}/.htaccess:1: php_value upload_max_filesize 7M: a 500",
                 f"{hta}/.htaccess:2: php_flag short_open_tag on", f"{hta}/sub/.htaccess:1",
                 f"{hta}/.htaccess:6: addhandler application/x-httpd-php .html: *.html would "
                 "answer 403"):
        assert line in refused, refused
    assert enabled(host) == links and running(host) == {"mod_mpm_prefork", "libphp8.2"}
    # the admin: the values are in the pool (a sub-directory's in its .user.ini);
    # page.html's code moves to page.php and a rewrite keeps its URL
    edit(saved, hta / ".htaccess", "php_value upload_max_filesize 7M\nphp_flag short_open_tag on\n",
         "")
    edit(saved, hta / "sub" / ".htaccess", "php_value max_execution_time 17\n", "")
    edit(saved, hta / "sub" / ".user.ini", None, "max_execution_time = 17\n")
    edit(saved, hta / ".htaccess", "AddHandler application/x-httpd-php .html\n",
         "RewriteRule ^page\\.html$ page.php [L]\n")
    edit(saved, hta / "page.php", None, (hta / "page.html").read_text())
    # a .phtml mod_php ran: 403 without it (never its source); a visitor would see it,
    # so with its URL in the list stage 4 differs and takes itself back
    phtml = host.docroot("apps") / "x.phtml"
    edit(saved, phtml, None, "<?php echo 'phtml ran';\n")
    assert host.get("apps.test", "/x.phtml") == (200, "phtml ran")
    urls = Path(common[common.index("--urls") + 1])
    more = urls.with_name("more.txt")
    more.write_text(urls.read_text() + f"http://apps.test:{host.http}/x.phtml\n")
    with_phtml = [str(more) if a == str(urls) else a for a in common]
    assert differences(host, with_phtml) == {"apps.test/x.phtml": "403"}
    assert enabled(host) == links and running(host) == {"mod_mpm_prefork", "libphp8.2"}
    # the new server does not come up (event's conf listens on a port taken; apache2 -t
    # binds nothing): the links back, apache2 on prefork again
    event_conf = host.apache_root / "mods-available" / "mpm_event.conf"
    good = event_conf.read_text()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        event_conf.write_text(good + f"Listen 127.0.0.1:{taken.getsockname()[1]}\n")
        try:
            failed = phphost("migrate", *common, "--to", "4", ok=(5,)).stderr
        finally:
            event_conf.write_text(good)
    assert "apache2 runs again at stage 3 (move)" in failed, failed
    assert enabled(host) == links and running(host) == {"mod_mpm_prefork", "libphp8.2"}
    assert json.loads(Path(STATE).read_text())["stage"] == 3
    dry = phphost("migrate", *common, "--to", "4", "--dry-run").stdout
    prefork = host.apache_root / "mods-enabled" / "mpm_prefork.load"
    assert f"remove the link {prefork} -> ../mods-available/mpm_prefork.load" in dry, dry
    assert "Action application/x-httpd-php /phphost-migrate-no-php" in dry
    assert enabled(host) == links
    out = phphost("migrate", *common, "--to", "modphp-off").stdout
    assert "stage 4 (modphp-off): done" in out, out
    dry = phphost("migrate", *common, "--to", "3", "--dry-run").stdout
    assert f"put back the link {prefork} -> ../mods-available/mpm_prefork.load" in dry, dry
    record = json.loads(Path(STATE).read_text())
    assert record["stage"] == 4
    assert sorted(map(tuple, record["off_removed"])) == sorted(
        (str(host.apache_root / "mods-enabled" / n), f"../mods-available/{n}")
        for n in MODPHP_LINKS)
    assert set(enabled(host)) == {"actions.conf", "actions.load", "mpm_event.conf",
                                  "mpm_event.load", "proxy.load", "proxy_fcgi.load"}
    modules = loaded(host)
    assert "mpm_event_module" in modules and "actions_module" in modules
    assert not {"php_module", "mpm_prefork_module"} & modules, modules
    assert running(host) == {"mod_mpm_event"}
    assert sapi(host, "values.test") == "fpm-fcgi"
    assert host.get("hta.test", "/page.html") == (200, "html ran")
    assert host.get("values.test", "/nothing.php")[0] == 404          # as under mod_php
    status, body = host.get("apps.test", "/x.phtml")                  # mod_php ran it
    assert status == 403 and "<?php" not in body
    # the guard is what keeps the source in: without its Action lines Apache sends it
    overlay = host.apache_root / "conf-enabled" / render.OVERLAY_NAME
    guarded = overlay.read_text()
    overlay.write_text("".join(x for x in guarded.splitlines(True) if not x.startswith("Action")))
    try:
        assert reload_until(host, lambda: "<?php" in host.get("apps.test", "/x.phtml")[1]), \
            "BREACHED expected on the weakened host: the .phtml source"
    finally:
        overlay.write_text(guarded)
        assert reload_until(host, lambda: host.get("apps.test", "/x.phtml")[0] == 403)
    stage5(host, common, saved)
    out = phphost("migrate", *common, "--to", "3").stdout
    assert "stage 3 (move): done" in out, out
    assert enabled(host) == links and running(host) == {"mod_mpm_prefork", "libphp8.2"}
    assert {"php_module", "mpm_prefork_module"} <= loaded(host)
    record = json.loads(Path(STATE).read_text())
    assert (record["stage"], record["off_made"], record["off_removed"]) == (3, [], [])
    restore(saved)


# what each pool's master is: its workers' parent, and what its OPcache holds
WHO = ("<?php header('Content-Type: application/json'); $s = opcache_get_status(true); "
       "echo json_encode(['ppid' => posix_getppid(), "
       "'cached' => array_keys($s['scripts'] ?? [])]);\n")


def php_places(spec: Path) -> dict[str, tuple[str, str, Path, bool]]:
    """pool -> (server name, URL path of its directory, that directory, TLS) for
    every PHP site and route of the imported spec."""
    data = tomllib.loads(spec.read_text())
    out: dict[str, tuple[str, str, Path, bool]] = {}
    for site in data["sites"].values():
        if not site.get("php") or "pool" not in site:
            continue
        tls = "tls" in site
        out[site["pool"]] = (site["server_name"], "/", Path(site["docroot"]), tls)
        for path, pool in site.get("routes", {}).items():
            out[pool] = (site["server_name"], path, Path(site["docroot"]) / path.strip("/"), tls)
    return out


def who(host: ModPhpHost, places: dict[str, tuple[str, str, Path, bool]]
        ) -> dict[str, dict[str, object]]:
    """pool -> what its who.php says (each asked twice: its OPcache holds the first)."""
    out = {}
    for pool, (name, path, _dir, tls) in places.items():
        host.get(name, f"{path}who.php", tls=tls)
        status, body = host.get(name, f"{path}who.php", tls=tls)
        assert status == 200, (pool, status, body)
        out[pool] = json.loads(body)
    return out


def owner(places: dict[str, tuple[str, str, Path, bool]], path: str) -> str | None:
    """The pool whose directory holds path most closely (None: no pool's)."""
    holders = [(len(str(d)), pool) for pool, (_n, _u, d, _t) in places.items()
               if path.startswith(f"{d}/")]
    return max(holders)[1] if holders else None


def split_left() -> list[str]:
    """stage 5's programs supervisord has, and its files."""
    programs = [p for p in supervisord.states() if p.startswith(render.SPLIT_PREFIX)]
    written = glob.glob(f"{layout.ETC}/migrate/pools/*") + \
        glob.glob(f"{layout.SUPERVISOR_CONF_DIR}/{render.SPLIT_PREFIX}*.conf")
    return programs + written


def memory_kb(pid: int) -> int:
    """Proportional set size of a master and its workers, kB."""
    pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    total = 0
    for one in pids:
        rollup = Path(f"/proc/{one}/smaps_rollup").read_text()
        total += int(re.search(r"^Pss:\s+(\d+)", rollup, re.M)[1])
    return total


def stage5(host: ModPhpHost, common: list[str], saved: dict[Path, str | None]) -> None:
    """4 -> 5 -> 4: one master per pool, each answering from its own master with an
    OPcache of its own, every URL as before; back at 4 only the one master runs."""
    places = php_places(Path(common[0]))
    assert len(places) >= 4, places
    old = time.time() - 60                   # OPcache skips files changed in the last 2 s
    for _name, _path, where, _tls in places.values():
        edit(saved, where / "who.php", None, WHO)
        os.utime(where / "who.php", (old, old))
    who(host, places)
    one = who(host, places)                  # the second round: every who.php cached once
    single = int(Path(render.PID_FILE).read_text())
    assert {w["ppid"] for w in one.values()} == {single}          # one master for all
    everyone = {str(d / "who.php") for _n, _u, d, _t in places.values()}
    for pool, seen in one.items():          # and one OPcache: each sees the others' code
        assert everyone <= set(seen["cached"]), (pool, seen)
    print(f"stage 4: 1 master for {len(places)} pools, {memory_kb(single)} kB (PSS, workers "
          "included)")
    dry = phphost("migrate", *common, "--to", "pools", "--dry-run").stdout
    assert "stage 5 (pools) would:" in dry and render.split_socket("values-test") in dry, dry
    assert split_left() == []
    # who.php's answer changes by design (its parent): with it in the URL list stage 5
    # differs and takes itself back, the one master serving again
    urls = Path(common[common.index("--urls") + 1])
    more = urls.with_name("who.txt")
    more.write_text(urls.read_text() + f"http://values.test:{host.http}/who.php\n")
    with_who = [str(more) if a == str(urls) else a for a in common]
    report = json.loads(phphost("migrate", *with_who, "--to", "5", "--json", ok=(12,)).stdout)
    assert (report["stage"], report["failed_stage"]) == (4, 5), report
    assert [d["url"] for d in report["differences"]] == [f"http://values.test:{host.http}"
                                                           "/who.php"], report
    assert split_left() == [] and supervisord.states().get(render.PROGRAM) == "RUNNING"
    assert json.loads(Path(STATE).read_text())["stage"] == 4
    # a master that cannot start (its socket's path taken by a directory): exit 5, the
    # per-pool masters removed again, the one master serving at stage 4
    taken = Path(render.split_socket("hta-test"))
    taken.mkdir()
    try:
        failed = phphost("migrate", *common, "--to", "pools", ok=(5,)).stderr
    finally:
        taken.rmdir()
    assert "phphost.migrate.hta-test" in failed and "stage 4 (modphp-off) as before" in failed, \
        failed
    assert split_left() == [] and supervisord.states().get(render.PROGRAM) == "RUNNING"
    assert json.loads(Path(STATE).read_text())["stage"] == 4
    assert sapi(host, "hta.test") == "fpm-fcgi"
    out = phphost("migrate", *common, "--to", "pools").stdout
    assert "stage 5 (pools): done, all" in out, out
    record = json.loads(Path(STATE).read_text())
    assert record["stage"] == 5 and len(record["split_programs"]) == len(places), record
    assert not os.path.exists(render.SUPERVISOR_CONF) and not os.path.exists(render.FPM_CONF)
    states = supervisord.states()
    assert render.PROGRAM not in states, states
    assert {p: states.get(render.split_program(p)) for p in places} == {
        p: "RUNNING" for p in places}
    assert sapi(host, "values.test") == "fpm-fcgi"
    own = who(host, places)
    for pool in places:
        assert own[pool]["ppid"] == int(Path(render.split_pid(pool)).read_text()), pool
        # its OPcache holds code of its own directory and none of another pool's (a
        # route's pool none of its site's, and the other way round); a system library
        # (DokuWiki's phpseclib in /usr/share/php) belongs to no pool
        owners = {f: owner(places, f) for f in own[pool]["cached"]}
        assert pool in owners.values(), (pool, owners)
        assert {o for o in owners.values() if o is not None} == {pool}, (pool, owners)
    assert len({w["ppid"] for w in own.values()}) == len(places)
    sizes = {p: memory_kb(int(Path(render.split_pid(p)).read_text())) for p in places}
    print(f"stage 5: {len(places)} masters, {sum(sizes.values())} kB (PSS, workers "
          f"included): {sizes}")
    dry = phphost("migrate", *common, "--to", "4", "--dry-run").stdout
    assert f"remove {render.split_conf('values-test')}" in dry, dry
    assert split_left() and record == json.loads(Path(STATE).read_text())
    out = phphost("migrate", *common, "--to", "modphp-off").stdout
    assert "stage 4 (modphp-off): done" in out, out
    assert split_left() == []
    states = supervisord.states()
    assert states.get(render.PROGRAM) == "RUNNING", states
    back = who(host, places)
    assert {w["ppid"] for w in back.values()} == {int(Path(render.PID_FILE).read_text())}
    record = json.loads(Path(STATE).read_text())
    assert (record["stage"], record["split_programs"], record["split_files"]) == (4, [], [])
    assert running(host) == {"mod_mpm_event"}


def reload_until(host: ModPhpHost, done: Callable[[], bool]) -> bool:
    """A graceful restart of the host's apache2, then up to 15 s for done()."""
    subprocess.run([APACHE, "-d", str(host.apache_root), "-f", str(host.conf), "-k", "graceful"],
                   check=True, env=ENV)
    deadline = time.monotonic() + 15
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def differences(host: ModPhpHost, common: list[str]) -> dict[str, str]:
    """--to 4, which must differ and take itself back: "host/path" -> status after."""
    report = json.loads(phphost("migrate", *common, "--to", "4", "--json", ok=(12,)).stdout)
    assert report["stage"] == 3 and report["failed_stage"] == 4, report
    assert "<?php" not in str(report["differences"]), report      # never the source
    prefix = f":{host.http}"
    return {d["url"].removeprefix("http://").replace(prefix, ""): d["after"][:3]
            for d in report["differences"]}


def restore(saved: dict[Path, str | None]) -> None:
    """The admin puts back what stage 4 had them change (mod_php needs it below 3)."""
    for path, text in saved.items():
        if text is None:
            path.unlink()
        else:
            path.write_text(text)
    saved.clear()


def edit(saved: dict[Path, str | None], path: Path, old: str | None, new: str) -> None:
    """The admin's edit: old replaced by new (old None: a new file); the fixture's
    text is kept in saved, once."""
    text = path.read_text() if path.exists() else None
    saved.setdefault(path, text)
    if old is None:
        path.write_text(new)
        os.chmod(path, 0o644)
        return
    assert text is not None and old in text, (path, text)
    path.write_text(text.replace(old, new))


def _stage() -> int:
    return int(json.loads(Path(STATE).read_text())["stage"]) if os.path.exists(STATE) else 0


def _clean_up() -> None:
    """After a failed walk back: the module links as the record says they were, the
    overlay gone, the web user's FPM stopped and the record reset, so the shared host's
    supervisord runs no master of this test and the fixture's apache2 can start."""
    record = json.loads(Path(STATE).read_text())
    oldserver.switch_links(LinkPlan(remove=tuple(map(tuple, record["off_made"])),
                                    make=tuple(map(tuple, record["off_removed"]))))
    for link in record["links"]:
        Path(link).unlink(missing_ok=True)
    (Path(record["apache_root"]) / "conf-enabled" / render.OVERLAY_NAME).unlink(missing_ok=True)
    oldserver.fpm_down()
    oldserver.split_down(tuple(record.get("split_programs", [])),
                         tuple(record.get("split_files", [])))
    Path(STATE).write_text(json.dumps({**record, "stage": 0, "moved": [], "links": [],
                                       "off_made": [], "off_removed": [],
                                       "split_programs": [], "split_files": []}))


def _plain(seen: tuple[int, str]) -> tuple[int, str]:
    body = seen[1]
    for rx in IGNORE[1:]:
        body = re.sub(rx, "", body)
    return seen[0], body


def test_bad_input_changes_nothing(modphp: ModPhpHost, tmp_path: Path, host_lock: None) -> None:
    if not modphp.serving():
        modphp.start()
    spec = tmp_path / "imported.toml"
    phphost("import", "--apache-root", str(modphp.apache_root), "--out", str(spec))
    base = [str(spec), "--apache-root", str(modphp.apache_root)]
    bad = phphost("migrate", *base, "--to", "sideways", ok=(2,))
    assert "no such stage" in bad.stderr and "0 start" in bad.stderr
    assert modphp.get("apps.test", "/wiki/doku.php")[0] == 200
    dry = phphost("migrate", *base, "--to", "3", "--dry-run").stdout
    assert "stage 3 (move) would:" in dry and "SetHandler" in dry and leftovers(modphp) == []
    # without --urls: / of every name, and the paths the access log shows
    assert f"http://apps.test:{modphp.http}/wiki/doku.php" in dry, dry
    later = phphost("migrate", *base, "--to", "jails", ok=(4,))    # not the host's own Apache
    assert "stages 6-7 hand the sites to phphost's own Apache configuration" in later.stderr
    assert leftovers(modphp) == []
    # stage 4 while sites are on mod_php; where mods-available lacks the event MPM
    links = enabled(modphp)
    early = phphost("migrate", *base, "--to", "4", "--sites", "*apps*", ok=(4,))
    assert "mod_php still serves the PHP site(s) adminer-test, hta-test" in early.stderr, \
        early.stderr
    event = modphp.apache_root / "mods-available" / "mpm_event.load"
    event.rename(event.with_suffix(".away"))
    try:
        no_event = phphost("migrate", *base, "--to", "modphp-off", ok=(4,))
    finally:
        event.with_suffix(".away").rename(event)
    assert "mods-available/mpm_event.load: missing" in no_event.stderr, no_event.stderr
    assert "Nothing was changed" in no_event.stderr
    assert enabled(modphp) == links and leftovers(modphp) == []
    assert json.loads(Path(STATE).read_text())["stage"] == 0 if os.path.exists(STATE) else True
    other = tmp_path / "other.toml"
    other.write_text(spec.read_text().replace('server_name = "static.test"',
                                              'server_name = "elsewhere.test"'))
    wrong = phphost("migrate", str(other), "--apache-root", str(modphp.apache_root),
                    "--to", "1", ok=(4,))
    assert "static-test" in wrong.stderr and "no vhost" in wrong.stderr, wrong.stderr
    assert "Nothing was changed" in wrong.stderr
    assert leftovers(modphp) == []
    # a migration under way belongs to its spec: another spec is refused
    # (engine off: mod_php sent the PHP source, stage 1 denies it; so the URLs are given)
    volatile = ["--urls", str(urls_file(modphp, tmp_path / "urls.txt")),
                *(a for rx in IGNORE[1:] for a in ("--ignore", rx))]
    phphost("migrate", *base, "--to", "1", *volatile)
    try:
        copy = tmp_path / "copy.toml"
        copy.write_text(spec.read_text())
        refused = phphost("migrate", str(copy), "--apache-root", str(modphp.apache_root),
                          "--to", "1", ok=(4,))
        assert "stands at stage 1" in refused.stderr, refused.stderr
    finally:
        phphost("migrate", *base, "--to", "0", *volatile)
    assert leftovers(modphp) == []


@pytest.fixture(autouse=True)
def _no_migration_left() -> None:
    """A previous run must not have left a migration under way on this host."""
    if os.path.exists(STATE):
        assert json.loads(Path(STATE).read_text())["stage"] == 0, f"{STATE} is not at 0"
