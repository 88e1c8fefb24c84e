"""Pool settings for the spec loader: parse the settings keys a template or a
pool may carry, resolve template chains, and check the process-manager numbers
on the resolved result. Pure."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from phphost.spec import extensions
from phphost.spec.model import PoolSettings
from phphost.spec.validate import (
    At,
    Table,
    boolean,
    check_keys,
    duration,
    integer,
    name,
    reference,
    string,
    string_list,
    table,
    type_name,
)

PM_MODES = ("static", "dynamic", "ondemand")
INI_TABLES = ("php_admin_values", "php_values", "php_ini")
SETTING_KEYS = (
    "pm", "max_children", "start_servers", "min_spare", "max_spare", "idle_timeout",
    "max_requests", "request_terminate_timeout", "request_slowlog_timeout",
    "process_control_timeout", "priority",
    "listen_backlog", "burst_queue", "opcache_memory_mb", "tmp_size", "memory_max",
    "memory_high", "pids_max", "cpu_weight", "cpu_max", "io_weight", "activation", "php_extensions",
    *INI_TABLES,
)
TEMPLATE_KEYS = ("inherits", *SETTING_KEYS)
PM_ONLY = {"start_servers": "dynamic", "min_spare": "dynamic", "max_spare": "dynamic",
           "idle_timeout": "ondemand"}

_INI_KEY_RE = re.compile(r"^[a-zA-Z0-9_.]+$")
_INI_BAD_CHARS = ("\n", "\r", "\0", '"', "'", ";")

# (lo, hi) for integer settings; None = unbounded on that side
_INT_RANGES: dict[str, tuple[int | None, int | None]] = {
    "max_children": (1, None), "start_servers": (0, None), "min_spare": (1, None),
    "max_spare": (1, None), "max_requests": (0, None), "priority": (-19, 20),
    "listen_backlog": (1, None), "burst_queue": (0, None), "opcache_memory_mb": (8, 4096),
    "pids_max": (8, 4_194_304), "cpu_weight": (1, 10000), "io_weight": (1, 10000),
}
# (lo, hi) in bytes for size settings ("64M")
MIB = 1024 * 1024
_SIZES: dict[str, tuple[int, int]] = {"tmp_size": (1 * MIB, 16 * 1024 * MIB),
                                       "memory_max": (16 * MIB, 1024 * 1024 * MIB),
                                       "memory_high": (16 * MIB, 1024 * 1024 * MIB)}
_SIZE_RE = re.compile(r"^([0-9]{1,12})([KMG]?)$")
_UNITS = {"": 1, "K": 1024, "M": MIB, "G": 1024 * MIB}
# minimum seconds for duration settings
_DURATIONS = {"idle_timeout": 1, "request_terminate_timeout": 0, "request_slowlog_timeout": 0,
              "process_control_timeout": 1}


def parse_settings(at: At, tbl: Table) -> dict[str, object]:
    """The settings keys present in `tbl`, typed and range-checked, in schema order.
    ini tables come back as dict[str, str]."""
    out: dict[str, object] = {}
    for key in SETTING_KEYS:
        if key in tbl:
            out[key] = _parse_setting(at.sub(key), key, tbl[key])
    return out


def _parse_setting(at: At, key: str, value: object) -> object:
    if key == "pm":
        pm = string(at, value)
        if pm not in PM_MODES:
            at.fail(f"unknown process manager {pm!r}", f"use one of: {', '.join(PM_MODES)}")
        return pm
    if key in _DURATIONS:
        return duration(at, value, lo=_DURATIONS[key])
    if key in INI_TABLES:
        return _ini_table(at, value)
    if key == "activation":
        return boolean(at, value)
    if key == "php_extensions":
        return php_extensions(at, value)
    if key in _SIZES:
        return byte_size(at, value, *_SIZES[key])
    if key == "cpu_max":
        return cpus(at, value)
    lo, hi = _INT_RANGES[key]
    return integer(at, value, lo, hi)


def php_extensions(at: At, value: object) -> tuple[str, ...] | Literal["all"]:
    """A list of extension names (spec/extensions.py KNOWN) or "all"."""
    if value == extensions.ALL:
        return extensions.ALL
    if not isinstance(value, list):
        at.fail(f"expected a list of PHP extension names or \"all\", got {type_name(value)}",
                'write e.g. php_extensions = ["gd", "intl"]')
    out: list[str] = []
    for i, ext in enumerate(string_list(at, value)):
        if ext not in extensions.KNOWN:
            near = [k for k in extensions.KNOWN if k.startswith(ext[:2])]
            at.sub(i).fail(f"unknown PHP extension {ext!r}",
                           "use the module name of a php8.2-* package"
                           + (f" (e.g. {', '.join(near[:5])})" if near else "")
                           + ', or "all" for every module Debian enabled')
        if ext not in out:
            out.append(ext)
    return tuple(out)


def byte_size(at: At, value: object, lo: int, hi: int) -> int:
    """Bytes from a whole number of bytes or a string "64M" (K, M, G: powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and _SIZE_RE.match(value.strip().upper()):
        m = _SIZE_RE.match(value.strip().upper())
        assert m is not None
        size = int(m.group(1)) * _UNITS[m.group(2)]
    else:
        at.fail(f"expected a size like \"64M\" or a number of bytes, got {value!r}",
                'write a whole number with K, M or G, e.g. "64M"')
    if not lo <= size <= hi:
        at.fail(f"{value!r} is outside {lo // MIB}M..{hi // MIB}M",
                f"choose a size between {lo // MIB}M and {hi // MIB}M")
    return size


def cpus(at: At, value: object) -> float:
    """A CPU quota in CPUs: 0.01 .. 1024 (1.5 = one and a half CPUs)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        at.fail(f"expected a number of CPUs, got {value!r}", "write e.g. cpu_max = 1.5")
    if not 0.01 <= value <= 1024:
        at.fail(f"{value} CPUs is out of range", "use a value from 0.01 to 1024")
    return float(value)


def _ini_table(at: At, value: object) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, raw in sorted(table(at, value).items()):
        where = at.sub(key)
        if not _INI_KEY_RE.match(key):
            where.fail(f"{key!r} is not a php.ini setting name",
                       "use letters, digits, '_' and '.' only (e.g. memory_limit, opcache.jit)")
        out[key] = ini_value(where, raw)
    return out


def ini_value(at: At, value: object) -> str:
    """A php.ini value as FPM config text: booleans become on/off, numbers str()."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            at.fail(f"{value} is not a finite number", "write a plain number or a string")
        return str(value)
    if not isinstance(value, str):
        at.fail(f"expected string, number or boolean, got {type_name(value)}",
                'write it as "value", a number, or true/false')
    bad = next((c for c in _INI_BAD_CHARS if c in value), None)
    if bad is not None:
        at.fail(f"value {value!r} contains {bad!r}",
                "remove newlines, quotes and ';' (they would break or extend the FPM config)")
    if "${" in value:
        at.fail(f"value {value!r} contains '${{'",
                "FPM replaces ${NAME} with the environment variable NAME of its master, "
                "which runs as root: write the value itself")
    return value


# --- templates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One table in an inheritance chain: a template or the pool itself."""

    label: str                  # "template busy" / "the pool"
    values: dict[str, object]


@dataclass(frozen=True)
class Template:
    name: str
    inherits: str | None
    at: At
    values: dict[str, object]


def parse_templates(at: At, raw: Table) -> dict[str, Template]:
    out: dict[str, Template] = {}
    for tname in sorted(raw):
        where = at.sub(tname)
        name(where, tname, "template")
        tbl = table(where, raw[tname])
        check_keys(where, tbl, TEMPLATE_KEYS)
        inherits = string(where.sub("inherits"), tbl["inherits"]) if "inherits" in tbl else None
        out[tname] = Template(tname, inherits, where, parse_settings(where, tbl))
    for tmpl in out.values():
        _check_chain(tmpl, out)
    return out


def _check_chain(start: Template, templates: Mapping[str, Template]) -> None:
    seen = [start.name]
    tmpl = start
    while tmpl.inherits is not None:
        where = tmpl.at.sub("inherits")
        if tmpl.inherits not in templates:
            reference(where, tmpl.inherits, templates, "template")
        if tmpl.inherits in seen:
            cycle = " -> ".join([*seen[seen.index(tmpl.inherits):], tmpl.inherits])
            templates[tmpl.inherits].at.sub("inherits").fail(
                f"templates inherit in a cycle: {cycle}", "remove one of these 'inherits' keys")
        seen.append(tmpl.inherits)
        tmpl = templates[tmpl.inherits]


def template_ref(at: At, value: object, templates: Mapping[str, Template]) -> str:
    return reference(at, value, templates, "template")


def chain(template: str | None, templates: Mapping[str, Template]) -> list[Layer]:
    """Template layers from the root of the chain down to `template` (cycles are
    rejected by parse_templates)."""
    layers: list[Layer] = []
    current = template
    while current is not None:
        tmpl = templates[current]
        layers.insert(0, Layer(f"template {tmpl.name}", tmpl.values))
        current = tmpl.inherits
    return layers


# --- resolution -------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    settings: PoolSettings
    origin: dict[str, str]      # setting -> label of the layer that set it (absent: default)

    def show(self, key: str) -> str:
        """`key = value`, with where it came from unless the pool set it itself."""
        value = getattr(self.settings, key)
        origin = self.origin.get(key)
        if origin is None:
            return f"{key} = {value} (default)"
        return f"{key} = {value}" + ("" if origin == "the pool" else f" (from {origin})")


def resolve(layers: list[Layer]) -> Resolved:
    """Apply layers in order (later wins; ini tables merge key by key)."""
    values: dict[str, Any] = {}    # Any: checked per key by parse_settings
    ini: dict[str, dict[str, str]] = {key: {} for key in INI_TABLES}
    origin: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.values.items():
            origin[key] = layer.label
            if key in ini and isinstance(value, dict):
                ini[key].update(value)
            elif key == "php_extensions":
                values[key] = _more_extensions(values.get(key, ()), value)
            else:
                values[key] = value
    for key, entries in ini.items():
        values[key] = tuple(sorted(entries.items()))
    return Resolved(dataclasses.replace(PoolSettings(), **values), origin)


def _more_extensions(have: Any, more: Any) -> Any:
    """php_extensions add up along the chain; "all" anywhere wins."""
    if extensions.ALL in (have, more):
        return extensions.ALL
    return (*have, *(e for e in more if e not in have))


def check_pm(at: At, res: Resolved, own: Mapping[str, object]) -> None:
    """Process-manager rules on resolved settings; `own` are the pool's own keys."""
    s = res.settings
    for key, mode in PM_ONLY.items():
        if key in own and s.pm != mode:
            at.sub(key).fail(f"{key} applies only to pm = {mode!r}, but this pool resolves "
                             f"to {res.show('pm')}", f"remove {key} or set pm = {mode!r}")
    if s.pm == "dynamic":
        _check_dynamic(at, res)
    if s.activation and s.pm != "ondemand":
        at.sub("activation").fail(
            f"socket activation needs pm = 'ondemand', but this pool resolves to "
            f"{res.show('pm')} (its workers never all go idle, so its master never sleeps)",
            "remove activation or set pm = 'ondemand'")
    if s.pm == "ondemand" and s.idle_timeout < 1:
        at.sub("idle_timeout").fail(f"{res.show('idle_timeout')} must be at least 1 second",
                                    'set idle_timeout = "10s" or more')


def _check_dynamic(at: At, res: Resolved) -> None:
    s = res.settings
    if s.max_spare < s.min_spare:
        at.sub("max_spare").fail(
            f"{res.show('max_spare')} is smaller than {res.show('min_spare')}",
            "set max_spare >= min_spare")
    if s.max_spare > s.max_children:
        at.sub("max_spare").fail(
            f"{res.show('max_spare')} is larger than {res.show('max_children')}",
            "lower max_spare or raise max_children on this pool")
    if s.start_servers and not s.min_spare <= s.start_servers <= s.max_spare:
        at.sub("start_servers").fail(
            f"{res.show('start_servers')} is outside [min_spare, max_spare] = "
            f"[{s.min_spare}, {s.max_spare}]",
            "set start_servers between min_spare and max_spare, or 0 for FPM's default")
