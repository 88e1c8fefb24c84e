"""phphost import's translation, on fixture trees: Apache config text parsed by audit's
reader, `apache2 -S` output as recorded from apache2 2.4, docroots made in a temp dir."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from phphost.audit.apacheconf import parse
from phphost.importer import apacheout, tree
from phphost.importer.errors import SourceError
from phphost.importer.run import render, write_out
from phphost.importer.source import ApacheSource, PhpIni
from phphost.importer.translate import Inputs, translate
from phphost.spec.loader import parse_spec

# recorded: apache2 2.4.71 -S on a config with three vhosts on two addresses
RECORDED_S = """VirtualHost configuration:
127.0.0.1:18081        is a NameVirtualHost
         default server a.test (/tmp/i9p/apache2.conf:14)
         port 18081 namevhost a.test (/tmp/i9p/apache2.conf:14)
                 alias www.a.test
         port 18081 namevhost b.test (/tmp/i9p/apache2.conf:20)
127.0.0.1:18082        c.test (/tmp/i9p/apache2.conf:9)
ServerRoot: "/tmp/i9p"
Main DocumentRoot: "/var/www/html"
PidFile: "/tmp/i9p/apache2.pid"
Define: DUMP_VHOSTS
User: name="www-data" id=33
Group: name="www-data" id=33
"""
RECORDED_INCLUDES = """Included configuration files:
  (*) /tmp/i9p/apache2.conf
    (7) /tmp/i9p/mods/php8.2.conf
"""
PHP_CONF = """<FilesMatch ".+\\.ph(?:ar|p|tml)$">
    SetHandler application/x-httpd-php
</FilesMatch>
"""
PHP = re.compile(r"\.(php[0-9]?|phtml|phar)$")
WEB = tree.WebUser(33, frozenset({33}))


def test_vhost_refs_from_recorded_listing() -> None:
    refs = apacheout.vhost_refs(RECORDED_S)
    assert [(r.name, r.port, r.line, r.aliases) for r in refs] == [
        ("a.test", 18081, 14, ("www.a.test",)), ("b.test", 18081, 20, ()),
        ("c.test", 18082, 9, ())]
    assert refs[2].addr == "127.0.0.1"
    assert apacheout.run_user(RECORDED_S) == "www-data"
    assert apacheout.included_files(RECORDED_INCLUDES) == [
        "/tmp/i9p/apache2.conf", "/tmp/i9p/mods/php8.2.conf"]


def test_envvars_takes_plain_assignments_only() -> None:
    text = ('if [ "${APACHE_CONFDIR##/etc/apache2-}" != "${APACHE_CONFDIR}" ] ; then\n'
            '\tSUFFIX="-${APACHE_CONFDIR##/etc/apache2-}"\nelse\n\tSUFFIX=\nfi\n'
            "export APACHE_RUN_USER=www-data\n"
            "export APACHE_RUN_DIR=/var/run/apache2$SUFFIX\n"
            "export APACHE_LOG_DIR=/var/log/apache2${SUFFIX}  # logs\n")
    env = apacheout.envvars(text, {"APACHE_CONFDIR": "/etc/apache2"})
    assert env == {"APACHE_RUN_USER": "www-data", "APACHE_RUN_DIR": "/var/run/apache2",
                   "APACHE_LOG_DIR": "/var/log/apache2"}
    assert apacheout.expand_config("${APACHE_LOG_DIR}/x ${NOPE}", env) == \
        "/var/log/apache2/x ${NOPE}"


def _site(base: Path, name: str, files: dict[str, str]) -> str:
    root = base / name / "htdocs"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return str(root)


def _inputs(base: Path, conf: str, refs: list[apacheout.VhostRef],
            modphp: dict[str, str] | None = None) -> Inputs:
    path = str(base / "apache2.conf")
    directives = parse(path, conf) + parse("/mods/php8.2.conf", PHP_CONF)
    source = ApacheSource(str(base), path, str(base), {}, (path,), tuple(refs),
                          frozenset({"php_module", "rewrite_module"}), "www-data",
                          tuple(directives))
    docroots = {d.args[0] for d in directives if d.name == "documentroot"}
    trees = {d: tree.scan(d, tree.WebUser(os.getuid(), frozenset({os.getgid()})), PHP)
             for d in docroots}
    fpm = {"memory_limit": "128M", "upload_max_filesize": "2M"}
    ini = modphp or dict(fpm)
    return Inputs(source, trees, PhpIni(("/m/php.ini",), ini, dict.fromkeys(ini, "/m/php.ini:3")),
                  PhpIni(("/f/php.ini",), fpm, dict.fromkeys(fpm, "/f/php.ini:9")))


def _ref(base: Path, name: str, line: int, port: int = 80, aliases: tuple[str, ...] = ()
         ) -> apacheout.VhostRef:
    return apacheout.VhostRef("*", port, name, str(base / "apache2.conf"), line, aliases)


def _spec(inp: Inputs) -> tuple[dict[str, object], list[str]]:
    t = translate(inp)
    text = render(t, inp)
    parse_spec(text, "imported.toml")            # phphost's own loader accepts it
    return tomllib.loads(text), [p.line() for p in t.problems]


def test_php_values_pools_routes_and_htaccess(tmp_path: Path) -> None:
    app = _site(tmp_path, "app", {
        "index.php": "<?php", "wiki/index.php": "<?php", "wiki/doku.php": "<?php",
        ".htaccess": "php_value upload_max_filesize 7M\nAuthType Basic\nRequire valid-user\n"
                     "RewriteRule ^x$ index.php [H=application/x-httpd-php]\n",
        "sub/.htaccess": "php_flag short_open_tag on\n", "sub/a.php": "<?php"})
    static = _site(tmp_path, "static", {"index.html": "hi"})
    conf = (f"<Directory {tmp_path}/>\n  AllowOverride All\n</Directory>\n"
            f"<VirtualHost *:80>\n  ServerName app.test\n  DocumentRoot {app}\n"
            "  php_value memory_limit 99M\n  php_admin_flag display_errors on\n"
            "  ErrorDocument 404 /nope.html\n</VirtualHost>\n"
            f"<VirtualHost *:80>\n  ServerName static.test\n  DocumentRoot {static}\n"
            "</VirtualHost>\n")
    spec, problems = _spec(_inputs(tmp_path, conf, [
        _ref(tmp_path, "app.test", 4, aliases=("www.app.test",)),
        _ref(tmp_path, "static.test", 11)]))
    site = spec["sites"]["app-test"]
    assert site["aliases"] == ["www.app.test"] and site["docroot"] == app
    assert site["routes"] == {"/wiki/": "app-test-wiki"}
    assert site["allow_override"] == ["AuthType", "Require"]
    pool = spec["pools"]["app-test"]
    assert pool["php_values"] == {"memory_limit": "99M", "upload_max_filesize": "7M"}
    assert pool["php_admin_values"] == {"display_errors": True}
    assert pool["jail"] == {"enabled": False} and pool["template"] == "modphp"
    assert spec["tenants"]["app"]["home"] == str(tmp_path / "app")
    assert spec["sites"]["static-test"]["php"] is False
    conf_file = tmp_path / "apache2.conf"
    assert any(p.startswith(f"lost    {conf_file}:9: `errordocument") for p in problems)
    rewrite = [p for p in problems if f"{app}/.htaccess:4" in p]
    assert rewrite and "500" in rewrite[0] and "handler" in rewrite[0]
    assert any(f"{app}/sub/.htaccess:1" in p and ".user.ini" in p and "short_open_tag = On" in p
               for p in problems)


def test_engine_off_denied_and_unused_php_turn_php_off(tmp_path: Path) -> None:
    off = _site(tmp_path, "off", {"index.php": "<?php"})
    deny = _site(tmp_path, "deny", {"index.php": "<?php"})
    unused = _site(tmp_path, "unused", {"index.html": ""})
    conf = (f"<VirtualHost *:80>\n ServerName off.test\n DocumentRoot {off}\n"
            " php_admin_flag engine off\n</VirtualHost>\n"
            f"<VirtualHost *:80>\n ServerName deny.test\n DocumentRoot {deny}\n"
            ' <Files "*.php">\n  Require all denied\n </Files>\n</VirtualHost>\n'
            f"<VirtualHost *:80>\n ServerName unused.test\n DocumentRoot {unused}\n"
            "</VirtualHost>\n")
    spec, _ = _spec(_inputs(tmp_path, conf, [_ref(tmp_path, "off.test", 1),
                                             _ref(tmp_path, "deny.test", 6),
                                             _ref(tmp_path, "unused.test", 13)]))
    sites = spec["sites"]
    assert [sites[n]["php"] for n in ("off-test", "deny-test", "unused-test")] == \
        [False, False, False]
    assert "pools" not in spec


def test_tls_pair_redirect_site_ports_and_ini(tmp_path: Path) -> None:
    sec = _site(tmp_path, "sec", {"index.php": "<?php"})
    conf = ("<VirtualHost *:8080>\n ServerName sec.test\n Redirect permanent / https://sec.test/\n"
            "</VirtualHost>\n"
            f"<VirtualHost *:8443>\n ServerName sec.test\n DocumentRoot {sec}\n SSLEngine on\n"
            " SSLCertificateFile /etc/ssl/sec.pem\n SSLCertificateKeyFile /etc/ssl/sec.key\n"
            "</VirtualHost>\n"
            "<VirtualHost 10.0.0.1:8080>\n ServerName old.test\n Redirect / http://sec.test/\n"
            "</VirtualHost>\n")
    inp = _inputs(tmp_path, conf, [
        _ref(tmp_path, "sec.test", 1, 8080), _ref(tmp_path, "sec.test", 5, 8443),
        apacheout.VhostRef("10.0.0.1", 8080, "old.test", str(tmp_path / "apache2.conf"), 12)],
        modphp={"memory_limit": "160M", "upload_max_filesize": "2M", "max_input_vars": "1500"})
    spec, problems = _spec(inp)
    assert spec["apache"] == {"http_port": 8080, "https_port": 8443}
    assert spec["sites"]["sec-test"]["tls"] == {
        "cert": "/etc/ssl/sec.pem", "key": "/etc/ssl/sec.key"}
    assert spec["sites"]["old-test"] == {
        "server_name": "old.test", "redirect": "http://sec.test/"}
    assert spec["templates"]["modphp"]["php_ini"] == {
        "max_input_vars": "1500", "memory_limit": "160M"}
    assert any("status 302" in p for p in problems)
    assert any("on 10.0.0.1 only (old.test)" in p for p in problems)


def test_vhost_without_docroot_is_refused(tmp_path: Path) -> None:
    conf = "<VirtualHost *:80>\n ServerName x.test\n</VirtualHost>\n"
    with pytest.raises(SourceError, match=rf"{tmp_path}/apache2.conf:1: .*no DocumentRoot"):
        translate(_inputs(tmp_path, conf, [_ref(tmp_path, "x.test", 1)]))


def test_unreadable_htaccess_is_refused(tmp_path: Path) -> None:
    root = _site(tmp_path, "x", {"index.php": "<?php", ".htaccess": "Require all granted\n"})
    os.chmod(f"{root}/.htaccess", 0o600)
    other = tree.WebUser(os.getuid() + 4242, frozenset({os.getgid() + 4242}))
    facts = tree.scan(root, other, PHP)
    assert facts.htaccess[0].text is None and "cannot read" in facts.htaccess[0].problem
    conf = f"<Directory {root}>\n AllowOverride All\n</Directory>\n" \
           f"<VirtualHost *:80>\n ServerName x.test\n DocumentRoot {root}\n</VirtualHost>\n"
    inp = _inputs(tmp_path, conf, [_ref(tmp_path, "x.test", 4)])
    inp.trees[root] = facts
    with pytest.raises(SourceError, match=rf"{root}/.htaccess: the web user"):
        translate(inp)


def test_writable_dirs_become_the_pools_writable(tmp_path: Path) -> None:
    root = _site(tmp_path, "w", {"index.php": "<?php", "data/x": "", "data/deep/y": ""})
    for path in (f"{root}", f"{root}/data/deep"):
        os.chmod(path, 0o750)  # noqa: S103 - no group write: not a data dir
    os.chmod(f"{root}/data", 0o770)  # noqa: S103 - the web user's group may write
    web = tree.WebUser(os.getuid() + 4242, frozenset({os.getgid()}))
    facts = tree.scan(root, web, PHP)
    assert facts.writable == (f"{root}/data",)


def test_write_out_refuses_existing_and_symlinks(tmp_path: Path) -> None:
    out = tmp_path / "spec.toml"
    write_out(str(out), "a = 1\n", force=False)
    with pytest.raises(SourceError, match="--force"):
        write_out(str(out), "a = 2\n", force=False)
    target = tmp_path / "victim"
    target.write_text("keep")
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    write_out(str(link), "a = 3\n", force=True)
    assert target.read_text() == "keep" and link.read_text() == "a = 3\n"
    assert not link.is_symlink()
    with pytest.raises(SourceError, match="does not exist"):
        write_out(str(tmp_path / "no" / "x.toml"), "", force=False)


def test_symlinked_docroot_html_as_php_and_server_alias(tmp_path: Path) -> None:
    real = _site(tmp_path, "real", {"index.php": "<?php", "page.html": "<?php echo 1;"})
    (tmp_path / "link").symlink_to(real)
    conf = (f"Alias /tools {tmp_path}/tools\n"
            f"<VirtualHost *:80>\n ServerName l.test\n DocumentRoot {tmp_path}/link\n"
            " AddHandler application/x-httpd-php .html\n</VirtualHost>\n")
    inp = _inputs(tmp_path, conf, [_ref(tmp_path, "l.test", 2)])
    inp.real[f"{tmp_path}/link"] = real
    inp.trees[real] = tree.scan(real, WEB, PHP)
    spec, problems = _spec(inp)
    assert spec["sites"]["l-test"]["docroot"] == real
    conf_file = tmp_path / "apache2.conf"
    assert any(f"{conf_file}:4: DocumentRoot {tmp_path}/link is reached through a symlink" in p
               for p in problems)
    assert any(f"{conf_file}:5:" in p and "*.html" in p and "PHP source" in p for p in problems)
    assert any(f"{conf_file}:1:" in p and "every vhost" in p for p in problems)


def test_relative_docroot_is_under_the_server_root(tmp_path: Path) -> None:
    _site(tmp_path, "rel", {"index.html": "x"})
    conf = "<VirtualHost *:80>\n ServerName r.test\n DocumentRoot rel/htdocs\n</VirtualHost>\n"
    spec, _ = _spec(_inputs(tmp_path, conf, [_ref(tmp_path, "r.test", 1)]))
    assert spec["sites"]["r-test"]["docroot"] == f"{tmp_path}/rel/htdocs"


def test_many_vhosts_stay_near_linear(tmp_path: Path) -> None:
    """A <Directory> per docroot in the server config: each site sees only its own."""
    conf, refs = [], []
    for i in range(300):
        root = _site(tmp_path, f"s{i}", {"index.php": "<?php"})
        conf.append(f"<Directory {root}>\n php_admin_value memory_limit {i + 1}M\n</Directory>")
        refs.append((f"s{i}.test", root))
    text = "\n".join(conf) + "\n"
    line = text.count("\n") + 1
    vhosts = []
    for i, (name, root) in enumerate(refs):
        text += f"<VirtualHost *:80>\n ServerName {name}\n DocumentRoot {root}\n</VirtualHost>\n"
        vhosts.append(_ref(tmp_path, name, line + 4 * i))
    spec, _ = _spec(_inputs(tmp_path, text, vhosts))
    pools = spec["pools"]
    assert pools["s7-test"]["php_admin_values"] == {"memory_limit": "8M"}
    assert len(pools) == 300


def test_acl_decides_what_the_web_user_may_read() -> None:
    """The demo host grants www-data read through a named ACL entry on mode 0640 files."""
    st = os.stat_result((0o100640, 0, 0, 1, 1004, 1004, 0, 0, 0, 0))
    web = tree.WebUser(33, frozenset({33}))
    assert not tree.allows(st, web, 4)
    base = [(0x01, 6, 0xFFFFFFFF), (0x04, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    assert tree.allows(st, web, 4, [*base, (0x02, 5, 33), (0x10, 5, 0xFFFFFFFF)])
    assert not tree.allows(st, web, 4, [*base, (0x02, 5, 33), (0x10, 0, 0xFFFFFFFF)])  # mask
    assert not tree.allows(st, web, 2, [*base, (0x08, 5, 33), (0x10, 7, 0xFFFFFFFF)])
    assert tree.allows(st, web, 2, [*base, (0x08, 7, 33), (0x10, 7, 0xFFFFFFFF)])


def test_data_dirs_with_php_and_twin_routes(tmp_path: Path) -> None:
    root = _site(tmp_path, "t", {
        "index.php": "<?php", "a/wiki/index.php": "<?php", "a/wiki/doku.php": "<?php",
        "b/wiki/index.php": "<?php", "b/wiki/doku.php": "<?php",
        "uploads/x.jpg": "", "plugins/p.php": "<?php"})
    os.chmod(root, 0o750)  # noqa: S103 - no group write: not a data dir
    for sub in ("uploads", "plugins"):
        os.chmod(f"{root}/{sub}", 0o770)  # noqa: S103 - the web user's group may write
    conf = f"<VirtualHost *:80>\n ServerName t.test\n DocumentRoot {root}\n</VirtualHost>\n"
    inp = _inputs(tmp_path, conf, [_ref(tmp_path, "t.test", 1)])
    inp.trees[root] = tree.scan(root, tree.WebUser(os.getuid() + 4242,
                                                   frozenset({os.getgid()})), PHP)
    spec, problems = _spec(inp)
    routes = spec["sites"]["t-test"]["routes"]
    assert sorted(routes) == ["/a/wiki/", "/b/wiki/"]
    assert len(set(routes.values())) == 2
    assert spec["pools"]["t-test"]["writable"] == [f"{root}/uploads"]
    assert any(f"{root}/plugins:" in p and "PHP runs from it" in p for p in problems)


def test_unreadable_htaccess_apache_never_reads_is_a_note(tmp_path: Path) -> None:
    root = _site(tmp_path, "n", {"index.html": "x", ".htaccess": "Require all granted\n"})
    conf = f"<VirtualHost *:80>\n ServerName n.test\n DocumentRoot {root}\n</VirtualHost>\n"
    inp = _inputs(tmp_path, conf, [_ref(tmp_path, "n.test", 1)])
    inp.trees[root] = tree.TreeFacts(root, htaccess=(tree.Htaccess(f"{root}/.htaccess", None,
                                                                   "unreadable"),))
    _, problems = _spec(inp)
    assert any(f"{root}/.htaccess" in p and "AllowOverride None" in p for p in problems)


@pytest.mark.parametrize("files", [
    {"index.php": "<?php", ".htaccess": "Bogus\x1b]0;pwned\x07 x\x9b2J\n"},
    {"index.php": "<?php", "up\x7fload/.htaccess": "Bogus y\n"},
    {"index.php": "<?php", "a\x1b[2J/x.php": "<?php"},
])
def test_a_tenants_names_and_htaccess_text_stay_comments(tmp_path: Path,
                                                         files: dict[str, str]) -> None:
    """Attacker review: import runs over tenant-written docroots. A control character in
    an .htaccess line or a file name ended up raw in a TOML comment, so one tenant made
    import fail for the whole host ("invalid TOML"), and the summary printed the escape
    sequence to the admin's terminal. Now \\xNN; the spec still loads."""
    from phphost.cli.importer import ImportReport
    from phphost.importer.run import ImportResult

    app = _site(tmp_path, "app", files)
    conf = (f"<Directory {tmp_path}/>\n  AllowOverride All\n</Directory>\n"
            f"<VirtualHost *:80>\n  ServerName app.test\n  DocumentRoot {app}\n</VirtualHost>\n")
    inp = _inputs(tmp_path, conf, [_ref(tmp_path, "app.test", 4)])
    t = translate(inp)
    text = render(t, inp)
    model = parse_spec(text, "imported.toml")
    assert any("\\x1b" in line or "\\x7f" in line for line in text.splitlines())
    summary = ImportReport(ImportResult(text, model, t.problems, "/", "/a.conf", {}),
                           "/x.toml").summary()
    for out in (text, summary):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)


def test_a_name_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    """A path with a byte that is not UTF-8 (a tenant's symlinked docroot, a writable
    dir) cannot be written as TOML: a clear error, not a traceback when writing."""
    from phphost.importer.tomlout import value

    assert value("a\x7fb\x85") == '"a\\u007fb\\u0085"'
    assert tomllib.loads("k = " + value("a\x7fb")) == {"k": "a\x7fb"}
    with pytest.raises(SourceError, match=r"/srv/x\\xffy: not valid UTF-8"):
        value(os.fsdecode(b"/srv/x\xffy"))


def test_a_tenants_docroot_symlink_cannot_lead_into_another_home(tmp_path: Path) -> None:
    """Attacker review: import resolved every DocumentRoot symlink. Tenant acme made its
    htdocs a link to a directory in beta's home (on a mod_php host, a 0777 uploads dir
    holding acme's code): the spec gave acme's site that directory, and homes() merged
    it into tenant beta, so acme's code would run as a pool of beta's tenant."""
    from phphost.importer.run import real_docroot, untrusted_link

    beta = Path(_site(tmp_path, "beta", {"index.php": "<?php", "up/evil/index.php": "<?php"}))
    (tmp_path / "acme").mkdir()
    link = tmp_path / "acme" / "htdocs"
    link.symlink_to(beta / "up" / "evil")
    os.lchown(link, 4242, 4242)                     # the tenant's own link
    assert untrusted_link(str(link)) == str(link)
    with pytest.raises(SourceError, match=rf"{link}, which a user other than root can "
                                          rf"change, and it leads to {beta}/up/evil"):
        real_docroot(str(link))
    # a deploy tool's link inside the tenant's own directory is resolved as before
    release = tmp_path / "acme" / "releases" / "7" / "public"
    release.mkdir(parents=True)
    current = tmp_path / "acme" / "current"
    current.symlink_to(tmp_path / "acme" / "releases" / "7")
    os.lchown(current, 4242, 4242)
    assert real_docroot(f"{current}/public") == str(release)
    # root's own link in a directory only root can write: followed anywhere
    os.chmod(tmp_path, 0o755)  # noqa: S103 - root-only writable, as trusted() wants
    (tmp_path / "rootlink").symlink_to(beta)
    assert untrusted_link(str(tmp_path / "rootlink")) is None
    assert real_docroot(str(tmp_path / "rootlink")) == str(beta)


def test_an_htaccess_swapped_for_a_fifo_after_the_lstat_is_not_read(tmp_path: Path) -> None:
    """Attacker review: a tenant swapping its .htaccess between a file and a FIFO (with a
    writer holding it open, no data) made import's read return None: a traceback."""
    (tmp_path / "f").write_text("Require all granted\n")
    st = os.stat(tmp_path / "f")                    # what the walk saw
    os.mkfifo(tmp_path / ".htaccess")
    writer = os.open(tmp_path / ".htaccess", os.O_RDWR)   # keeps a writer, sends nothing
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        got = tree._read_htaccess(str(tmp_path / ".htaccess"), ".htaccess", dfd, st, WEB)
    finally:
        os.close(dfd)
        os.close(writer)
    assert got.text is None and got.problem == "not a regular file"


def test_an_htaccess_value_naming_an_environment_variable_is_not_carried(tmp_path: Path) -> None:
    """Attacker review: mod_php took `php_value x ${HOME}` literally; carried into the
    FPM pool file, the root master would put its own environment there."""
    app = _site(tmp_path, "app", {"index.php": "<?php",
                                  ".htaccess": "php_value highlight.html ${SECRET}\n"})
    conf = (f"<Directory {tmp_path}/>\n  AllowOverride All\n</Directory>\n"
            f"<VirtualHost *:80>\n  ServerName app.test\n  DocumentRoot {app}\n</VirtualHost>\n")
    spec, problems = _spec(_inputs(tmp_path, conf, [_ref(tmp_path, "app.test", 4)]))
    assert "php_values" not in spec["pools"]["app-test"]
    assert any("'${'" in p and "root's" in p for p in problems)
