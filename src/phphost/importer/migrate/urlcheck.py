"""What a visitor sees, before and after a stage: each URL fetched from loopback with
its own Host header (and SNI for https), its status, Location and body kept, the
parts the user names volatile (--ignore regexes) cut out. Every answer is untrusted:
the body is read up to BODY_LIMIT bytes, each fetch has a timeout, and nothing but
the comparison uses it."""

from __future__ import annotations

import hashlib
import http.client
import re
import ssl
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from phphost.errors import PlanError
from phphost.spec.model import Model

BODY_LIMIT = 1 << 20        # bytes of a body compared; more is marked, not read
LOG_TAIL = 4 << 20          # bytes read from the end of an access log
PER_SITE = 20               # logged paths compared per site
TIMEOUT = 15.0              # seconds per fetch
SHOWN = 160                 # characters of a differing body printed


@dataclass(frozen=True)
class Url:
    scheme: str             # http or https
    host: str               # the Host header and SNI name
    port: int
    path: str               # with its query

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True)
class Seen:
    status: int
    location: str
    body: str               # volatile parts removed; "" on a transport error
    error: str = ""

    def digest(self) -> str:
        return hashlib.sha256(self.body.encode()).hexdigest()[:12]

    def short(self, start: int = 0) -> str:
        """Status, Location and the body from `start` (where it first differs)."""
        if self.error:
            return f"no answer ({self.error})"
        where = f" -> {self.location}" if self.location else ""
        text = self.body[start:start + SHOWN]
        text = ("..." if start else "") + text + ("..." if len(self.body) > start + SHOWN else "")
        return f"{self.status}{where}: {text!r}"


def parse_url(text: str, where: str) -> Url:
    parts = urllib.parse.urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlanError(f"{where}: {text.strip()!r} is not an http:// or https:// URL. Give "
                        "one absolute URL a line (the host name is sent as Host header to "
                        "loopback)")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise PlanError(f"{where}: {text.strip()!r}: {err}") from err
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Url(parts.scheme, parts.hostname, port, path)


def read_urls(path: str, text: str) -> list[Url]:
    """One URL a line; blank lines and # comments skipped."""
    urls = [parse_url(line, f"{path}:{n}") for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not urls:
        raise PlanError(f"{path}: no URL in it. Give one absolute URL a line")
    return urls


def default_urls(model: Model, logged: Mapping[str, Sequence[str]] | None = None) -> list[Url]:
    """Without --urls: "/" of every name and alias of every site, on the spec's ports
    (https too for a TLS site), and the paths its access log shows (`logged`, by
    server name), on the site's own scheme."""
    out = []
    for site in model.sites:
        for host in (site.server_name, *site.aliases):
            out.append(Url("http", host, model.apache.http_port, "/"))
            if site.tls is not None:
                out.append(Url("https", host, model.apache.https_port, "/"))
        scheme, port = (("https", model.apache.https_port) if site.tls is not None
                        else ("http", model.apache.http_port))
        out += [Url(scheme, site.server_name, port, path)
                for path in (logged or {}).get(site.server_name, ()) if path != "/"]
    return out


# a request line and status in Apache's common, combined and vhost_combined formats
_LOGGED = re.compile(r'"GET (/[^ "?]*) HTTP/[0-9.]+" ([23][0-9][0-9]) ')


def logged_paths(text: str, cap: int = PER_SITE) -> list[str]:
    """The distinct paths of GET requests answered 2xx/3xx, most requested first, at
    most `cap`. Requests with a query string are left out: a GET with parameters may
    act (log out, delete, run a cron job), and migrate only looks."""
    counts: dict[str, int] = {}
    for m in _LOGGED.finditer(text):
        counts[m[1]] = counts.get(m[1], 0) + 1
    return sorted(counts, key=lambda p: -counts[p])[:cap]


def compile_ignores(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    out = []
    for p in patterns:
        try:
            out.append(re.compile(p))
        except re.error as err:
            raise PlanError(f"--ignore {p!r}: not a regular expression ({err})") from err
    return out


def clean(body: bytes, ignores: Iterable[re.Pattern[str]]) -> str:
    text = body[:BODY_LIMIT].decode("utf-8", "replace")
    if len(body) > BODY_LIMIT:
        text += f"[body over {BODY_LIMIT} bytes, the rest not compared]"
    for rx in ignores:
        text = rx.sub("", text)
    return text


def fetch(url: Url, ignores: Sequence[re.Pattern[str]], address: str = "127.0.0.1") -> Seen:
    if url.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False          # the old server's certificate, as it is
        context.verify_mode = ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            address, url.port, timeout=TIMEOUT, context=context)
    else:
        conn = http.client.HTTPConnection(address, url.port, timeout=TIMEOUT)
    try:
        conn.request("GET", url.path, headers={"Host": url.host if url.port in (80, 443)
                                               else f"{url.host}:{url.port}",
                                               "User-Agent": "phphost-migrate",
                                               "Accept-Encoding": "identity"})
        resp = conn.getresponse()
        body = resp.read(BODY_LIMIT + 1)
        location = resp.getheader("Location") or ""
        return Seen(resp.status, clean(location.encode(), ignores), clean(body, ignores))
    except (OSError, http.client.HTTPException) as err:
        return Seen(0, "", "", f"{type(err).__name__}: {err}")
    finally:
        conn.close()


Snapshot = dict[Url, Seen]


def snapshot(urls: Sequence[Url], ignores: Sequence[re.Pattern[str]],
             get: Callable[[Url, Sequence[re.Pattern[str]]], Seen] = fetch) -> Snapshot:
    return {u: get(u, ignores) for u in urls}


@dataclass(frozen=True)
class Difference:
    url: Url
    before: Seen
    after: Seen

    def start(self) -> int:
        """A little before the first character where the bodies differ."""
        a, b = self.before.body, self.after.body
        first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                     min(len(a), len(b)))
        return max(0, first - 40)

    def line(self) -> str:
        at = self.start()
        return (f"{self.url}\n    before: {self.before.short(at)}\n"
                f"    after:  {self.after.short(at)}")


def compare(before: Snapshot, after: Snapshot) -> list[Difference]:
    """Every URL whose status, Location or cleaned body differs."""
    out = []
    for url, was in before.items():
        now = after.get(url, Seen(0, "", "", "not fetched"))
        if (was.status, was.location, was.body, was.error) != \
                (now.status, now.location, now.body, now.error):
            out.append(Difference(url, was, now))
    return out
