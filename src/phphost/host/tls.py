"""Check a site's TLS material before Apache sees it. `apache2ctl configtest`
only checks that the files exist; a file that is not a certificate or key, or a
key that does not match, is found at (graceful) restart, and then apache2 exits
and every site is down."""

from __future__ import annotations

from phphost import safefs
from phphost.errors import ValidationFailed
from phphost.runner import run


def _fail(site: str, key: str, problem: str) -> ValidationFailed:
    return ValidationFailed(
        f"sites.{site}.tls.{key}: {problem}. Point it at a PEM file apache2 can load "
        "(nothing was changed)"
    )


def _openssl(argv: list[str], pem: bytes) -> str | None:
    """openssl reads the PEM on stdin: root never opens a tenant's path by name."""
    proc = run(["openssl", *argv], check=False, input_text=pem.decode("latin-1"))
    return proc.stdout if proc.returncode == 0 else None


def _read(site: str, key: str, path: str) -> bytes:
    """A TLS file: root's own, in directories only root can write, opened without
    following a symlink. apache2 (as root) opens it by name again at every reload, so
    a tenant who could swap it could point it at another tenant's key or at garbage
    that makes apache2 exit."""
    try:
        return safefs.read_file(path, root_only=True)
    except FileNotFoundError:
        raise _fail(site, key, f"{path} does not exist") from None
    except safefs.UnsafePath as e:
        raise _fail(site, key, f"{path}: {e.problem}") from None


def check_files(site: str, cert: str, key: str, chain: str | None) -> None:
    """The certificate and key parse and match; the chain exists and is readable."""
    pems = {name: _read(site, name, path) for name, path in
            (("cert", cert), ("key", key), ("chain", chain)) if path is not None}
    cert_pub = _openssl(["x509", "-noout", "-pubkey"], pems["cert"])
    if cert_pub is None:
        raise _fail(site, "cert", f"{cert} is not a PEM certificate")
    key_pub = _openssl(["pkey", "-pubout"], pems["key"])
    if key_pub is None:
        raise _fail(site, "key", f"{key} is not a PEM private key (or is encrypted)")
    if key_pub.strip() != cert_pub.strip():
        raise _fail(site, "key", f"{key} does not match the certificate {cert}")
