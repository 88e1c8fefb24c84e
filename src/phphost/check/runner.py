"""Run the check probe in every pool of a spec, as that pool, through its own socket,
and judge the answers. Thin: placement and FastCGI come from verify's Probes (the
probe lives in a root:<tenant group> 0750 directory only that pool can read: inside
its jail at /phphost-probes/<run>/ for a jailed pool, never under a docroot), the
judging is phphost.check.judge (pure)."""

from __future__ import annotations

import os
import secrets
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from phphost import layout
from phphost.check import judge as J
from phphost.check.result import Report
from phphost.check.smtp import Message, Sink
from phphost.facts.hostview import RealHostView
from phphost.jail.features import PHPLIBS_DIRS, phplibs_dirs
from phphost.jail.hints import current_life, hints_from_log
from phphost.spec import extensions
from phphost.spec.model import Model, Pool
from phphost.verify.errors import VerifyError
from phphost.verify.probes import JAIL_PROBE_ROOT, Probes

PROBE = "probe.php"
LOG_TAIL = 256 * 1024          # bytes of a pool's FPM log read for hints


@dataclass(frozen=True)
class Options:
    dns_name: str | None = None
    https_url: str | None = None
    smtp_sink: str | None = None
    mail_to: str | None = None
    pools: tuple[str, ...] = ()       # empty: every pool


def probe_text(_name: str) -> str:
    return (resources.files("phphost.check") / "php" / PROBE).read_text(encoding="utf-8")


def pool_facts(model: Model, pool: Pool) -> J.PoolFacts:
    return J.PoolFacts(pool.name, pool.user, model.tenant(pool.tenant).group,
                       pool.jail.enabled, frozenset(pool.jail.features), pool.jail.smtp)


def host_dns(name: str) -> tuple[tuple[str, ...] | None, str]:
    """The host's own IPv4 answer for `name` (what the jail's resolver must match)."""
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except OSError as err:
        return None, str(err)
    return tuple(sorted({str(i[4][0]) for i in infos})), ""


def mysqld_running() -> bool:
    try:
        return stat.S_ISSOCK(os.stat(layout.MYSQL_SOCKET).st_mode)
    except OSError:
        return False


def phplibs_sample(dirs: tuple[str, ...]) -> str:
    """A file directly in /usr/share/php, named relative to it (what include_path
    must find), or "" when there is none."""
    top = PHPLIBS_DIRS[0]
    if top not in dirs:
        return ""
    try:
        names = sorted(os.listdir(top))
    except OSError:
        return ""
    for name in names:
        for sub in (name, *_children(top, name)):
            if stat.S_ISREG(os.lstat(os.path.join(top, sub)).st_mode):
                return sub
    return ""


def _children(top: str, name: str) -> list[str]:
    path = os.path.join(top, name)
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        return []
    return [os.path.join(name, n) for n in sorted(os.listdir(path))[:20]]


def expectations(opts: Options, token: str) -> J.Expect:
    addrs, err = host_dns(opts.dns_name) if opts.dns_name else (None, "")
    libs = phplibs_dirs(RealHostView())
    return J.Expect(token=token, dns_name=opts.dns_name, dns_host=addrs, dns_host_error=err,
                    https_url=opts.https_url, smtp_sink=opts.smtp_sink, mail_to=opts.mail_to,
                    mysqld_running=mysqld_running(), phplibs_dirs=libs,
                    phplibs_sample=phplibs_sample(libs))


@contextmanager
def smtp_sink(server: str | None) -> Iterator[Sink | None]:
    if server is None:
        yield None
        return
    sink = Sink(server)
    try:
        yield sink
    finally:
        sink.close()


class PoolRun:
    """The probe requests of one pool."""

    def __init__(self, probes: Probes, pool: Pool, facts: J.PoolFacts, expect: J.Expect,
                 sink: Sink | None) -> None:
        self.probes, self.pool, self.facts, self.expect, self.sink = \
            probes, pool, facts, expect, sink

    def ask(self, args: dict[str, Any], cookie: str | None = None,
            ) -> tuple[dict[str, str], dict[str, Any] | str]:
        params = {"HTTP_COOKIE": cookie} if cookie else None
        try:
            _status, headers, data = self.probes.request(self.pool, PROBE, args, params)
        except VerifyError as err:
            return {}, str(err)
        return headers, data

    def sessions(self, args: dict[str, Any]) -> tuple[dict[str, Any] | str, str | None,
                                                      dict[str, Any] | str | None]:
        headers, first = self.ask(args)
        if isinstance(first, str):
            return first, None, None
        name = str(first.get("name") or "PHPSESSID")
        value = J.parse_set_cookie(headers.get("set-cookie", "")).get(name)
        if value is None:
            return first, None, None
        cookie = f"{name}={value}"
        _h, second = self.ask({"test": "session", "step": 2, "token": self.expect.token},
                              cookie)
        return first, cookie, second

    def mail_captured(self) -> tuple[Message, ...]:
        if self.sink is None:
            return ()
        subject = J.mail_args(self.facts, self.expect)["subject"]
        return tuple(m for m in self.sink.captured() if m.header("Subject") == subject)

    def answers(self) -> J.Answers:
        by_test: dict[str, dict[str, Any] | str] = {}
        cookie, second = None, None
        for check in J.tests_for(self.facts):
            args = J.probe_args(check, self.facts, self.expect)
            if check == "sessions":
                by_test[check], cookie, second = self.sessions(args)
            else:
                by_test[check] = self.ask(args)[1]
        return J.Answers(by_test, self.mail_captured(), cookie, second)


def log_tail(path: str, size: int = LOG_TAIL) -> str:
    """The end of a root-owned log (what the pool's PHP wrote there is only parsed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        end = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, end - size))
        return fh.read(size).decode("utf-8", "replace")


def pool_hints(model: Model, pool: Pool) -> tuple[str, ...]:
    """The jail features (jailed pools) and PHP extensions PHP in a pool failed for want
    of, since its master started."""
    exts = pool.settings.php_extensions
    if exts == extensions.ALL:
        if not pool.jail.enabled:
            return ()
        loaded = frozenset(extensions.KNOWN)
    else:
        loaded = frozenset(extensions.closure(exts))
    log = current_life(log_tail(layout.fpm_log(pool.name)))
    hints = hints_from_log(log, model.tenant(pool.tenant).home,
                           ignore_in=(JAIL_PROBE_ROOT, layout.PROBE_ROOT),
                           jailed=pool.jail.enabled, loaded=loaded)
    declared = frozenset(pool.jail.features)
    return tuple(h.advice(declared, pool.name) for h in hints)


def run_check(model: Model, opts: Options, run_id: str | None = None,
              ) -> tuple[Report, list[str]]:
    """(the report, what cleanup could not remove)."""
    run_id = run_id or secrets.token_hex(4)
    expect = expectations(opts, f"check-{run_id}")
    probes = Probes(model, f"check-{run_id}", source=probe_text)
    pools = [p for p in model.pools if not opts.pools or p.name in opts.pools]
    reports = []
    with smtp_sink(opts.smtp_sink) as sink:
        try:
            for pool in pools:
                facts = pool_facts(model, pool)
                answers = PoolRun(probes, pool, facts, expect, sink).answers()
                report = J.judge_pool(facts, expect, answers)
                reports.append(replace(report, hints=pool_hints(model, pool)))
        finally:
            problems = probes.cleanup()
    return Report(model.source, run_id, tuple(reports)), problems
