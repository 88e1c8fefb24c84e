"""Stage 4's module links, the Debian way. It changes nothing: it is given what mods-enabled/ and
mods-available/ hold and what Apache loads, and says which links to take out
(mod_php's and the old MPM's, each with the target it had) and which to make
(mpm_event, and mod_actions for the no-source guard of render.py). Going back is
the exact inverse: the links taken out come back with their own targets, and only
the links migrate made are removed.

A module loaded any other way than by a link in mods-enabled/ (a LoadModule line in
apache2.conf, a regular file in mods-enabled/) is refused with its file and line:
migrate never rewrites the admin's files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from phphost.audit.apacheconf import Directive
from phphost.errors import PlanError
from phphost.importer.htaccess import CATEGORY, judge
from phphost.importer.php import PHP_DIRECTIVES, is_php_handler, non_php_names
from phphost.importer.scope import in_modphp_only, live
from phphost.importer.tomlout import printable

PHP_MODULES = ("php_module", "php7_module", "php5_module")
OLD_MPMS = ("mpm_prefork_module", "mpm_worker_module")
EVENT = "mpm_event"
ACTIONS = "actions"
# mod_php's own directives: "Invalid command" for apache2 once mod_php is not loaded
PHP_ONLY = ("php_value", "php_flag", "php_admin_value", "php_admin_flag", "phpinidir")


@dataclass(frozen=True)
class LinkPlan:
    remove: tuple[tuple[str, str], ...] = ()   # (link, the target it has) to take out
    make: tuple[tuple[str, str], ...] = ()     # (link, target) to create

    def inverse(self) -> LinkPlan:
        return LinkPlan(remove=self.make, make=self.remove)


@dataclass(frozen=True)
class Mods:
    """What the old ServerRoot's module directories hold."""

    root: str
    enabled: Mapping[str, str | None]   # name in mods-enabled -> link target (None: a file)
    available: frozenset[str]           # names in mods-available

    def link(self, name: str) -> str:
        return os.path.join(self.root, "mods-enabled", name)


def loaders(directives: Iterable[Directive]) -> dict[str, Directive]:
    """Module identifier -> the LoadModule line that loads it."""
    return {d.args[0]: d for d in directives if d.name == "loadmodule" and len(d.args) >= 2}


def modphp_off(mods: Mods, modules: frozenset[str], loaded_by: Mapping[str, Directive]
               ) -> LinkPlan:
    """The links that turn mod_php and prefork off and event (+ mod_actions) on; a
    PlanError naming every obstacle when that cannot be done by links alone."""
    problems: list[str] = []
    remove: list[tuple[str, str]] = []
    for module in (m for m in (*PHP_MODULES, *OLD_MPMS) if m in modules):
        name = _enabled_name(mods, module, loaded_by.get(module), problems)
        for entry in (f"{name}.load", f"{name}.conf") if name else ():
            target = mods.enabled.get(entry, "")
            if target is None:
                problems.append(f"{mods.link(entry)} is a file, not a link: migrate takes "
                                "modules out only by removing links (as a2dismod does). Make "
                                f"it a link to ../mods-available/{entry}")
            elif target:
                remove.append((mods.link(entry), target))
    make = []
    for name, module in ((EVENT, "mpm_event_module"), (ACTIONS, "actions_module")):
        if module in modules:
            continue
        if f"{name}.load" not in mods.available:
            problems.append(f"{mods.root}/mods-available/{name}.load: missing. Stage 4 needs "
                            f"mod_{name} (Debian's apache2 package ships it)")
            continue
        make += [(mods.link(entry), f"../mods-available/{entry}")
                 for entry in (f"{name}.load", f"{name}.conf")
                 if entry in mods.available and entry not in mods.enabled]
    if problems:
        raise PlanError("stage 4 (modphp-off) cannot switch the modules by links:\n  "
                        + "\n  ".join(problems) + "\nNothing was changed")
    return LinkPlan(tuple(remove), tuple(make))


def _enabled_name(mods: Mods, module: str, line: Directive | None,
                  problems: list[str]) -> str | None:
    """The mods-enabled name (php8.2 for mods-enabled/php8.2.load) that loads module."""
    if line is None:
        problems.append(f"Apache loads {module} but no LoadModule line for it was found "
                        "(built in?): migrate cannot turn it off")
        return None
    where = os.path.realpath(os.path.dirname(line.file))
    if where != os.path.realpath(os.path.join(mods.root, "mods-enabled")) or \
            not line.file.endswith(".load"):
        problems.append(f"{line.where}: {module} is loaded here, not by a link in "
                        f"{mods.root}/mods-enabled/. migrate switches modules only the "
                        "Debian way: move the line to mods-available/NAME.load and enable it "
                        "with a2enmod NAME, then run migrate again")
        return None
    return os.path.basename(line.file)[:-len(".load")]


def php_only_lines(directives: Iterable[Directive], modules: frozenset[str],
                   skip_files: Iterable[str], defines: frozenset[str] = frozenset()
                   ) -> list[str]:
    """mod_php's directives Apache reads today outside an <IfModule php...> and outside
    the files stage 4 takes out: apache2 refuses every one of them once mod_php is gone."""
    skipped = {os.path.normpath(f) for f in skip_files}
    return [printable(f"{d.where}: {d.name} {' '.join(d.args)}".rstrip()) for d in directives
            if d.name in PHP_ONLY and live(d, modules, defines) and not in_modphp_only(d)
            and os.path.normpath(d.file) not in skipped]


def htaccess_lines(directives: Iterable[Directive]) -> list[str]:
    """The lines of one `.htaccess` Apache reads that change meaning once mod_php is
    gone: php_* (an unknown directive: 500 for the whole directory) and handler lines
    that give PHP names other than .php (403 under stage 4's guard, where mod_php ran
    them). Those inside <IfModule php...> are skipped: Apache stops reading them.
    The text is the tenants': control characters are written \\xNN."""
    out = []
    for d in directives:
        if in_modphp_only(d):
            continue
        if d.name in PHP_DIRECTIVES:
            out.append(printable(f"{d.where}: {d.name} {' '.join(d.args)}: a 500 without "
                                 "mod_php"))
        elif is_php_handler(d) and (names := non_php_names(d)):
            out.append(printable(f"{d.where}: {d.name} {' '.join(d.args)}: "
                                 f"{', '.join(names)} would answer 403 without mod_php (FPM "
                                 "runs only .php); rename the PHP ones to .php (a "
                                 "RewriteRule can keep their URLs)"))
    return out


def phphost_refuses(directives: Iterable[Directive], allowed: Iterable[str],
                    modules: frozenset[str]) -> list[str]:
    """The lines of one `.htaccess` that phphost's rendering of a site with these
    `allow_override` entries would refuse: Apache answers 500 for the directory ("not
    allowed here"). Sections any .htaccess may open are fine, their contents judged
    line by line; lines inside an <IfModule> that is false with these modules loaded
    (mod_php's, `!mod_authz_core.c`) are never read."""
    ok = {a.lower() for a in allowed}
    out = []
    for d in directives:
        verdict = judge(d)
        if verdict.dead or not live(d, modules) or verdict.allow == "-" or \
                verdict.allow.lower() in ok or CATEGORY.get(d.name, "").lower() in ok:
            continue
        out.append(printable(f"{d.where}: {d.name} {' '.join(d.args)}"))
    return out
