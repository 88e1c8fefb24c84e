"""Check a site's TLS material before Apache sees it. `apache2ctl configtest`
only checks that the files exist; a file that is not a certificate or key, or a
key that does not match, is found at (graceful) restart, and then apache2 exits
and every site is down."""

from __future__ import annotations

from phphost import safefs
from phphost.errors import ValidationFailed
from phphost.host.runner import run
from phphost.spec.model import Model, Site


def _fail(site: Site, key: str, problem: str) -> ValidationFailed:
    return ValidationFailed(
        f"sites.{site.name}.tls.{key}: {problem}. Point it at a PEM file apache2 can load "
        "(nothing was changed)"
    )


def _openssl(argv: list[str], pem: bytes) -> str | None:
    """openssl reads the PEM on stdin: root never opens a tenant's path by name."""
    proc = run(["openssl", *argv], check=False, input_text=pem.decode("latin-1"))
    return proc.stdout if proc.returncode == 0 else None


def _read(site: Site, key: str, path: str) -> bytes:
    """A TLS file, opened without following a symlink in a place another user can
    write (a tenant could point its key at another tenant's)."""
    try:
        return safefs.read_file(path)
    except FileNotFoundError:
        raise _fail(site, key, f"{path} does not exist") from None
    except safefs.UnsafePath as e:
        raise _fail(site, key, f"{path}: {e.problem}") from None


def check_site_tls(site: Site) -> None:
    if site.tls is None:
        return
    pems = {key: _read(site, key, path) for key, path in
            (("cert", site.tls.cert), ("key", site.tls.key), ("chain", site.tls.chain))
            if path is not None}
    cert_pub = _openssl(["x509", "-noout", "-pubkey"], pems["cert"])
    if cert_pub is None:
        raise _fail(site, "cert", f"{site.tls.cert} is not a PEM certificate")
    key_pub = _openssl(["pkey", "-pubout"], pems["key"])
    if key_pub is None:
        raise _fail(site, "key", f"{site.tls.key} is not a PEM private key (or is encrypted)")
    if key_pub.strip() != cert_pub.strip():
        raise _fail(site, "key", f"{site.tls.key} does not match the certificate {site.tls.cert}")


def check_tls(model: Model) -> None:
    for site in model.sites:
        check_site_tls(site)
