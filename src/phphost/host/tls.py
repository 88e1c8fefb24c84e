"""Check a site's TLS material before Apache sees it. `apache2ctl configtest`
only checks that the files exist; a file that is not a certificate or key, or a
key that does not match, is found at (graceful) restart, and then apache2 exits
and every site is down."""

from __future__ import annotations

import os

from phphost.errors import ValidationFailed
from phphost.host.runner import run
from phphost.spec.model import Model, Site


def _fail(site: Site, key: str, problem: str) -> ValidationFailed:
    return ValidationFailed(
        f"sites.{site.name}.tls.{key}: {problem}. Point it at a PEM file apache2 can load "
        "(nothing was changed)"
    )


def _openssl(argv: list[str]) -> str | None:
    proc = run(["openssl", *argv], check=False)
    return proc.stdout if proc.returncode == 0 else None


def check_site_tls(site: Site) -> None:
    if site.tls is None:
        return
    for key, path in (("cert", site.tls.cert), ("key", site.tls.key), ("chain", site.tls.chain)):
        if path is not None and not os.path.isfile(path):
            raise _fail(site, key, f"{path} does not exist")
    cert_pub = _openssl(["x509", "-noout", "-pubkey", "-in", site.tls.cert])
    if cert_pub is None:
        raise _fail(site, "cert", f"{site.tls.cert} is not a PEM certificate")
    key_pub = _openssl(["pkey", "-pubout", "-in", site.tls.key])
    if key_pub is None:
        raise _fail(site, "key", f"{site.tls.key} is not a PEM private key (or is encrypted)")
    if key_pub.strip() != cert_pub.strip():
        raise _fail(site, "key", f"{site.tls.key} does not match the certificate {site.tls.cert}")


def check_tls(model: Model) -> None:
    for site in model.sites:
        check_site_tls(site)
