"""A TLS site: HTTP redirects to HTTPS, HTTPS serves PHP from the site's pool."""

from __future__ import annotations

import http.client
import ssl
import subprocess
from pathlib import Path

from phphost.exitcodes import ExitCode
from phphost.spec.model import Model
from tests.integration import hostkit
from tests.integration.conftest import DEMO
from tests.integration.hostkit import get, phphost


def make_cert(directory: Path, name: str) -> tuple[str, str]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_site_redirects_and_serves_php(demo: Model, spec_dir: Path, demo_text: str) -> None:
    site = next(s for s in demo.sites if s.php and s.pool and not s.routes)
    assert site.pool is not None
    name = "secure.demo.test"
    cert, key = make_cert(spec_dir, name)
    text = demo_text + (f"\n[sites.secure]\nserver_name = \"{name}\"\n"
                        f"tenant = \"{site.tenant}\"\ndocroot = \"{site.docroot}\"\n"
                        f"pool = \"{site.pool}\"\ntls = {{ cert = \"{cert}\", key = \"{key}\" }}\n")
    spec = hostkit.write_spec(spec_dir, "tls.toml", text)
    try:
        phphost("apply", spec)
        status, headers, _ = get(name, "/index.php")
        assert status == 301 and headers["location"] == f"https://{name}/index.php"
        ctx = ssl.create_default_context(cafile=cert)
        conn = http.client.HTTPSConnection("127.0.0.1", 443, context=ctx, timeout=10)
        ctx.check_hostname = False          # we connect to 127.0.0.1; the cert names the site
        conn.request("GET", "/index.php", headers={"Host": name})
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200 and f"user={demo.pool(site.pool).user} " in body
        conn.close()
    finally:
        phphost("apply", str(DEMO))


def test_tls_files_in_a_tenant_home_are_refused(demo: Model, spec_dir: Path,
                                                demo_text: str) -> None:
    """apache2 opens TLS files by name, as root, at every reload: files the tenant can
    swap (its home) are refused by the plan, before anything changes (exit 4)."""
    site = next(s for s in demo.sites if s.php and s.pool and not s.routes)
    tenant = demo.tenant(site.tenant or "")
    name = "tenantkey.demo.test"
    cert, key = make_cert(spec_dir, name)
    home_cert, home_key = Path(tenant.home) / "tls-cert.pem", Path(tenant.home) / "tls-key.pem"
    home_cert.write_bytes(Path(cert).read_bytes())
    home_key.write_bytes(Path(key).read_bytes())
    text = demo_text + (f"\n[sites.tenantkey]\nserver_name = \"{name}\"\n"
                        f"tenant = \"{site.tenant}\"\ndocroot = \"{site.docroot}\"\n"
                        f"pool = \"{site.pool}\"\n"
                        f"tls = {{ cert = \"{home_cert}\", key = \"{home_key}\" }}\n")
    spec = hostkit.write_spec(spec_dir, "tenantkey.toml", text)
    before = hostkit.snapshot()
    try:
        proc = phphost("apply", spec, check=False)
        assert proc.returncode == ExitCode.PLAN, proc.stdout + proc.stderr
        assert "root-owned file in directories only root can write" in proc.stderr
        assert phphost("plan", spec, check=False).returncode == ExitCode.PLAN
        assert hostkit.snapshot() == before
    finally:
        home_cert.unlink()
        home_key.unlink()
