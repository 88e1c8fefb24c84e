"""Apache: source disclosure (PHP-off sites, backup and editor copies, include files),
path tricks (x.php.jpg, /img.jpg/x.php, %0a), PHP uploaded into a writable dir in a
docroot, data a pool wrote into a writable dir that is not public, directory listings,
forward-proxy use, the server's own status pages read from a tenant's PHP, and a
docroot (or a dir above it) swapped for a symlink into another tenant's tree. Files are
placed by the site's tenant; requests come from outside through Apache on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from phphost.spec.model import Tenant
from phphost.spec.validate import is_inside
from phphost.verify.attack import Attack, site_pools
from phphost.verify.context import Ctx
from phphost.verify.docroot import classify, marked_php, put, subdir
from phphost.verify.errors import VerifyError
from phphost.verify.fixtures import code_dir
from phphost.verify.fsops import describe, op, run_ops
from phphost.verify.result import Result, judged, not_applicable
from phphost.verify.web import listener

FAMILY = "apache"


def _base(ctx: Ctx, stem: str) -> str:
    return ctx.name(f"{ctx.site.name}-{stem}")


def _fetch_all(ctx: Ctx, names: list[str], bad: tuple[str, ...] = ("source", "executed"),
               ) -> tuple[list[str], list[str]]:
    """Place marked PHP under each name, GET it; (breaches, all lines)."""
    hits, lines = [], []
    for name in names:
        url = put(ctx, name, marked_php(ctx.run.run_id))
        resp = ctx.run.web.get(ctx.site, url)
        seen = classify(resp.text, ctx.run.run_id)
        lines.append(f"{url} {resp.status}")
        if seen in bad:
            hits.append(f"GET {url}: PHP {seen} ({resp.brief(60)})")
    return hits, lines


def _tried(ctx: Ctx, what: str) -> str:
    return (f"tenant {ctx.tenant.name} places {what} in {ctx.docroot}, "
            f"GET via {ctx.site.server_name}")


def php_off_source(ctx: Ctx) -> Result:
    if ctx.site.php:
        return not_applicable(f"site {ctx.site.name} runs PHP")
    base = _base(ctx, "src")
    names = [f"{base}.{ext}" for ext in ("php", "PHP", "Php", "phtml", "php5", "php7", "phar",
                                         "phps")]
    hits, lines = _fetch_all(ctx, names)
    return judged(hits, _tried(ctx, "PHP files"), ", ".join(lines))


def backup_source(ctx: Ctx) -> Result:
    base = _base(ctx, "bak")
    names = [f"{base}.php~", f"{base}.php.bak", f".{base}.php.swp", f".{base}.php.swo",
             f"#{base}.php#", f"{base}.php.orig", f"{base}.php.old", f"{base}.php.save",
             f"{base}.php.dist", f"{base}.phtml~", f"{base}.inc~"]
    hits, lines = _fetch_all(ctx, names)
    return judged(hits, _tried(ctx, "backup and editor copies of PHP"), ", ".join(lines))


def include_source(ctx: Ctx) -> Result:
    base = _base(ctx, "lib")
    hits, lines = _fetch_all(ctx, [f"{base}.inc", f"{base}.class.inc"])
    return judged(hits, _tried(ctx, "PHP include files (*.inc)"), ", ".join(lines))


def double_ext(ctx: Ctx) -> Result:
    base = _base(ctx, "dbl")
    names = [f"{base}.php.jpg", f"{base}.php.png", f"{base}.php.txt", f"{base}.php.html"]
    hits, lines = _fetch_all(ctx, names, bad=("executed",))
    return judged(hits, _tried(ctx, "x.php.jpg style files"), ", ".join(lines))


def _get_lines(ctx: Ctx, urls: list[str], bad: tuple[str, ...]) -> tuple[list[str], list[str]]:
    hits, lines = [], []
    for url in urls:
        resp = ctx.run.web.get(ctx.site, url)
        seen = classify(resp.text, ctx.run.run_id)
        lines.append(f"{url} {resp.status}")
        if seen in bad:
            hits.append(f"GET {url}: PHP {seen} ({resp.brief(60)})")
    return hits, lines


def path_info(ctx: Ctx) -> Result:
    img = put(ctx, _base(ctx, "img.jpg"), marked_php(ctx.run.run_id))
    urls = [f"{img}/x.php", f"{img}/.php", f"{img}%2fx.php", f"{img}/x.php/", f"{img}/x.phtml"]
    hits, lines = _get_lines(ctx, urls, bad=("executed",))
    return judged(hits, _tried(ctx, "an image holding PHP") + ", with PHP path suffixes",
                  ", ".join(lines))


def newline(ctx: Ctx) -> Result:
    """%0a and %00 after a PHP name must neither show a script's source nor run PHP
    where PHP is off (CVE-2017-15715: `$` matching before a trailing newline)."""
    real = put(ctx, _base(ctx, "nl.php"), marked_php(ctx.run.run_id))
    odd = put(ctx, _base(ctx, "nl2.php") + "\n", marked_php(ctx.run.run_id))
    hits, lines = _get_lines(ctx, [f"{real}%0a", f"{real}%0A", f"{real}%00", f"{real}%0a.txt",
                                   f"{real}%20", f"{real}."], bad=("source",))
    bad = ("executed",) if not ctx.site.php else ()
    more_hits, more = _get_lines(ctx, [odd], bad=bad)
    tried = _tried(ctx, "x.php and a file named 'x.php\\n'") + ", with %0a/%00 suffixes"
    return judged(hits + more_hits, tried, ", ".join(lines + more))


def _upload_dirs(ctx: Ctx) -> list[tuple[str, str]]:
    """(pool, writable dir) pairs of the site's pools whose dir is inside the docroot."""
    root = ctx.docroot.rstrip("/") + "/"
    return sorted((p, w) for p in site_pools(ctx.site) for w in ctx.model.pool(p).writable
                  if (w.rstrip("/") + "/").startswith(root))


def upload_exec(ctx: Ctx) -> Result:
    dirs = _upload_dirs(ctx)
    if not dirs:
        return not_applicable(f"site {ctx.site.name} has no writable dir inside its docroot")
    hits, lines = [], []
    for pool, directory in dirs:
        names = [_base(ctx, f"up.{ext}") for ext in ("php", "phtml", "php5", "PHP", "phar")]
        paths = [os.path.join(directory, n) for n in names]
        for path in paths:
            ctx.run.scratch.track(path)
        made = run_ops(ctx.run.probes, ctx.model.pool(pool),
                       [op("create", p, data=marked_php(ctx.run.run_id).decode()) for p in paths])
        lines += [describe(r) for r in made if not r["ok"]]
        for path in (r["path"] for r in made if r["ok"]):
            url = "/" + urllib.parse.quote(os.path.relpath(path, ctx.docroot))
            more_hits, more = _get_lines(ctx, [url], bad=("source", "executed"))
            hits += more_hits
            lines += more
    tried = f"pools write PHP into {', '.join(d for _, d in dirs)}, GET via {ctx.site.server_name}"
    return judged(hits, tried, ", ".join(lines))


def _private_dirs(ctx: Ctx) -> list[tuple[str, str]]:
    """(pool, dir): writable dirs of the site tenant's pools inside the docroot that are
    not public (whichever site the pool serves: it writes them all the same)."""
    return sorted({(p.name, w) for p in ctx.model.pools_of(ctx.tenant.name)
                   for w in p.writable if is_inside(w, ctx.docroot) and w not in p.public})


def writable_leak(ctx: Ctx) -> Result:
    """The DokuWiki leak: what a pool writes into a writable dir inside the docroot
    that the spec does not call public (data, caches, configs) must not be served."""
    dirs = _private_dirs(ctx)
    if not dirs:
        return not_applicable(f"site {ctx.site.name}: no writable dir inside the docroot "
                              "that is not public")
    hits, lines, made_any = [], [], False
    for pool, directory in dirs:
        token = ctx.name(f"{ctx.site.name}-leak-{pool}")
        paths = [os.path.join(directory, _base(ctx, f"leak.{ext}"))
                 for ext in ("txt", "conf", "sqlite")]
        for path in paths:
            ctx.run.scratch.track(path)
        made = run_ops(ctx.run.probes, ctx.model.pool(pool),
                       [op("create", p, data=token) for p in paths])
        lines += [describe(r) for r in made if not r["ok"]]
        for path in (r["path"] for r in made if r["ok"]):
            made_any = True
            url = "/" + urllib.parse.quote(os.path.relpath(path, ctx.docroot))
            resp = ctx.run.web.get(ctx.site, url)
            lines.append(f"{url} {resp.status}")
            if token in resp.text:
                hits.append(f"GET {url}: {resp.status}, the pool's file came back "
                            f"({resp.brief(60)})")
    if not made_any:
        raise VerifyError(f"no pool could write its writable dirs ({'; '.join(lines)}): "
                          "nothing was there to fetch")
    tried = (f"pools write data files into {', '.join(d for _, d in dirs)} (not public), "
             f"GET via {ctx.site.server_name}")
    return judged(hits, tried, ", ".join(lines))


def dir_listing(ctx: Ctx) -> Result:
    listed = ctx.name("listed.txt")
    plain = subdir(ctx, "dir", {listed: b"x"})
    forced = subdir(ctx, "dir-indexes", {listed: b"x", ".htaccess": b"Options +Indexes\n"})
    hits, lines = [], []
    for url in (plain, forced):
        resp = ctx.run.web.get(ctx.site, url)
        lines.append(f"{url} {resp.status}")
        if listed in resp.text:
            hits.append(f"GET {url}: listing shows {listed}")
    return judged(hits, _tried(ctx, "directories without index (one with Options +Indexes "
                               "in .htaccess)"), ", ".join(lines))


def forward_proxy(ctx: Ctx) -> Result:
    """Use Apache as a forward proxy to a loopback listener of ours: absolute-URI GET
    and CONNECT. The listener getting any connection is the breach."""
    with listener() as lst:
        port = lst.port
        requests = [("GET", f"http://127.0.0.1:{port}/verify-proxy"),
                    ("GET", f"http://localhost:{port}/verify-proxy"),
                    ("CONNECT", f"127.0.0.1:{port}")]
        lines, hits = [], []
        for method, target in requests:
            resp = ctx.run.web.request(ctx.site, method, target)
            lines.append(f"{method} {target}: {resp.status}")
            if "VERIFY-LISTENER-REACHED" in resp.text or (method == "CONNECT"
                                                          and resp.status == 200):
                hits.append(f"{method} {target} proxied: {resp.brief(60)}")
        if lst.hits and not hits:
            hits.append(f"the loopback listener got {len(lst.hits)} connection(s)")
    tried = f"absolute-URI GET and CONNECT through {ctx.site.server_name} to 127.0.0.1:{port}"
    return judged(hits, tried, "; ".join(lines))


STATUS_PAGES = (("/server-status", "Apache Server Status"),
                ("/server-info", "Apache Server Information"),
                ("/balancer-manager", "Load Balancer Manager"))


def server_status(ctx: Ctx) -> Result:
    """Apache's own status pages, fetched from a tenant's PHP over loopback (where
    `Require local` lets them through): they show every tenant's requests."""
    sites = sorted(s.server_name for s in ctx.model.sites if ctx.pool.name in site_pools(s))
    host = sites[0] if sites else "localhost"
    hits, lines = [], []
    for path, title in STATUS_PAGES:
        out = ctx.probe("http.php", {"port": ctx.model.apache.http_port, "path": path,
                                     "host": host})
        body, line = str(out.get("body", "")), str(out.get("status_line") or out.get("error"))
        lines.append(f"{path}: {line}")
        if title in body:
            others = sorted(s.server_name for s in ctx.model.sites if s.server_name in body
                            and s.tenant != ctx.pool.tenant)
            hits.append(f"{path} readable ({line}); shows other tenants' vhosts: "
                        f"{', '.join(others) or 'none right now'}")
    tried = f"PHP in pool {ctx.pool.name}: GET http://127.0.0.1 (Host {host}) " + \
        ", ".join(p for p, _ in STATUS_PAGES)
    return judged(hits, tried, "; ".join(lines))


# --- a docroot, or a dir above it, swapped for a symlink -----------------------------------


def swap_points(home: str, docroot: str) -> list[str]:
    """Pure: what a tenant can replace by a symlink on the way to its docroot: the
    docroot and every dir between the home and it, docroot first. Not the home
    (its parent is root's) and nothing when the docroot is the home."""
    if docroot == home or not is_inside(docroot, home):
        return []
    parts = os.path.relpath(docroot, home).split("/")
    return [os.path.join(home, *parts[:i]) for i in range(len(parts), 0, -1)]


def _as_tenant(tenant: Tenant, argv: Sequence[str]) -> str:
    """Run argv as the tenant: '' on success, else its error message."""
    proc = subprocess.run(list(argv), capture_output=True, check=False, timeout=30,
                          user=tenant.user, group=tenant.group, extra_groups=[], umask=0o027)
    return "" if proc.returncode == 0 else proc.stderr.decode(errors="replace").strip()


def _walk_canary(ctx: Ctx) -> tuple[str, str]:
    """(file name, token) of a text file in the target's code dir, placed once per run."""
    target = ctx.target_tenant
    key = ("walk-canary", target.name)
    if key not in ctx.run.memo:
        name = ctx.name(f"walk-{target.name}.txt")
        token = ctx.run.fixtures.token(f"walk-{target.name}")
        ctx.run.scratch.write(target, os.path.join(code_dir(ctx.model, target), name),
                              token.encode())
        ctx.run.memo[key] = (name, token)
    name, token = ctx.run.memo[key]
    return str(name), str(token)


def _mirror(ctx: Ctx, index: int, rest: str, name: str, token: str) -> str:
    """A dir of the target tenant, inside its code dir, under which `rest` leads to a
    copy of the canary: what a symlinked dir above the docroot would point at."""
    target = ctx.target_tenant
    top = os.path.join(code_dir(ctx.model, target),
                       ctx.name(f"mirror-{ctx.site.name}-{index}"))
    path = top
    ctx.run.scratch.mkdir(target, path)
    for part in rest.split("/"):
        path = os.path.join(path, part)
        ctx.run.scratch.mkdir(target, path)
    ctx.run.scratch.write(target, os.path.join(path, name), token.encode())
    return top


@contextmanager
def swapped(ctx: Ctx, point: str, link_to: str) -> Iterator[str]:
    """`point` (a real dir of the attacking tenant) moved aside and replaced by a
    symlink to `link_to`, both as the tenant, for the length of the block; then put
    back (as root). Yields '' when swapped, else why the tenant could not."""
    if os.path.islink(point) or not os.path.isdir(point):
        raise VerifyError(f"{point} is not a real directory; not swapping it")
    saved = os.path.join(os.path.dirname(point), ctx.name(f"saved-{os.path.basename(point)}"))
    # never tracked by scratch: its cleanup would remove the tenant's real docroot
    err = _as_tenant(ctx.tenant, ["mv", "-T", "--", point, saved])
    if err:
        yield f"mv {point}: {err}"
        return
    try:
        err = _as_tenant(ctx.tenant, ["ln", "-s", "--", link_to, point])
        yield f"ln -s {link_to} {point}: {err}" if err else ""
    finally:
        _put_back(ctx, point, saved)


def _put_back(ctx: Ctx, point: str, saved: str) -> None:
    """As the tenant, never as root: the tenant can swap these paths under us."""
    err = _as_tenant(ctx.tenant, ["rm", "-f", "--", point])
    err = err or _as_tenant(ctx.tenant, ["mv", "-T", "--no-clobber", "--", saved, point])
    if err or os.path.lexists(saved):
        raise VerifyError(f"cannot put {point} back ({err or 'something else is there'}); "
                          f"the tenant's directory is at {saved}")


def docroot_symlink(ctx: Ctx) -> Result:
    """The tenant replaces its docroot, and each dir between its home and the docroot,
    by a symlink into the target's tree (after apply, at request time). Apache checks
    a symlinked component with the Options of the dir above it: phphost forbids
    following symlinks there (Debian's <Directory /> allows it)."""
    points = swap_points(ctx.tenant.home, ctx.docroot)
    if not points:
        return not_applicable(f"docroot {ctx.docroot} is the home of {ctx.tenant.name}: "
                              "nothing above it the tenant could swap")
    name, token = _walk_canary(ctx)
    target_dir = code_dir(ctx.model, ctx.target_tenant)
    url = "/" + urllib.parse.quote(name)
    hits, lines = [], []
    for index, point in enumerate(points):
        rest = os.path.relpath(ctx.docroot, point)
        link_to = target_dir if rest == "." else _mirror(ctx, index, rest, name, token)
        with swapped(ctx, point, link_to) as refused:
            if refused:
                lines.append(refused)
                continue
            resp = ctx.run.web.get(ctx.site, url)
        lines.append(f"{point} -> {link_to}: GET {url} {resp.brief(60)}")
        if token in resp.text:
            hits.append(lines[-1] + " (the target's file "
                        f"{os.path.normpath(os.path.join(link_to, rest, name))})")
    tried = (f"tenant {ctx.tenant.name} swaps {', '.join(points)} for symlinks into "
             f"{ctx.target_tenant.name}'s {target_dir}, GET via {ctx.site.server_name}")
    return judged(hits, tried, "; ".join(lines))


ATTACKS = (
    Attack("apache.php-off-source", FAMILY, "PHP source from a PHP-off site", "site",
           php_off_source),
    Attack("apache.backup-source", FAMILY, "source via x.php~, x.php.bak, .x.php.swp, ...",
           "site", backup_source),
    Attack("apache.include-source", FAMILY, "source of PHP include files (x.inc)", "site",
           include_source),
    Attack("apache.double-ext", FAMILY, "x.php.jpg runs as PHP", "site", double_ext),
    Attack("apache.path-info", FAMILY, "/img.jpg/x.php runs the image as PHP", "site",
           path_info),
    Attack("apache.newline", FAMILY, "%0a / %00 after .php: source or PHP where it is off",
           "site", newline),
    Attack("apache.upload-exec", FAMILY, "PHP written to a writable dir in a docroot runs",
           "site", upload_exec),
    Attack("apache.writable-leak", FAMILY, "files a pool wrote into a not-public "
           "writable dir in the docroot are served", "site", writable_leak),
    Attack("apache.dir-listing", FAMILY, "directory listings", "site", dir_listing),
    Attack("apache.forward-proxy", FAMILY, "Apache as a forward proxy (GET http://, CONNECT)",
           "site", forward_proxy),
    Attack("apache.server-status", FAMILY, "Apache's server-status/info from a tenant's PHP",
           "pool", server_status),
    Attack("apache.docroot-symlink", FAMILY, "docroot or a dir above it swapped for a "
           "symlink into another tenant's tree", "site>tenant", docroot_symlink),
)
