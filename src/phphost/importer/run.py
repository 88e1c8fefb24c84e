"""`phphost import` end to end: read the host, translate, write the spec text, and
check that phphost's own loader accepts it."""

from __future__ import annotations

import grp
import os
import posixpath
import pwd
import re
import stat
import tempfile
from dataclasses import dataclass

from phphost import safefs
from phphost.audit import apacheconf
from phphost.errors import PhphostError, SpecError
from phphost.importer import source, tree
from phphost.importer.errors import SourceError
from phphost.importer.problems import Problem
from phphost.importer.tenants import SHARED_PARENTS
from phphost.importer.tomlout import comment, table
from phphost.importer.translate import Inputs, Translation, translate
from phphost.importer.vhosts import drafts
from phphost.spec.loader import parse_spec
from phphost.spec.model import Model
from phphost.spec.validate import is_inside

SECTION_ORDER = ("templates", "tenants", "pools", "sites")
PHP_NAMES = r"\.(php[0-9]?|phtml|phar)$"


@dataclass(frozen=True)
class ImportResult:
    spec_text: str
    model: Model
    problems: list[Problem]
    root: str
    config: str
    origins: dict[str, list[str]]      # site -> file:line of the vhosts it came from


def account_exists(name: str) -> bool:
    for lookup in (pwd.getpwnam, grp.getgrnam):
        try:
            lookup(name)
            return True
        except KeyError:
            continue
    return False


def web_user(name: str) -> tree.WebUser:
    try:
        pw = pwd.getpwnam(name)
    except KeyError as err:
        raise SourceError(f"Apache's User {name!r} does not exist on this host. Fix the "
                          "User directive (or envvars), then run import again") from err
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}
    return tree.WebUser(pw.pw_uid, frozenset(gids))


MAX_LINKS = 40


def untrusted_link(path: str) -> str | None:
    """The first symlink met on the way to path (resolved as the kernel does) that a
    user other than root made or can replace: not root's, or in a directory someone
    else can write. None when there is none (or the path does not exist)."""
    todo = [p for p in path.split("/") if p and p != "."]
    here, links = "/", 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            here = posixpath.dirname(here)
            continue
        step = posixpath.join(here, part)
        try:
            st = os.lstat(step)
        except OSError:
            return None
        if not stat.S_ISLNK(st.st_mode):
            here = step
            continue
        links += 1
        if st.st_uid != 0 or not safefs.trusted(os.stat(here)) or links > MAX_LINKS:
            return step
        target = os.readlink(step)
        here = "/" if target.startswith("/") else here
        todo = [p for p in target.split("/") if p and p != "."] + todo
    return None


def real_docroot(docroot: str) -> str:
    """The docroot's path without symlinks. Through a symlink a tenant made (a deploy
    tool's `current`), the real path must stay inside the deepest directory above the
    link reached without one: else SourceError, for the link could point at another
    tenant's files and make them this site's (and, as a home, merge the two)."""
    real = os.path.realpath(docroot)
    link = untrusted_link(docroot)
    if link is None:
        return real
    anchor = os.path.normpath(docroot)
    while anchor != "/" and untrusted_link(anchor) is not None:
        anchor = posixpath.dirname(anchor)
    if anchor not in SHARED_PARENTS and is_inside(real, os.path.realpath(anchor)):
        return real
    raise SourceError(
        f"DocumentRoot {docroot} is reached through the symlink {link}, which a user "
        f"other than root can change, and it leads to {real}, outside {anchor}: a tenant "
        "could point it at another tenant's files. If that is where the site lives, put "
        f"{real} in the Apache config; else remove the link. Nothing was written")


def gather(root: str) -> Inputs:
    apache = source.read_apache(root)
    user = web_user(apache.user)
    pattern = re.compile(PHP_NAMES)
    access = apacheconf.global_value(list(apache.directives), "accessfilename")
    trees: dict[str, tree.TreeFacts] = {}
    real: dict[str, str] = {}
    for draft in drafts(apache):
        for v in draft.vhosts:
            if v.docroot is None or v.docroot in real:
                continue
            real[v.docroot] = real_docroot(v.docroot)
            if real[v.docroot] not in trees:
                trees[real[v.docroot]] = tree.scan(real[v.docroot], user, pattern,
                                                   access or ".htaccess")
    version = source.php_version(apache)
    ini_dir = source.modphp_ini_dir(apache, version)
    modphp = source.read_ini(f"{ini_dir}/php.ini", f"/etc/php/{version}/apache2/conf.d")
    fpm = source.read_ini(f"/etc/php/{version}/fpm/php.ini", f"/etc/php/{version}/fpm/conf.d")
    return Inputs(apache, trees, modphp, fpm, account_exists, real)


def render(t: Translation, inp: Inputs) -> str:
    lines = comment(
        f"phphost spec written by `phphost import` from {inp.apache.config}\n"
        f"(ServerRoot {inp.apache.server_root}; modules: "
        f"{'mod_php' if inp.apache.php_loaded else 'no mod_php'}).\n"
        f"{len(t.problems)} things import could not carry over or the admin must decide\n"
        "are listed at the end and by `phphost import` itself (docs/migrate.md).")
    lines += ["", *table("apache", dict(t.apache))]
    for section in SECTION_ORDER:
        for name, body in t.sections.get(section, {}).items():
            lines += ["", *table(f"{section}.{name}", body, t.notes.get(f"{section}.{name}"))]
    if t.problems:
        lines += ["", *comment("--- what import could not carry over, or what to decide ---")]
        lines += [c for p in t.problems for c in comment(p.line())]
    return "\n".join(lines) + "\n"


def import_host(root: str, out_name: str = "imported.toml") -> ImportResult:
    inp = gather(root)
    t = translate(inp)
    text = render(t, inp)
    try:
        model = parse_spec(text, out_name)
    except SpecError as err:
        raise PhphostError(f"import produced a spec phphost cannot load ({err}); this is "
                           "a bug in phphost import, nothing was written") from err
    return ImportResult(text, model, t.problems, inp.apache.root, inp.apache.config,
                        t.origins)


def write_out(path: str, text: str, force: bool) -> None:
    """Write text to path atomically: a new file beside it, then rename. Never follows
    a symlink at path and never creates directories."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise SourceError(f"{path}: the directory {directory} does not exist; create it "
                          "first (import writes nothing else)")
    if os.path.lexists(path) and not force:
        raise SourceError(f"{path} exists; pass --force to replace it, or choose another "
                          "--out (nothing was written)")
    fd, tmp = tempfile.mkstemp(prefix=".phphost-import-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
