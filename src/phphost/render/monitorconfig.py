"""What the monitor needs to know about the applied spec, as one JSON file that
apply writes (/etc/phphost/monitor.json): the exporter, `top` and `logs` read it
instead of a spec that may have changed since. Render and parse are pure; the
parser treats the file as input (bounded, typed) and names it in every error."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from phphost import layout
from phphost.errors import FactError
from phphost.spec.model import ExporterSettings, Model

MONITOR_CONF = f"{layout.ETC}/monitor.json"
POOL_LOG = f"{layout.APACHE_LOG_DIR}/phphost-pools.log"      # Apache's one line per pool request
MAX_CONF_BYTES = 4 << 20


@dataclass(frozen=True)
class PoolInfo:
    name: str
    tenant: str
    user: str
    socket: str
    pm: str
    max_children: int
    jailed: bool


@dataclass(frozen=True)
class SiteInfo:
    name: str
    tenant: str
    server_name: str
    pools: tuple[str, ...]          # the site's pool first, then its routes' pools


@dataclass(frozen=True)
class MonitorConfig:
    host: str
    port: int
    pool_timeout: float
    pools: tuple[PoolInfo, ...]
    sites: tuple[SiteInfo, ...]
    tenant_users: tuple[str, ...]   # tenants' own users: never allowed to scrape

    def pool(self, name: str) -> PoolInfo | None:
        return next((p for p in self.pools if p.name == name), None)

    def site(self, name: str) -> SiteInfo | None:
        return next((s for s in self.sites if s.name == name), None)

    def denied_users(self) -> tuple[str, ...]:
        """Identities tenant code runs as (pool users) or logs in as (tenant users)."""
        return tuple(sorted({*self.tenant_users, *(p.user for p in self.pools)}))


def _site_pools(pool: str | None, routes: tuple[str, ...]) -> tuple[str, ...]:
    names = [pool] if pool else []
    return tuple(names + [r for r in sorted(set(routes)) if r not in names])


def from_model(model: Model) -> MonitorConfig:
    """Pure: the monitor's view of a spec (defaults when it has no [exporter])."""
    ex = model.exporter or ExporterSettings()
    pools = tuple(PoolInfo(p.name, p.tenant, p.user, p.socket, p.settings.pm,
                           p.settings.max_children, p.jail.enabled) for p in model.pools)
    sites = tuple(SiteInfo(s.name, s.tenant or "", s.server_name,
                           _site_pools(s.pool, tuple(r.pool for r in s.routes)))
                  for s in model.sites)
    return MonitorConfig(ex.host, ex.port, float(ex.pool_timeout), pools, sites,
                         tuple(sorted({t.user for t in model.tenants})))


def render_monitor_json(model: Model) -> str:
    return json.dumps(asdict(from_model(model)), indent=1, sort_keys=True) + "\n"


# --- parsing -----------------------------------------------------------------------------


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, what: str) -> FactError:
        return FactError(f"{self.path}: {what}. It is written by `phphost apply` from a spec "
                         "with [exporter]: run apply again")

    def obj(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(f"{where} is not an object")
        return value

    def get(self, obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
        value = obj.get(key)
        if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
            raise self.fail(f"{where}.{key} is not a {kind.__name__}")
        return value

    def strs(self, obj: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
        value = obj.get(key)
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise self.fail(f"{where}.{key} is not a list of strings")
        return tuple(value)

    def items(self, obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = obj.get(key)
        if not isinstance(value, list):
            raise self.fail(f"{key} is not a list")
        return [self.obj(x, f"{key}[{i}]") for i, x in enumerate(value)]


def parse_monitor_json(text: str, path: str = MONITOR_CONF) -> MonitorConfig:
    r = _Reader(path)
    if len(text) > MAX_CONF_BYTES:
        raise r.fail(f"larger than {MAX_CONF_BYTES} bytes")
    try:
        raw = r.obj(json.loads(text), "the file")
    except ValueError as err:
        raise r.fail(f"not JSON ({err})") from err
    pools = tuple(
        PoolInfo(r.get(p, "name", str, f"pools[{i}]"), r.get(p, "tenant", str, f"pools[{i}]"),
                 r.get(p, "user", str, f"pools[{i}]"), r.get(p, "socket", str, f"pools[{i}]"),
                 r.get(p, "pm", str, f"pools[{i}]"),
                 r.get(p, "max_children", int, f"pools[{i}]"),
                 r.get(p, "jailed", bool, f"pools[{i}]"))
        for i, p in enumerate(r.items(raw, "pools")))
    sites = tuple(
        SiteInfo(r.get(s, "name", str, f"sites[{i}]"), r.get(s, "tenant", str, f"sites[{i}]"),
                 r.get(s, "server_name", str, f"sites[{i}]"), r.strs(s, "pools", f"sites[{i}]"))
        for i, s in enumerate(r.items(raw, "sites")))
    timeout = raw.get("pool_timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        raise r.fail("pool_timeout is not a number of seconds in (0, 60]")
    return MonitorConfig(r.get(raw, "host", str, "file"), r.get(raw, "port", int, "file"),
                         float(timeout), pools, sites, r.strs(raw, "tenant_users", "file"))


def read_monitor_config(path: str = MONITOR_CONF) -> MonitorConfig:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_CONF_BYTES + 1)
    except FileNotFoundError as err:
        raise FactError(f"{path} does not exist: add [exporter] to the spec and run "
                        "`phphost apply SPEC`, or pass the spec with --spec") from err
    except (OSError, UnicodeDecodeError) as err:
        raise FactError(f"cannot read {path}: {err}") from err
    return parse_monitor_json(text, path)
