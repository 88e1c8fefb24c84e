"""The audit's rules: pure functions (model, facts) -> findings, one per rule id,
and the registry that runs them. Rules over FPM, Apache, capacity and files live in
the rules_* modules; the version rules are here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from phphost.audit import (
    rules_accounts,
    rules_apache,
    rules_capacity,
    rules_fpm,
    rules_fs,
    rules_network,
    rules_writable,
    versions,
)
from phphost.audit.facts import AuditFacts
from phphost.audit.findings import Finding, sort_findings
from phphost.spec.model import Model

Rule = Callable[[Model, AuditFacts], list[Finding]]
EOL_WARNING = timedelta(days=90)


def apache_version(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA014: Apache httpd with known unfixed advisories (2.4.60 for CVE-2024-38476)."""
    del model
    version = versions.parse_version(facts.apache_version)
    if version is None:
        return [Finding("PHA014", "info", "apache2 -v", "cannot read Apache's version",
                        "check it by hand: Apache >= 2.4.60 is required")]
    return [Finding("PHA014", a.severity, "apache2 -v",
                    f"Apache {versions.show(version)} < {versions.show(a.fixed)}: "
                    f"{', '.join(a.ids)} ({a.summary})",
                    f"upgrade to >= {versions.show(a.fixed)} (distributions may backport: "
                    "check the package changelog)")
            for a in versions.apache_advisories(version)]


def php_version(model: Model, facts: AuditFacts) -> list[Finding]:
    """PHA015: PHP with known unfixed advisories, or a branch past (or near) its end
    of security support."""
    del model
    out = []
    for binary, text in sorted(facts.php_versions.items()):
        version = versions.parse_version(text)
        if version is None:
            out.append(Finding("PHA015", "info", binary, "cannot read PHP's version",
                               "check it by hand"))
            continue
        out += _php_advisories(binary, version) + _php_eol(binary, version, facts)
    return out


def _php_advisories(binary: str, version: versions.Version) -> list[Finding]:
    return [Finding("PHA015", a.severity, binary,
                    f"PHP {versions.show(version)} < {versions.show(a.fixed)}: "
                    f"{', '.join(a.ids)} ({a.summary})",
                    f"upgrade to >= {versions.show(a.fixed)} (distributions may backport: "
                    "check the package changelog)")
            for a in versions.php_advisories(version)]


def _php_eol(binary: str, version: versions.Version, facts: AuditFacts) -> list[Finding]:
    eol = versions.php_eol(version)
    branch = versions.show(version[:2])
    if eol is None:
        return [Finding("PHA015", "info", binary, f"PHP {branch} is not in phphost's table",
                        "check php.net/supported-versions.php")]
    if eol < facts.today:
        return [Finding("PHA015", "high", binary,
                        f"PHP {branch} has had no security fixes since {eol.isoformat()}",
                        "move the pools to a supported PHP branch")]
    if eol - facts.today <= EOL_WARNING:
        return [Finding("PHA015", "info", binary,
                        f"PHP {branch} security support ends {eol.isoformat()}",
                        "plan the move to a newer branch")]
    return []


RULES: dict[str, Rule] = {
    "PHA001": rules_fpm.socket_permissions,
    "PHA002": rules_fpm.tcp_listeners,
    "PHA003": rules_fs.world_writable,
    "PHA004": rules_fs.world_readable,
    "PHA005": rules_fs.group_writable_code,
    "PHA006": rules_fs.jail_invariants,
    "PHA007": rules_fs.jail_setid,
    "PHA008": rules_apache.allow_override,
    "PHA009": rules_apache.php_off_sites,
    "PHA010": rules_fpm.shared_opcache,
    "PHA011": rules_apache.status_exposure,
    "PHA012": rules_capacity.connection_reuse,
    "PHA013": rules_capacity.worker_sizing,
    "PHA014": apache_version,
    "PHA015": php_version,
    "PHA016": rules_apache.php_handlers,
    "PHA017": rules_fs.rendered_drift,
    "PHA018": rules_fpm.supervision,
    "PHA019": rules_fpm.pool_identity,
    "PHA020": rules_apache.php_source_names,
    "PHA021": rules_accounts.adopted_accounts,
    "PHA022": rules_accounts.foreign_writable_dirs,
    "PHA023": rules_apache.htaccess_file_reads,
    "PHA024": rules_fs.symlinked_paths,
    "PHA025": rules_network.network_policy,
    "PHA026": rules_writable.served_writable,
    "PHA027": rules_writable.htaccess_lines,
}


def run_rules(model: Model, facts: AuditFacts, only: tuple[str, ...] = ()) -> list[Finding]:
    """Every rule's findings (or only those of `only`), most severe first."""
    found: list[Finding] = []
    for rule_id, rule in RULES.items():
        if not only or rule_id in only:
            found += rule(model, facts)
    return sort_findings(found)


def describe() -> list[tuple[str, str]]:
    """(rule id, its docstring's first paragraph without the id) for --list."""
    out = []
    for rid, rule in RULES.items():
        text = " ".join((rule.__doc__ or "").split("\n\n")[0].split())
        out.append((rid, text.removeprefix(f"{rid}:").strip()))
    return out
