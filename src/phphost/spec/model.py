"""The frozen model a validated spec resolves to. Pure data, no behaviour that
touches the host. Templates are already resolved: every Pool carries its final
settings."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

PM = Literal["static", "dynamic", "ondemand"]

JAIL_FEATURES = (
    "base", "dns", "tls", "mail", "sessions", "iconv", "locale", "proc", "mysql", "shell",
    "phplibs",
)


@dataclass(frozen=True)
class PoolSettings:
    """Everything a template can set. Durations are whole seconds."""

    pm: PM = "ondemand"
    max_children: int = 5
    start_servers: int = 0          # dynamic only; 0 = FPM's default (min + (max-min)/2)
    min_spare: int = 1              # dynamic only
    max_spare: int = 3              # dynamic only
    idle_timeout: int = 10          # ondemand only (pm.process_idle_timeout)
    max_requests: int = 500
    request_terminate_timeout: int = 60
    request_slowlog_timeout: int = 5    # 0 = no slow log (FPM: request_slowlog_timeout)
    process_control_timeout: int = 10
    priority: int | None = None     # process.priority (-19 .. 20), None = inherit
    listen_backlog: int = 64
    # requests per Apache process that may wait for a free child beyond max_children
    # (docs/sizing.md); None = derived, 2 x max_children
    burst_queue: int | None = None
    opcache_memory_mb: int = 64
    tmp_size: int = 64 * 1024 * 1024   # bytes: the jail's private /tmp (a tmpfs)
    # cgroup limits of the pool's master and workers; None = derived (spec/limits.py)
    memory_max: int | None = None      # bytes, hard
    memory_high: int | None = None     # bytes, throttle above
    pids_max: int | None = None
    cpu_weight: int | None = None      # 1..10000 (cgroup v2 scale; v1 shares = w * 1024 / 100)
    cpu_max: float | None = None       # CPUs (1.5 = one and a half), None = no quota
    io_weight: int | None = None       # 1..10000
    # socket activation (docs/idle.md): the launcher holds the socket and starts the
    # master on the first connection; None = on for ondemand pools, off otherwise
    activation: bool | None = None
    # extensions the master loads beyond spec/extensions.py's BASE, or "all": what
    # Debian enabled for FPM (docs/idle.md)
    php_extensions: tuple[str, ...] | Literal["all"] = ()

    @property
    def activated(self) -> bool:
        return self.activation if self.activation is not None else self.pm == "ondemand"
    php_admin_values: tuple[tuple[str, str], ...] = ()
    php_values: tuple[tuple[str, str], ...] = ()
    # php.ini settings that only a master can take (PHP_INI_SYSTEM), given as -d flags
    php_ini: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Mount:
    source: str          # host path
    target: str          # path inside the jail
    writable: bool = False


@dataclass(frozen=True)
class JailSpec:
    enabled: bool = True      # every pool is chrooted unless the spec opts out
    features: tuple[str, ...] = ("base",)
    programs: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    smtp: str = "127.0.0.1:25"
    # program -> root-owned interpreter, for programs given as { path, interpreter }
    interpreters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NetworkSpec:
    """`network`: what a pool's processes may connect to beyond what its jail features
    declare (docs/network.md). Each allowed destination is TCP, "IP:PORT",
    "[IPv6]:PORT" or "NETWORK/PREFIX:PORT", stored normalised."""

    allow: tuple[str, ...] = ()


@dataclass(frozen=True)
class Tenant:
    name: str
    user: str            # Unix user owning the code
    group: str           # Unix group; pools of this tenant run with it as primary group
    home: str            # absolute path, mode 0750, owned by user:group
    # True: the user and group may already exist without phphost having created them
    # (plan refuses such accounts otherwise, and any with an id below 1000)
    adopt: bool = False


@dataclass(frozen=True)
class Pool:
    name: str
    tenant: str
    user: str            # runtime Unix user of the workers (primary group = tenant group)
    socket: str          # absolute Unix socket path, <= 107 bytes
    settings: PoolSettings
    writable: tuple[str, ...] = ()   # absolute paths under the tenant home
    # the writable dirs declared `public = true`: served as static files (never PHP)
    # when inside a docroot; every other writable dir inside a docroot is denied
    public: tuple[str, ...] = ()
    jail: JailSpec = field(default_factory=JailSpec)
    network: NetworkSpec = field(default_factory=NetworkSpec)


@dataclass(frozen=True)
class Route:
    path: str            # URL path prefix, starts and ends with "/"
    pool: str


@dataclass(frozen=True)
class TLS:
    cert: str
    key: str
    chain: str | None = None


@dataclass(frozen=True)
class Site:
    name: str
    server_name: str
    aliases: tuple[str, ...] = ()
    tenant: str | None = None
    docroot: str | None = None       # absolute path (resolved against the tenant home)
    php: bool = True
    pool: str | None = None          # None when php is False
    routes: tuple[Route, ...] = ()   # longest path first
    tls: TLS | None = None
    redirect: str | None = None      # "https://x/": the whole site redirects there (no docroot)
    allow_override: tuple[str, ...] = ()   # empty = AllowOverride None
    # URL path of the script unknown URLs go to (FallbackResource), e.g. "/index.php"
    front_controller: str | None = None
    recipe: str | None = None        # the app recipe applied (spec/recipes.py), for tools


@dataclass(frozen=True)
class ApacheSettings:
    http_port: int = 80
    https_port: int = 443
    threads_per_child: int = 25
    max_request_workers: int = 150
    server_limit: int = 6
    proxy_timeout: int = 65


@dataclass(frozen=True)
class ExporterSettings:
    """`[exporter]`: phphost's metrics endpoint (docs/monitoring.md)."""

    host: str = "127.0.0.1"      # a loopback address
    port: int = 9253
    pool_timeout: int = 2        # seconds one pool's status may take in a scrape


@dataclass(frozen=True)
class Model:
    source: str                                  # spec file path, for messages
    tenants: tuple[Tenant, ...] = ()
    pools: tuple[Pool, ...] = ()
    sites: tuple[Site, ...] = ()
    apache: ApacheSettings = field(default_factory=ApacheSettings)
    exporter: ExporterSettings | None = None     # None: no [exporter], nothing monitors
    # a spec directory: key path ("pools.files", "apache") -> the file defining it
    origins: tuple[tuple[str, str], ...] = ()

    def file_of(self, key: str) -> str:
        """The file that defines `key` (a dotted path such as "tenants.ncs")."""
        return next((f for k, f in self.origins if k == key), self.source)

    def tenant(self, name: str) -> Tenant:
        return self._index[0][name]

    def pool(self, name: str) -> Pool:
        return self._index[1][name]

    def pools_of(self, tenant: str) -> tuple[Pool, ...]:
        return self._index[2].get(tenant, ())

    @functools.cached_property
    def _index(self) -> tuple[dict[str, Tenant], dict[str, Pool], dict[str, tuple[Pool, ...]]]:
        """By name, built once: renderers look tenants and pools up for every pool and
        site, which a scan would make quadratic (1,000 tenants)."""
        by_tenant: dict[str, list[Pool]] = {}
        for p in self.pools:
            by_tenant.setdefault(p.tenant, []).append(p)
        return ({t.name: t for t in self.tenants}, {p.name: p for p in self.pools},
                {t: tuple(ps) for t, ps in by_tenant.items()})
