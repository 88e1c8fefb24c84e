"""`phphost check` on a jailed variant of the demo: every jail feature, spread over the
pools, works from inside the pool that declares it and is absent elsewhere; and the
probes can fail: the same host checked against a spec that drops features reports
them PRESENT, and a host applied without them, checked against the full spec, FAIL.

Local servers (tests/integration/localservers.py), all on loopback: a DNS server on
127.0.0.1:53 that the host's /etc/resolv.conf names for the duration (the jails copy
it at apply), an HTTPS server whose throwaway CA is in the host's trust store for the
duration (the jails copy the bundle at apply), MariaDB (started only if installed and
not running) with a unix_socket login per pool user, and check's own SMTP sink on a
free loopback port that the mail pools' `jail.smtp` names. Everything is restored and
examples/demo.toml re-applied at the end.
"""

from __future__ import annotations

import contextlib
import glob
import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from phphost.exitcodes import ExitCode
from phphost.spec.loader import load_spec
from tests.integration import hostkit, localservers

DEMO = hostkit.ROOT / "examples" / "demo.toml"
DNS_NAME = "probe.phphost.test"
DNS_ADDR = "127.0.0.7"

# every feature is declared by some pool and missing from others
FULL = {
    "files": ("dns", "tls", "sessions", "mysql"),
    "chords": ("iconv", "locale", "shell", "mail", "phplibs"),   # mail with a real /bin/sh
    "blog": ("dns", "tls", "mail", "sessions", "proc"),   # mail with the mail-only /bin/sh
    "search": (),                                         # base only
}
# the variant drops each feature from one pool that has it
DROPPED = {
    "files": ("dns", "mysql"),
    "chords": ("iconv", "locale", "shell"),
    "blog": ("tls", "mail", "sessions", "proc"),
}

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("update-ca-certificates") is None,
    reason="needs openssl and update-ca-certificates (ca-certificates)")


def spec_text(features: dict[str, tuple[str, ...]], smtp: str, https: str) -> str:
    """The demo with these features per pool; every pool may also reach the local HTTPS
    server (a loopback port, where `tls` alone allows port 443: docs/network.md)."""
    text = DEMO.read_text()
    for pool, feats in features.items():
        listed = ", ".join(f'"{f}"' for f in feats)
        text = hostkit.set_pool_key(text, f"pools.{pool}", "jail",
                                    f'{{ enabled = true, features = [{listed}], '
                                    f'smtp = "{smtp}" }}')
        text = hostkit.set_pool_key(text, f"pools.{pool}", "network",
                                    f'{{ allow = ["{https}"] }}')
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Env:
    full: str
    variant: str
    options: list[str]
    dns: localservers.DnsServer | None
    dropped: set[tuple[str, str]]
    full_features: dict[str, tuple[str, ...]]
    applied: str = ""
    outputs: dict[str, str] = field(default_factory=dict)

    def apply(self, spec: str) -> None:
        if self.applied != spec:
            self.applied = ""
            hostkit.phphost("apply", spec)
            self.applied = spec

    def check(self, spec: str, *extra: str) -> tuple[int, dict[str, Any]]:
        proc = hostkit.phphost("check", spec, "--json", *self.options, *extra, check=False)
        assert proc.stdout, f"check printed nothing (exit {proc.returncode}): {proc.stderr}"
        assert not proc.stderr, proc.stderr       # e.g. a probe it could not remove
        return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def env(host_lock: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    full = {k: v for k, v in FULL.items()}
    dropped = {(p, f) for p, fs in DROPPED.items() for f in fs}
    users = [f"php-{p}" for p in FULL]
    with contextlib.ExitStack() as stack:
        # On the way out (last in, first out): the host's resolver and trust store are
        # restored, then the demo host is applied again (so its jails copy the real
        # files), and only then MariaDB stops (if this test started it).
        have_db = stack.enter_context(localservers.mariadb(users))
        stack.callback(hostkit.phphost, "apply", str(DEMO))
        dns = None
        options = []
        if localservers.port_free(53, socket.SOCK_DGRAM):
            dns = localservers.DnsServer({DNS_NAME: DNS_ADDR})
            stack.callback(dns.close)
            stack.enter_context(localservers.host_resolver("127.0.0.1"))
            options += ["--dns-name", DNS_NAME]
        else:
            print("127.0.0.1:53 is taken: dns is checked through /etc/hosts only")
        pki = localservers.make_pki()
        stack.callback(shutil.rmtree, pki.dir, True)
        https = localservers.HttpsServer(pki)
        stack.callback(https.close)
        stack.enter_context(localservers.trusted_ca(pki.ca))
        if not have_db:
            if any("mysql" in p.jail.features for p in load_spec(str(DEMO)).pools
                   if p.name not in FULL):
                pytest.skip("MariaDB is not installed and the demo spec needs it")
            full = {p: tuple(f for f in fs if f != "mysql") for p, fs in full.items()}
            dropped.discard(("files", "mysql"))
        smtp = f"127.0.0.1:{free_port()}"
        options += ["--https-url", https.url, "--smtp-sink", smtp]
        variant = {p: tuple(f for f in fs if (p, f) not in dropped) for p, fs in full.items()}
        d = tmp_path_factory.mktemp("check")
        web = f"127.0.0.1:{https.httpd.server_address[1]}"
        e = Env(hostkit.write_spec(d, "full.toml", spec_text(full, smtp, web)),
                hostkit.write_spec(d, "variant.toml", spec_text(variant, smtp, web)),
                options, dns, dropped, full)
        yield e


def rows(data: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(p["pool"], r["feature"]): r for p in data["pools"] for r in p["rows"]}


def verdicts(data: dict[str, Any], verdict: str) -> set[tuple[str, str]]:
    return {key for key, r in rows(data).items() if r["verdict"] == verdict}


def no_probe_left() -> None:
    left = glob.glob("/var/lib/phphost/jails/*/phphost-probes") + \
        glob.glob("/var/lib/phphost-probes")
    assert not left, f"check left its probes behind: {left}"


def test_full_host_passes(env: Env) -> None:
    env.apply(env.full)
    status, data = env.check(env.full)
    text = hostkit.phphost("check", env.full, *env.options).stdout
    print(text)
    failed = {k: r for k, r in rows(data).items() if r["verdict"] not in ("ok", "absent")}
    assert status == ExitCode.OK and not failed, failed
    for pool, feats in env.full_features.items():
        for feature in ("dns", "tls", "mail", "sessions", "iconv", "locale", "proc",
                        "mysql", "shell", "phplibs"):
            row = rows(data)[(pool, feature)]
            assert row["verdict"] == ("ok" if feature in feats else "absent"), (pool, row)
    for pool in env.full_features:
        for base in ("user", "tmp", "zoneinfo"):
            assert rows(data)[(pool, base)]["verdict"] == "ok"
    mail = rows(data)[("chords", "mail")]["detail"]
    assert "MAIL FROM:<phphost-check-sender@phphost.test>" in mail
    assert "From: Real Name <phphost-check-from@phphost.test>" in mail
    if env.dns is not None:
        assert f"-> {DNS_ADDR}" in rows(data)[("files", "dns")]["detail"]
        asked = [name for name, _qtype in env.dns.queries]
        assert asked.count(DNS_NAME) >= 3      # files, blog and the host's own lookup
    assert "pool files (user php-files, jailed)" in text
    no_probe_left()


def test_undeclared_but_present_features_fail(env: Env) -> None:
    env.apply(env.full)
    status, data = env.check(env.variant)
    assert status == ExitCode.CHECK_FAILED
    assert verdicts(data, "PRESENT") == env.dropped
    assert not verdicts(data, "FAIL") and not verdicts(data, "ERROR")


def test_declared_but_missing_features_fail(env: Env) -> None:
    env.apply(env.variant)
    status, data = env.check(env.full)
    assert status == ExitCode.CHECK_FAILED
    assert verdicts(data, "FAIL") == env.dropped, {
        k: rows(data)[k]["detail"] for k in verdicts(data, "FAIL") ^ env.dropped}
    assert not verdicts(data, "PRESENT") and not verdicts(data, "ERROR")
    status, data = env.check(env.variant)
    assert status == ExitCode.OK
    assert env.dropped <= verdicts(data, "absent")
    no_probe_left()


def test_only_one_pool(env: Env) -> None:
    status, data = env.check(env.full, "--pool", "search")
    assert status == ExitCode.OK and [p["pool"] for p in data["pools"]] == ["search"]


def test_unknown_pool_is_an_error(env: Env) -> None:
    proc = hostkit.phphost("check", env.full, "--pool", "nope", check=False)
    assert proc.returncode != 0 and "no such pool" in proc.stderr
