"""Network policy per pool (docs/network.md): the spec key, the rendered nftables
table, and when plan loads, keeps or deletes it. Pure."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from phphost import layout
from phphost.errors import SpecError
from phphost.facts.gather import Facts
from phphost.facts.state import State
from phphost.plan import actions as A
from phphost.plan.desired import desired_state
from phphost.plan.destroy import make_destroy_plan
from phphost.plan.planner import make_plan
from phphost.render.nftables import digest, parse_resolvers, pool_rules, render_nftables
from phphost.spec.loader import parse_spec
from phphost.spec.model import Model

SPEC = """
[tenants.acme]
home = "/srv/www/acme"

[pools.web]
tenant = "acme"
jail = {{ features = [{features}], smtp = "{smtp}" }}
{extra}
"""


def model(features: str = "", extra: str = "", smtp: str = "127.0.0.1:25") -> Model:
    return parse_spec(textwrap.dedent(SPEC.format(features=features, extra=extra, smtp=smtp)),
                      "t.toml")


def spec_error(extra: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        model(extra=extra)
    return info.value


# --- spec ---------------------------------------------------------------------------------


def test_allow_normalised_and_deduped() -> None:
    m = model(extra='network = { allow = ["127.0.0.1:6379", "[::1]:11211", "10.0.0.0/8:5432", '
              '"[fd00::/8]:5432", "127.0.0.1:6379"] }')
    assert m.pools[0].network.allow == ("127.0.0.1:6379", "[::1]:11211", "10.0.0.0/8:5432",
                                        "[fd00::/8]:5432")


def test_default_allows_nothing_extra() -> None:
    assert model().pools[0].network.allow == ()


@pytest.mark.parametrize("bad, words", [
    ('"localhost:6379"', ("not an IP address",)),
    ('"127.0.0.1"', ("not an IP address",)),
    ('"127.0.0.1:70000"', ("70000",)),
    ('"10.0.0.1/8:5432"', ("host bits",)),
    ('"127.0.0.1:25"', ("port 25 is for mail", "'mail' jail feature")),
    ('"[::1]:587"', ("port 587",)),
    ('"0.0.0.0/0:465"', ("port 465",)),
])
def test_bad_allow_names_the_key(bad: str, words: tuple[str, ...]) -> None:
    err = spec_error(f"network = {{ allow = [{bad}] }}")
    assert err.key == "pools.web.network.allow[0]", str(err)
    for word in words:
        assert word in str(err), str(err)


def test_unknown_network_key() -> None:
    assert spec_error('network = { deny = [] }').key.startswith("pools.web.network")


def test_mail_group_is_reserved() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec('[tenants.acme]\nhome = "/srv/www/acme"\ngroup = "phphost-mail"\n', "t.toml")
    assert info.value.key == "tenants.acme.group"


# --- rendering ----------------------------------------------------------------------------


def test_resolvers_parsed() -> None:
    text = "# x\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\nnameserver bogus\nsearch x\n"
    assert parse_resolvers(text) == ("10.0.0.53", "fe80::1")


def test_base_pool_reaches_nothing() -> None:
    rules = pool_rules(model().pools[0], ("10.0.0.53",))
    assert rules == ["meta l4proto tcp reject with tcp reset  # anything else: refused at once",
                     "reject with icmpx admin-prohibited"]


def test_features_and_allow_become_rules_before_the_reject() -> None:
    m = model('"dns", "tls", "mail"', 'network = { allow = ["127.0.0.1:6379", "[::1]:11211"] }',
              smtp="127.0.0.1:2525")
    rules = [r.split("  #")[0] for r in pool_rules(m.pools[0], ("10.0.0.53", "::1"))]
    assert rules == [
        "ip daddr { 10.0.0.53 } meta l4proto { tcp, udp } th dport 53 accept",
        "ip6 daddr { ::1 } meta l4proto { tcp, udp } th dport 53 accept",
        "tcp dport 443 accept",
        'meta skgid "phphost-mail" ip daddr 127.0.0.1 tcp dport 2525 accept',
        "ip daddr 127.0.0.1 tcp dport 6379 accept",
        "ip6 daddr ::1 tcp dport 11211 accept",
        "meta l4proto tcp reject with tcp reset",
        "reject with icmpx admin-prohibited",
    ]


def test_mail_relay_by_name_any_address() -> None:
    rules = pool_rules(model('"dns", "mail"', smtp="relay.example.org:25").pools[0], ())
    assert 'meta skgid "phphost-mail" tcp dport 25 accept' in [r.split("  #")[0] for r in rules]


def test_table_replaces_itself_and_jumps_per_pool_user() -> None:
    text = render_nftables(model(), ())
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert lines[:3] == ["table inet phphost", "delete table inet phphost",
                         "table inet phphost {"]
    assert "\t\tct state established,related accept" in lines
    # one hashed lookup a packet, at any number of pools
    assert '\t\t\t"php-web" : jump pool-web' in lines
    assert "\t\tmeta skuid vmap @pools" in lines
    # a pool answering a connection someone else opened (PHP listening on a port) is
    # dropped before established traffic is accepted
    serve = lines.index("\t\tct direction reply meta skuid @pool_users drop")
    assert serve < lines.index("\t\tct state established,related accept")
    assert '\t\t\t"php-web"' in lines[:lines.index("\tmap pools {")]
    assert "\tchain pool-web {" in lines


def test_the_map_changes_only_by_transactions() -> None:
    """The launchers skip their policy check while the kernel's ruleset generation is
    the one they checked in (launch.c), which only a transaction raises: the table has
    nothing that changes without one (element timeouts, dynamic updates from the
    packet path, an owner whose exit removes it)."""
    text = render_nftables(model(features='"mail", "dns"', extra='network = { allow = '
                                 '["127.0.0.1:6379"] }'), ())
    for word in ("timeout", "dynamic", "owner", "update @", "add @", "persist"):
        assert word not in text, word


def test_no_pools_no_empty_elements() -> None:
    """nft refuses `elements = { }`: a host without pools renders the set and map bare."""
    text = render_nftables(dataclasses.replace(model(), pools=()), ())
    assert "elements" not in text and "\tmap pools {" in text


def test_desired_has_policy_file_and_mail_group() -> None:
    d = desired_state(model('"mail"'), resolvers=())
    policy = next(f for f in d.files if f.path == layout.NFT_CONF)
    assert policy.mode == 0o600 and "pool-web" in policy.content
    assert layout.MAIL_GROUP in d.groups
    assert layout.MAIL_GROUP not in desired_state(model(), resolvers=()).groups


# --- plan ---------------------------------------------------------------------------------

LISTING = "table inet phphost {\n}\n"


def plan_for(m: Model, **facts: object) -> A.Plan:
    d = desired_state(m, resolvers=())
    base: dict[str, object] = {"files": {f.path: f.content for f in d.files}}
    base.update(facts)
    return make_plan(d, Facts(**base), State())  # type: ignore[arg-type]


def loads(plan: A.Plan) -> list[str]:
    return [a.reason for a in plan.actions if isinstance(a, A.LoadNftables)]


def test_loaded_and_unchanged_is_a_noop() -> None:
    plan = plan_for(model(), nft_live=LISTING, nft_loaded=digest(LISTING))
    assert loads(plan) == []
    assert "nftables table inet phphost: as last loaded" in plan.noops


def test_missing_or_flushed_table_is_loaded_again() -> None:
    assert loads(plan_for(model(), nft_live=None)) == ["table inet phphost is not loaded"]
    flushed = "table inet phphost {\n\tchain output {\n\t}\n}\n"
    assert loads(plan_for(model(), nft_live=flushed, nft_loaded=digest(LISTING))) == [
        "live table inet phphost differs from what phphost loaded"]


def test_changed_file_is_written_then_loaded() -> None:
    d = desired_state(model(), resolvers=())
    plan = plan_for(model(), files={f.path: f.content for f in d.files} | {layout.NFT_CONF: "x"},
                    nft_live=LISTING, nft_loaded=digest(LISTING))
    write = next(a for a in plan.actions if isinstance(a, A.WriteFile)
                 and a.path == layout.NFT_CONF)
    assert "-x" in write.diff() and "+table inet phphost" in write.diff()
    load = plan.one(A.LoadNftables)
    assert load is not None and load.content == write.content
    assert loads(plan) == ["its file changes"]


def test_no_pools_left_deletes_the_table() -> None:
    empty = parse_spec("", "t.toml")
    plan = plan_for(empty, nft_live=LISTING)
    assert plan.one(A.UnloadNftables) is not None
    assert plan_for(empty).one(A.UnloadNftables) is None


def test_destroy_deletes_the_table() -> None:
    m = model()
    d = desired_state(m, resolvers=())
    facts = Facts(files={f.path: f.content for f in d.files}, nft_live=LISTING)
    plan = make_destroy_plan(d, facts, State(pools=("web",)), purge=False)
    assert plan.one(A.UnloadNftables) is not None
    assert any(isinstance(a, A.RemoveFile) and a.path == layout.NFT_CONF for a in plan.actions)


# --- rollback -----------------------------------------------------------------------------


def test_rollback_reloads_the_old_policy_or_deletes_the_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from phphost.host import journal as journal_mod
    from phphost.host import nftables

    calls: list[tuple[str, str | None]] = []
    monkeypatch.setattr(nftables, "load_text", lambda text: calls.append(("load", text)))
    monkeypatch.setattr(nftables, "delete", lambda: calls.append(("delete", None)))
    j = journal_mod.Journal(str(tmp_path / "journal"))
    j.begin()
    j.record({"k": "nft", "name": "inet phphost", "old": None})
    j.record({"k": "nft", "name": "inet phphost", "old": "table inet phphost\n"})
    undone = j.rollback()
    assert calls == [("load", "table inet phphost\n"), ("delete", None)]
    assert undone == ["nft inet phphost", "nft inet phphost"]


# --- verify's network family: pure parts ---------------------------------------------------


def test_verify_targets() -> None:
    from phphost.verify import attacks_network as net

    pool = model('"mail"', smtp="127.0.0.2:2525").pools[0]
    assert net.smtp_targets(pool) == [("127.0.0.1", 25), ("127.0.0.1", 465),
                                      ("127.0.0.1", 587), ("127.0.0.2", 2525)]
    assert net.smtp_targets(model().pools[0]) == [("127.0.0.1", 25), ("127.0.0.1", 465),
                                                  ("127.0.0.1", 587)]
    allowed = model(extra='network = { allow = ["127.0.0.1:80"] }').pools[0]
    assert net.undeclared_targets(allowed, 80) == [("127.0.0.1", 0), ("::1", 0)]
    assert ("127.0.0.1", 8080) in net.undeclared_targets(allowed, 8080)


def test_verify_distrusts_the_probe_answer() -> None:
    from phphost.verify import attacks_network as net
    from phphost.verify.answers import HostileAnswer

    sent = [("127.0.0.1", 25)]
    good = {"results": [{"host": "127.0.0.1", "port": 25, "connected": False, "error": "x"}]}
    assert net.results(good, sent, "web")[0]["connected"] is False
    for bad in ({"results": []}, {"results": [{"host": "127.0.0.1", "port": 26,
                                               "connected": False}]},
                {"results": [{"host": "127.0.0.1", "port": 25, "connected": "no"}]}):
        with pytest.raises(HostileAnswer):
            net.results(bad, sent, "web")


def test_listener_counts_connections_that_arrived() -> None:
    import socket

    from phphost.verify.attacks_network import listeners

    with listeners([("127.0.0.1", 0)]) as ours:
        (target, lst), = ours.items()
        assert target == ("127.0.0.1", lst.port) and lst.port > 0
        for _ in range(2):
            socket.create_connection(target, timeout=2).close()
        assert lst.arrived() == 2
        assert lst.arrived() == 0


# --- audit PHA025 -------------------------------------------------------------------------


def test_audit_network_policy() -> None:
    from phphost.audit.facts import AuditFacts
    from phphost.audit.rules_network import network_policy
    from phphost.facts.accounts import Account, AccountFacts

    m = model()
    accounts = AccountFacts(users={"php-web": Account("php-web", 995, ("acme",))})
    # as `nft list table` prints it: uids, a map's elements on one line
    live = render_nftables(m, ()).replace('"php-web"', "995")
    live = "\n".join(ln for ln in live.splitlines()[5:] if not ln.strip().startswith("#"))
    live = live.replace("elements = {\n\t\t\t995 : jump pool-web\n\t\t}",
                        "elements = { 995 : jump pool-web }")
    assert "elements = { 995 : jump pool-web }" in live

    def found(listing: str | None, checked: bool = True) -> list[str]:
        facts = AuditFacts(accounts=accounts, nft_checked=checked, nft_listing=listing)
        return [f"{f.where}: {f.problem}" for f in network_policy(m, facts)]
    assert found(live) == []
    assert found(None, checked=False) == []
    assert found(None) == ["inet phphost: table inet phphost is not loaded: every pool's PHP "
                           "reaches any address and port, SMTP on port 25 included"]
    flushed = live.replace("\t\treject with icmpx admin-prohibited\n", "")
    assert [f.split(":")[0] for f in found(flushed)] == ["pools.web"]
    assert [f.split(":")[0] for f in found(live.replace("995 : jump", "1 : jump"))] == [
        "pools.web"]
    assert [f.split(":")[0] for f in found(live.replace("jump pool-web }", "accept }"))] == [
        "pools.web"]
    wrapped = live.replace("{ 995 : jump pool-web }",
                           "{ 1 : jump pool-x, 2 : jump pool-y,\n\t\t\t     995 : jump pool-web }")
    assert found(wrapped) == []
