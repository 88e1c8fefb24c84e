"""The record of what was last applied (a `Model` as JSON, kept by apply in
layout.APPLIED_FILE), and the model a tenant-limited run works on: the last
applied model with only the named tenants taken from the spec. Pure.

The JSON is the model's dataclasses field by field (tuples as lists), so a new
field with a default reads from an older record; `source` and `origins` are left
out (a spec split into a directory records the same)."""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Collection, Iterable
from typing import Any

from phphost.errors import PlanError
from phphost.spec.model import Model, Pool, Site, Tenant
from phphost.spec.validate import is_inside

_NOT_RECORDED = ("source", "origins")


def dump_model(model: Model) -> str:
    """JSON with one line per tenant, pool and site (a diff names what changed), made
    with json's C encoder: `indent` makes json use its Python one, 0.36 s of a
    1,000-tenant plan."""
    data = {f.name: _encode(getattr(model, f.name)) for f in dataclasses.fields(Model)
            if f.name not in _NOT_RECORDED}
    parts = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, list) and value:
            items = ",\n  ".join(json.dumps(v, sort_keys=True) for v in value)
            parts.append(f" {json.dumps(key)}: [\n  {items}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, sort_keys=True)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def load_model(text: str, source: str) -> Model:
    """ValueError (with what is wrong) when `text` is not a recorded model."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ValueError(f"not JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    model: Model = _decode(Model, {**data, "source": source})
    return dataclasses.replace(model, origins=())


_PLAIN = (str, int, bool, float, type(None))


def _encode(value: object) -> object:
    kind: Any = type(value)
    if kind in _PLAIN:
        return value
    names = _field_names(kind)
    if names is not None:
        return {name: _encode(getattr(value, name)) for name in names}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(_encode(v) for v in value)     # type: ignore[type-var]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


@functools.cache
def _field_names(kind: Any) -> tuple[str, ...] | None:
    """A dataclass's field names (None: not a dataclass), looked up once per class."""
    if not dataclasses.is_dataclass(kind):
        return None
    return tuple(f.name for f in dataclasses.fields(kind))


# Decoding: one function per type, made once (functools.cache) from the type hints and
# reused for every value of that type: at 1,000 tenants, a third of the time of
# walking the hints for every value.

Decoder = typing.Callable[[object], Any]


def _decode(tp: Any, value: object) -> Any:
    return _decoder(tp)(value)


@functools.cache
def _decoder(tp: Any) -> Decoder:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass_decoder(tp)
    if origin in (typing.Union, types.UnionType):
        return _optional_decoder(type(None) in args,
                                 next(a for a in args if a is not type(None)))
    if origin is tuple:
        return functools.partial(_decode_tuple, args)
    if origin in (frozenset, list):
        return functools.partial(_decode_collection, origin, args[0])
    if origin is dict:
        return functools.partial(_decode_dict, args[1])
    if origin is typing.Literal:
        return functools.partial(_decode_literal, args)
    return functools.partial(_decode_plain, tp)


def _optional_decoder(none_ok: bool, tp: Any) -> Decoder:
    def decode(value: object) -> Any:
        if value is None and none_ok:
            return None
        return _decoder(tp)(value)
    return decode


def _dataclass_decoder(cls: type) -> Decoder:
    def decode(value: object) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"{cls.__name__}: expected an object, got {value!r}")
        fields, required = _fields(cls)
        missing = [name for name in required if name not in value]
        if missing:
            raise ValueError(f"{cls.__name__}: no {', '.join(missing)} in {str(value)[:200]}")
        return cls(**{name: dec(value[name]) for name, dec in fields if name in value})
    return decode


@functools.cache
def _fields(cls: type) -> tuple[tuple[tuple[str, Decoder], ...], tuple[str, ...]]:
    """(each field's name and decoder, the fields without a default) of a dataclass;
    made at its first value, so a dataclass may name itself in its hints."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    return (tuple((f.name, _decoder(hints[f.name])) for f in fields),
            tuple(f.name for f in fields if f.default is dataclasses.MISSING
                  and f.default_factory is dataclasses.MISSING))


def _decode_collection(origin: type, tp: Any, value: object) -> Any:
    if not isinstance(value, list):
        return _decode_plain(origin, value)
    dec = _decoder(tp)
    return origin(dec(v) for v in value)


def _decode_dict(tp: Any, value: object) -> Any:
    if not isinstance(value, dict):
        return _decode_plain(dict, value)
    dec = _decoder(tp)
    return {k: dec(v) for k, v in value.items()}


def _decode_literal(allowed: tuple[Any, ...], value: object) -> Any:
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {allowed}")
    return value


def _decode_tuple(args: tuple[Any, ...], value: object) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        dec = _decoder(args[0])
        return tuple(dec(v) for v in value)
    if len(args) != len(value):
        raise ValueError(f"expected {len(args)} items, got {value!r}")
    return tuple(_decoder(a)(v) for a, v in zip(args, value, strict=True))


def _decode_plain(tp: Any, value: object) -> Any:
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (str, int, bool) and type(value) is tp:
        return value
    raise ValueError(f"expected {getattr(tp, '__name__', tp)}, got {value!r}")


# --- tenant-limited runs ------------------------------------------------------------------


def parts_of(model: Model, tenants: Collection[str]) -> tuple[list[Tenant], list[Pool],
                                                              list[Site]]:
    """The tenants named, their pools and their sites."""
    return ([t for t in model.tenants if t.name in tenants],
            [p for p in model.pools if p.tenant in tenants],
            [s for s in model.sites if s.tenant in tenants])


def limited_model(spec: Model, applied: Model, tenants: Collection[str]) -> Model:
    """The host as `applied` left it, with `tenants` (their accounts, pools and
    sites) as the spec says. [apache], [exporter] and redirect-only sites stay as
    applied. PlanError when the spec's tenants collide with another tenant's
    applied names (users, sockets, server names, homes)."""
    others, o_pools, o_sites = check_apart(spec, applied, tenants)
    mine_t, mine_p, mine_s = parts_of(spec, tenants)
    return Model(
        source=spec.source,
        tenants=_sorted(others + mine_t), pools=_sorted(o_pools + mine_p),
        sites=_sorted(o_sites + mine_s), apache=applied.apache, exporter=applied.exporter,
        origins=spec.origins)


def check_apart(spec: Model, applied: Model, tenants: Collection[str]
                ) -> tuple[list[Tenant], list[Pool], list[Site]]:
    """PlanError when the spec's version of `tenants` names what another tenant holds
    on the host (users, groups, pools, sockets, sites, host names, an overlapping
    home). A run limited to `tenants`, apply or destroy, must never reach another
    tenant's objects through a spec that hands them to the named tenant. Returns the
    other tenants, their pools and sites, as applied."""
    others = [t for t in applied.tenants if t.name not in tenants]
    o_pools = [p for p in applied.pools if p.tenant not in tenants]
    o_sites = [s for s in applied.sites if s.tenant not in tenants]
    mine_t, mine_p, mine_s = parts_of(spec, tenants)
    _check_apart(spec, mine_t, mine_p, mine_s, others, o_pools, o_sites)
    return others, o_pools, o_sites


def without(applied: Model, tenants: Collection[str], pools: Collection[str] = (),
            sites: Collection[str] = ()) -> Model:
    """`applied` without the tenants named (their pools and sites) and the pools
    and sites named: what stays on the host after a destroy."""
    return dataclasses.replace(
        applied,
        tenants=tuple(t for t in applied.tenants if t.name not in tenants),
        pools=tuple(p for p in applied.pools if p.tenant not in tenants and p.name not in pools),
        sites=tuple(s for s in applied.sites if s.tenant not in tenants and s.name not in sites))


_Named = typing.TypeVar("_Named", Tenant, Pool, Site)


def _sorted(items: Iterable[_Named]) -> tuple[_Named, ...]:
    return tuple(sorted(items, key=lambda x: x.name))


def _check_apart(spec: Model, mine_t: list[Tenant], mine_p: list[Pool], mine_s: list[Site],
                 others: list[Tenant], o_pools: list[Pool], o_sites: list[Site]) -> None:
    taken: dict[str, str] = {}
    for t in others:
        taken |= {f"tenant {t.name}": t.name, f"user {t.user}": t.name, f"group {t.group}": t.name,
                  f"user {t.group}": t.name}
    for p in o_pools:
        taken |= {f"pool {p.name}": p.tenant, f"user {p.user}": p.tenant,
                  f"socket {p.socket}": p.tenant}
    for s in o_sites:
        taken |= {f"site {s.name}": s.tenant or "(redirect)"}
        taken |= {f"host name {h}": s.tenant or "(redirect)" for h in (s.server_name, *s.aliases)}
    wants: list[tuple[str, str]] = []
    for t in mine_t:
        wants += [(f"tenants.{t.name}", w) for w in (f"user {t.user}", f"group {t.group}")]
    for p in mine_p:
        wants += [(f"pools.{p.name}", w) for w in (f"pool {p.name}", f"user {p.user}",
                                                  f"socket {p.socket}")]
    for s in mine_s:
        wants += [(f"sites.{s.name}", w) for w in
                  (f"site {s.name}", *(f"host name {h}" for h in (s.server_name, *s.aliases)))]
    for key, what in wants:
        if what in taken:
            _collision(spec, key, f"{what} belongs to tenant {taken[what]} on this host")
    for t in mine_t:
        for o in others:
            if is_inside(t.home, o.home) or is_inside(o.home, t.home):
                _collision(spec, f"tenants.{t.name}",
                           f"home {t.home} overlaps the home {o.home} of tenant {o.name}")
    _check_pool_paths(spec, mine_p, others)
    for t in mine_t:        # and the other way: another pool's mount reaching this home
        for p in o_pools:
            for m in p.jail.mounts:
                if is_inside(m.source, t.home) or is_inside(t.home, m.source):
                    _collision(spec, f"tenants.{t.name}",
                               f"home {t.home} overlaps the jail mount source {m.source} "
                               f"of pool {p.name} (tenant {p.tenant})")


def _check_pool_paths(spec: Model, mine_p: list[Pool], others: list[Tenant]) -> None:
    """The loader's checks against other tenants' homes, made again against the homes
    as applied: a spec naming only some tenants cannot see the others' homes, so its
    pools' jail mount sources and sockets are checked here (a mount of another tenant's
    home would hand the pool that tenant's files)."""
    for p in mine_p:
        for i, m in enumerate(p.jail.mounts):
            for o in others:
                if is_inside(m.source, o.home) or is_inside(o.home, m.source):
                    _collision(spec, f"pools.{p.name}",
                               f"jail.mounts[{i}]: mount source {m.source} overlaps the home "
                               f"{o.home} of tenant {o.name}")
        for o in others:
            if is_inside(p.socket, o.home):
                _collision(spec, f"pools.{p.name}",
                           f"socket {p.socket} is inside the home {o.home} of tenant {o.name}")


def _collision(spec: Model, key: str, problem: str) -> typing.NoReturn:
    raise PlanError(
        f"{spec.file_of(key)}: {key}: {problem} (as last applied). A tenant-limited run "
        "leaves other tenants as they are: rename it in the spec, or change the other "
        "tenant first (phphost apply --tenant OTHER), then run again; nothing was changed")
