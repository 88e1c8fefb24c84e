"""Known vulnerable Apache httpd and PHP versions: small tables of the first fixed
release per advisory batch. Pure.

Sources (the vendors' own advisories):
- Apache httpd: https://httpd.apache.org/security/vulnerabilities_24.html
  (2.4.60, 2.4.61, 2.4.62, 2.4.64, 2.4.65 entries).
- PHP: https://www.php.net/ChangeLog-8.php (security sections of each release) and the
  GitHub advisories of php/php-src (GHSA-...), https://www.php.net/supported-versions.php
  for the end of security support of each branch.

Distribution packages may backport fixes without changing the upstream version they
print; a finding here is a prompt to check the package changelog, not proof.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from phphost.audit.findings import Severity

Version = tuple[int, ...]


@dataclass(frozen=True)
class Advisory:
    fixed: Version                 # first release with the fix
    ids: tuple[str, ...]
    severity: Severity
    summary: str
    first_affected: Version = (0,)


APACHE: tuple[Advisory, ...] = (
    Advisory((2, 4, 60), ("CVE-2024-38476", "CVE-2024-38474", "CVE-2024-38475",
                          "CVE-2024-38477", "CVE-2024-39573", "CVE-2024-36387"), "high",
             "backend response headers can reach local handlers (SSRF, script execution); "
             "mod_rewrite substitution escaping; mod_proxy crashes"),
    Advisory((2, 4, 62), ("CVE-2024-39884", "CVE-2024-40725"), "high",
             "source code disclosure of files whose handler is set by AddType"),
    Advisory((2, 4, 64), ("CVE-2024-42516", "CVE-2024-43204", "CVE-2025-23048",
                          "CVE-2025-49812", "CVE-2025-53020"), "medium",
             "HTTP response splitting, SSRF through mod_headers, TLS 1.3 access control "
             "bypass, HTTP/2 memory exhaustion"),
    Advisory((2, 4, 65), ("CVE-2025-54090",), "medium",
             "RewriteCond expr=... always true (regression in 2.4.64)", (2, 4, 64)),
)

# one release batch: the fixed version in each branch, advisories, severity, summary
_PhpBatch = tuple[tuple[Version, ...], tuple[str, ...], Severity, str]
_PHP_BATCHES: tuple[_PhpBatch, ...] = (
    (((8, 0, 30), (8, 1, 22), (8, 2, 8)), ("CVE-2023-3823", "CVE-2023-3824"), "high",
     "XXE through libxml global state; phar directory buffer overflow"),
    (((8, 1, 28), (8, 2, 18), (8, 3, 6)), ("CVE-2024-2756", "CVE-2024-3096",
                                          "CVE-2024-1874"), "medium",
     "__Host-/__Secure- cookie bypass, password_verify NUL bypass"),
    (((8, 1, 29), (8, 2, 20), (8, 3, 8)), ("CVE-2024-4577", "CVE-2024-5458",
                                          "CVE-2024-5585"), "high",
     "CGI argument injection (Windows), filter_var URL validation bypass"),
    (((8, 1, 30), (8, 2, 24), (8, 3, 12)), ("CVE-2024-8925", "CVE-2024-8926",
                                           "CVE-2024-8927", "CVE-2024-9026"), "high",
     "multipart parsing, cgi.force_redirect bypass, PHP-FPM log manipulation"),
    (((8, 1, 31), (8, 2, 26), (8, 3, 14)), ("CVE-2024-8929", "CVE-2024-8932",
                                           "CVE-2024-11233", "CVE-2024-11234",
                                           "CVE-2024-11236"), "high",
     "mysqlnd heap leak, ldap_escape overflow, stream filter and proxy CRLF injection"),
    (((8, 1, 32), (8, 2, 28), (8, 3, 19), (8, 4, 5)),
     ("CVE-2025-1217", "CVE-2025-1219", "CVE-2025-1734", "CVE-2025-1736",
      "CVE-2025-1861"), "medium", "HTTP stream wrapper header parsing flaws"),
    (((8, 1, 33), (8, 2, 29), (8, 3, 23), (8, 4, 10)),
     ("CVE-2025-1220", "CVE-2025-1735", "CVE-2025-6491"), "medium",
     "NUL bytes in hostnames, pgsql escaping errors, SOAP crash"),
)
# (branch, advisory) for every branch of every batch
PHP: tuple[tuple[Version, Advisory], ...] = tuple(
    (fixed[:2], Advisory(fixed, ids, sev, text))
    for fixes, ids, sev, text in _PHP_BATCHES for fixed in fixes
)

# end of security support per branch (php.net/supported-versions.php)
PHP_EOL: dict[Version, date] = {
    (7, 4): date(2022, 11, 28), (8, 0): date(2023, 11, 26), (8, 1): date(2025, 12, 31),
    (8, 2): date(2026, 12, 31), (8, 3): date(2027, 12, 31), (8, 4): date(2028, 12, 31),
    (8, 5): date(2029, 12, 31),
}


def parse_version(text: str) -> Version | None:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in match.groups()) if match else None


def show(version: Version) -> str:
    return ".".join(str(x) for x in version)


def apache_advisories(version: Version) -> list[Advisory]:
    return [a for a in APACHE if a.first_affected <= version < a.fixed]


def php_advisories(version: Version) -> list[Advisory]:
    return [a for branch, a in PHP if branch == version[:2] and version < a.fixed]


def php_eol(version: Version) -> date | None:
    return PHP_EOL.get(version[:2])
