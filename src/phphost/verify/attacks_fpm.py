"""FPM: reach another pool's socket from PHP and run code there; point a handler at
another socket from .htaccess; inject PHP_VALUE / PHP_ADMIN_VALUE through .htaccess
or request headers; reach other pools' OPcache; reach FPM's status and ping pages
over HTTP."""

from __future__ import annotations

import json
import os
from typing import Any

from phphost import layout
from phphost.fastcgi.status import php_params
from phphost.verify.attack import Attack
from phphost.verify.context import Ctx
from phphost.verify.docroot import subdir
from phphost.verify.errors import VerifyError
from phphost.verify.probes import site_script
from phphost.verify.result import Result, judged, not_applicable
from phphost.verify.web import HttpResponse

FAMILY = "fpm"
# what FPM answers when it gets a request for a script it will not or cannot run
FPM_REFUSALS = ("Access denied.", "File not found.", "No input file specified.",
                "Primary script unknown")


def inject_memory(run_id: str, slot: int) -> str:
    """Pure: a memory_limit only this run's injection number `slot` sets. Injected
    values stick to an FPM worker after the request, so each attempt needs its own."""
    return f"{int(run_id[:4], 16) % 700 + 200 + 1000 * slot}M"


def _fcgi(ctx: Ctx, params: dict[str, str] | None = None) -> dict[str, Any]:
    return ctx.probe("fcgi.php", {"socket": ctx.target_pool.socket, "params": params or {}})


def socket_connect(ctx: Ctx) -> Result:
    target = ctx.target_pool
    out = _fcgi(ctx)
    tried = f"PHP in pool {ctx.pool.name}: stream_socket_client('unix://{target.socket}')"
    hits = [f"connected to {target.socket}"] if out.get("connected") else []
    return judged(hits, tried, f"refused: {out.get('error')}")


def socket_exec(ctx: Ctx) -> Result:
    """A full FastCGI request from PHP asking the target pool to run a script it can
    read (its own whoami probe): success means code runs as the other pool."""
    target = ctx.target_pool
    script = ctx.run.probes.script(target, "whoami.php")
    params = php_params(script, document_root=os.path.dirname(script))
    out = _fcgi(ctx, params)
    stdout = str(out.get("stdout", ""))
    tried = (f"PHP in pool {ctx.pool.name}: FastCGI request over {target.socket} "
             f"for {script}")
    if not out.get("connected"):
        return judged([], tried, f"connect refused: {out.get('error')}")
    ran = "VERIFY-WHOAMI" in stdout
    body = stdout.split("\r\n\r\n", 1)[-1][:160]
    return judged([f"ran in pool {target.name}: {body}"] if ran else [], tried,
                  f"connected but nothing ran: {body!r}")


# --- through Apache --------------------------------------------------------------------


def _php_site(ctx: Ctx) -> Result | None:
    site = ctx.site
    return None if site.php else not_applicable(f"site {site.name} runs no PHP")


def override_outcome(resp: HttpResponse, static: str) -> tuple[bool, str]:
    """Pure: (was the .htaccess handler used, why we think so)."""
    if static in resp.text:
        return False, f"{resp.brief(40)}: .htaccess ignored, file served as is"
    if resp.status == 500:
        return False, "HTTP 500: Apache refused the .htaccess"
    if resp.status == 503 or any(r in resp.text for r in FPM_REFUSALS):
        return True, f"request handed to FastCGI: {resp.brief()}"
    raise VerifyError(f"unexpected answer {resp.brief()}: cannot tell whether the "
                      ".htaccess handler was used")


def htaccess_handler(ctx: Ctx) -> Result:
    target = ctx.target_pool
    static = f"VERIFY-STATIC-{ctx.run.run_id}"
    handler = f"proxy:unix:{target.socket}|fcgi://{target.name}/"
    htaccess = f'<Files "h.txt">\n    SetHandler "{handler}"\n</Files>\n'
    url = subdir(ctx, f"sethandler-{target.name}",
                 {".htaccess": htaccess.encode(), "h.txt": static.encode()}) + "h.txt"
    used, why = override_outcome(ctx.run.web.get(ctx.site, url), static)
    tried = f".htaccess SetHandler {handler} on {ctx.site.server_name}{url}"
    return judged([why] if used else [], tried, why)


def _ini_dirs(ctx: Ctx) -> dict[str, str]:
    """variant -> .htaccess text, each tried in its own directory (an unknown directive
    makes Apache refuse the whole file)."""
    run_id = ctx.run.run_id
    color = f"#{run_id[:6]}"
    return {
        "php-value": f"php_value highlight.html \"{color}\"\n"
                     f"php_admin_value memory_limit {inject_memory(run_id, 0)}\n",
        "setenv": f'SetEnv PHP_VALUE "highlight.html={color}"\n'
                  f'SetEnv PHP_ADMIN_VALUE "memory_limit={inject_memory(run_id, 1)}"\n',
        "setenvif": 'SetEnvIf Request_URI "." '
                    f'"PHP_ADMIN_VALUE=memory_limit={inject_memory(run_id, 2)}"\n',
        "browsermatch": 'BrowserMatch "." '
                        f'"PHP_ADMIN_VALUE=memory_limit={inject_memory(run_id, 3)}"\n',
    }


def _ini(resp: HttpResponse) -> dict[str, Any] | None:
    try:
        data = json.loads(resp.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("marker") == "VERIFY-INI" else None


def injected(ini: dict[str, Any], run_id: str) -> list[str]:
    """Pure: which injections of this run took effect in the settings ini.php reported."""
    found = []
    if ini.get("memory_limit") in [inject_memory(run_id, slot) for slot in range(5)]:
        found.append(f"memory_limit (admin value) is now {ini['memory_limit']}")
    if ini.get("highlight_html") == f"#{run_id[:6]}":
        found.append(f"highlight.html is now #{run_id[:6]}")
    if ini.get("http_proxy_env") or ini.get("http_proxy_server"):
        found.append(f"HTTP_PROXY reached PHP: {ini.get('http_proxy_server')!r}")
    if ini.get("injected"):
        found.append(f"FastCGI params {ini['injected']} reached PHP")
    return found


def _baseline(ctx: Ctx) -> str:
    """URL of ini.php in a directory without .htaccess; it must answer (control)."""
    key = ("ini-plain", ctx.site.name)
    if key not in ctx.run.memo:
        url = subdir(ctx, "ini-plain", {"ini.php": site_script("site_ini.php").encode()})
        ctx.run.memo[key] = url + "ini.php"
    url = str(ctx.run.memo[key])
    if _ini(ctx.run.web.get(ctx.site, url)) is None:
        raise VerifyError(f"control failed: {ctx.site.server_name}{url} does not run")
    return url


def htaccess_php_value(ctx: Ctx) -> Result:
    if (na := _php_site(ctx)) is not None:
        return na
    _baseline(ctx)
    hits, lines = [], []
    for variant, htaccess in _ini_dirs(ctx).items():
        url = subdir(ctx, f"ini-{variant}", {".htaccess": htaccess.encode(),
                                             "ini.php": site_script("site_ini.php").encode()})
        resp = ctx.run.web.get(ctx.site, url + "ini.php")
        ini = _ini(resp)
        found = injected(ini, ctx.run.run_id) if ini is not None else []
        hits += [f"{variant}: {f}" for f in found]
        refused = "HTTP 500: Apache refused the .htaccess" if resp.status == 500 else None
        lines.append(f"{variant}: " + (f"settings unchanged ({ini.get('memory_limit')})"
                                       if ini is not None else refused or resp.brief(60)))
    tried = "php_value / SetEnv / SetEnvIf / BrowserMatch PHP_(ADMIN_)VALUE in .htaccess on " \
        + ctx.site.server_name
    return judged(hits, tried, "; ".join(lines))


def header_inject(ctx: Ctx) -> Result:
    if (na := _php_site(ctx)) is not None:
        return na
    url = _baseline(ctx)
    color = f"#{ctx.run.run_id[:6]}"
    headers = [("PHP_VALUE", f"highlight.html={color}"), ("PHP-VALUE", f"highlight.html={color}"),
               ("PHP_ADMIN_VALUE", f"memory_limit={inject_memory(ctx.run.run_id, 4)}"),
               ("Proxy", "http://127.0.0.1:9/")]
    resp = ctx.run.web.get(ctx.site, url, headers)
    ini = _ini(resp)
    if ini is None:
        raise VerifyError(f"{url} with injection headers answered {resp.brief()}")
    tried = "request headers " + ", ".join(k for k, _ in headers) + f" to {url}"
    return judged(injected(ini, ctx.run.run_id), tried,
                  f"settings unchanged (memory_limit {ini.get('memory_limit')}), no HTTP_PROXY")


# --- OPcache ---------------------------------------------------------------------------


def opcache(ctx: Ctx) -> Result:
    """Prime the target's OPcache with its whoami probe, then look at the cache from
    the attacker's pool and reset it: separate masters never share it."""
    target = ctx.target_pool
    ctx.run.probes.run(target, "whoami.php")     # again: an earlier cell may have reset
    script = ctx.run.probes.script(target, "whoami.php")
    out = ctx.probe("opcache.php", {"reset": True})
    scripts = [str(s) for s in out.get("scripts", [])]
    home = ctx.model.tenant(target.tenant).home + "/"
    theirs = [s for s in scripts if s == script or s.startswith(home)]
    tried = f"PHP in pool {ctx.pool.name}: opcache_get_status(true), opcache_reset()"
    reset = f"opcache_reset() -> {out.get('reset')} {out.get('reset_error') or ''}".strip()
    if theirs:
        return judged([f"sees pool {target.name}'s cached scripts {theirs[:3]}; {reset}"],
                      tried, "")
    status = ("opcache_get_status() refused: " + str(out.get("status_error"))
              if not out.get("status") else f"cache lists {len(scripts)} script(s), none "
              f"of pool {target.name}")
    return judged([], tried, f"{status}; {reset}")


# --- status pages ----------------------------------------------------------------------


def status_paths() -> list[str]:
    s, p = layout.STATUS_PATH, layout.PING_PATH
    return [s, f"{s}?json&full", f"{s}.php", f"{s}/x.php", "/" + s.lstrip("/").upper(),
            "//" + s.lstrip("/"), "/./" + s.lstrip("/"), "/%70" + s.lstrip("/")[1:],
            p, f"{p}.php", f"{p}?x", "/index.php" + s]


def fpm_page(text: str) -> bool:
    """Pure: does this look like FPM's status or ping page?"""
    flat = text.lower()
    return ("process manager" in flat and "accepted conn" in flat) or text.strip() == "pong"


def status_http(ctx: Ctx) -> Result:
    lines, hits = [], []
    for path in status_paths():
        resp = ctx.run.web.get(ctx.site, path)
        lines.append(f"{path} {resp.status}")
        if fpm_page(resp.text):
            hits.append(f"GET {path}: {resp.brief(80)}")
    tried = f"GET FPM status and ping pages on {ctx.site.server_name}"
    return judged(hits, tried, ", ".join(lines))


ATTACKS = (
    Attack("fpm.socket-connect", FAMILY, "connect to another pool's socket from PHP",
           "pool>pool", socket_connect),
    Attack("fpm.socket-exec", FAMILY, "run code in another pool over its socket from PHP",
           "pool>pool", socket_exec),
    Attack("fpm.htaccess-handler", FAMILY, ".htaccess SetHandler to another pool's socket",
           "site>pool", htaccess_handler),
    Attack("fpm.htaccess-php-value", FAMILY, "PHP_VALUE / PHP_ADMIN_VALUE via .htaccess",
           "site", htaccess_php_value),
    Attack("fpm.header-inject", FAMILY, "PHP_VALUE / Proxy request headers", "site",
           header_inject),
    Attack("fpm.opcache", FAMILY, "see or reset another pool's OPcache", "pool>pool", opcache),
    Attack("fpm.status-http", FAMILY, "FPM status and ping pages over HTTP", "site",
           status_http),
)
