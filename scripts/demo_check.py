"""Print each demo site's URL and check that it answers (over loopback, with the
site's name in the Host header).

usage: demo_check.py SPEC
"""

from __future__ import annotations

import http.client
import sys

from phphost.spec.loader import load_spec
from phphost.spec.model import Site


def fetch(host: str, port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read(200).decode("utf-8", "replace").strip()
    finally:
        conn.close()


def check(site: Site, port: int) -> bool:
    paths = ["/"] + [r.path for r in site.routes]
    ok = True
    for path in paths:
        status, body = fetch(site.server_name, port, path)
        want = 301 if site.redirect or site.tls else 200
        good = status == want
        ok &= good
        first = body.splitlines()[0] if body else ""
        print(f"  {'ok ' if good else 'BAD'} http://{site.server_name}{path}  -> {status} {first}")
    return ok


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: demo_check.py SPEC (e.g. examples/demo.toml)", file=sys.stderr)
        return 2
    model = load_spec(argv[1])
    port = model.apache.http_port
    print(f"Sites (on this host: curl -H 'Host: NAME' http://127.0.0.1:{port}/):")
    results = [check(site, port) for site in model.sites]
    if all(results):
        print("All demo sites answer.")
        return 0
    print("Some demo sites did not answer as expected.", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
