"""`phphost import` end to end: read the host, translate, write the spec text, and
check that phphost's own loader accepts it."""

from __future__ import annotations

import grp
import os
import pwd
import re
import tempfile
from dataclasses import dataclass

from phphost.audit import apacheconf
from phphost.errors import PhphostError, SpecError
from phphost.importer import source, tree
from phphost.importer.errors import SourceError
from phphost.importer.problems import Problem
from phphost.importer.tomlout import comment, table
from phphost.importer.translate import Inputs, Translation, translate
from phphost.importer.vhosts import drafts
from phphost.spec.loader import parse_spec
from phphost.spec.model import Model

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
            real[v.docroot] = os.path.realpath(v.docroot)
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
