"""`.htaccess` lines under phphost. Pure.

A phphost site reads `.htaccess` only with `allow_override`, and then only the safe
categories and directives of spec/sites.py. Every other line of an `.htaccess` that is
read makes Apache answer 500 ("not allowed here", or "Invalid command" for mod_php's
php_* once mod_php is gone). So: the lines phphost allows decide the site's
`allow_override`; every other line is either ignored (no allow_override) or a 500 the
admin must remove first."""

from __future__ import annotations

from dataclasses import dataclass

from phphost.audit.apacheconf import Directive
from phphost.importer.php import PHP_DIRECTIVES, is_php_handler
from phphost.importer.scope import in_modphp_only
from phphost.spec.sites import OVERRIDE_DIRECTIVES

# directive (lowercase) -> the AllowOverride category that permits it (httpd docs)
CATEGORY = {
    **dict.fromkeys((
        "authtype", "authname", "authuserfile", "authgroupfile", "authbasicprovider",
        "authbasicauthoritative", "authdigestprovider", "authdigestdomain", "authmerging",
        "require", "satisfy", "<requireall", "<requireany", "<requirenone",
        "authzgroupfileauthoritative", "authdbmuserfile", "authdbmgroupfile",
    ), "AuthConfig"),
    **dict.fromkeys((
        "directoryindex", "fallbackresource", "indexoptions", "indexignore", "addicon",
        "addiconbytype", "addiconbyencoding", "defaulticon", "adddescription", "headername",
        "readmename", "indexorderdefault", "indexstylesheet", "directoryslash",
        "expiresactive", "expiresbytype", "expiresdefault",
    ), "Indexes"),
    **dict.fromkeys(("allow", "deny", "order"), "Limit"),
}
SINGLE = {d.lower(): d for d in OVERRIDE_DIRECTIVES}
# sections that any .htaccess may open; their contents are judged line by line
FREE_SECTIONS = ("<files", "<filesmatch", "<ifmodule", "<ifdefine", "<ifversion", "<if",
                 "<elseif", "<else", "<limit", "<limitexcept")


@dataclass(frozen=True)
class Verdict:
    allow: str           # the allow_override entry that permits it, "" if none
    php: bool            # a mod_php line (php_* or a PHP handler)
    dead: bool           # inside <IfModule mod_php.c>: never read once mod_php is gone


def judge(d: Directive) -> Verdict:
    dead = in_modphp_only(d)
    php = d.name in PHP_DIRECTIVES or is_php_handler(d)
    if d.name in FREE_SECTIONS:
        return Verdict("-", php, dead)
    if d.name in SINGLE:
        return Verdict(SINGLE[d.name], php, dead)
    return Verdict(CATEGORY.get(d.name, ""), php, dead)


def needed_overrides(lines: list[Directive]) -> list[str]:
    """The allow_override entries the allowed lines need (sorted, no duplicates)."""
    out = {v.allow for d in lines if (v := judge(d)).allow not in ("", "-") and not v.dead}
    return sorted(out)


def rewrite_depends_on_handler(d: Directive) -> bool:
    """A RewriteRule whose [H=]/[T=] flag names mod_php's type, or a RewriteCond on
    %{HANDLER}: it means something else (or nothing) without mod_php."""
    text = " ".join(d.args).lower()
    if d.name == "rewritecond":
        return "%{handler}" in text
    return d.name == "rewriterule" and ("h=application/x-httpd-php" in text
                                        or "t=application/x-httpd-php" in text
                                        or "handler=application/x-httpd-php" in text
                                        or "type=application/x-httpd-php" in text)
