"""phphost check's pure parts: verdicts, judging probe answers, the table, JSON,
probe arguments and placement."""

from __future__ import annotations

import json
from typing import Any

import pytest

from phphost.check import judge as J
from phphost.check.result import (
    CHECKS,
    Outcome,
    PoolReport,
    Report,
    Row,
    Verdict,
    exit_status,
    report_json,
    row_of,
    verdict_of,
)
from phphost.check.runner import pool_facts, probe_text
from phphost.check.smtp import Message
from phphost.check.table import render_report, summary
from phphost.exitcodes import ExitCode
from phphost.spec.loader import parse_spec
from phphost.verify.probes import probe_dir

TOKEN = "check-abc"  # noqa: S105 - a run id, not a password
JAILED = J.PoolFacts("p", "php-p", "t", True, frozenset({"base", "dns", "mail", "sessions"}),
                     "127.0.0.1:2525")
PLAIN = J.PoolFacts("q", "php-q", "t", False, frozenset({"dns"}), "127.0.0.1:25")
EXPECT = J.Expect(TOKEN, dns_name="probe.test", dns_host=("127.0.0.7",),
                  https_url="https://127.0.0.1:4443/", smtp_sink="127.0.0.1:2525",
                  mysqld_running=True)


# ---------------------------------------------------------------- verdicts


@pytest.mark.parametrize(("declared", "outcome", "verdict"), [
    (True, Outcome(True, "d"), Verdict.OK),
    (True, Outcome(False, "d"), Verdict.FAIL),
    (True, Outcome(True, "d", wrong="w"), Verdict.FAIL),
    (None, Outcome(True, "d"), Verdict.OK),
    (None, Outcome(False, "d"), Verdict.FAIL),
    (False, Outcome(False, "d"), Verdict.ABSENT),
    (False, Outcome(True, "d"), Verdict.PRESENT),
    (False, Outcome(True, "d", wrong="w"), Verdict.PRESENT),   # there, even if odd
    (True, Outcome(False, "d", skip="no mysqld"), Verdict.SKIPPED),
    (False, Outcome(False, "d", skip="no mysqld"), Verdict.ABSENT),  # skip is for declared
    (False, Outcome(True, "d", skip="no mysqld"), Verdict.PRESENT),
])
def test_verdict_table(declared: bool | None, outcome: Outcome, verdict: Verdict) -> None:
    assert verdict_of(declared, outcome) is verdict


def test_row_detail_says_what_matters() -> None:
    assert row_of("x", True, Outcome(True, "fine", wrong="bad")).detail == "bad"
    assert row_of("x", True, Outcome(False, "why", skip="later")).detail == "later"
    assert row_of("x", False, Outcome(True, "seen", wrong="bad")).detail == "seen"


def _report(*rows: Row) -> Report:
    return Report("s.toml", "r1", (PoolReport("p", "php-p", True, rows),))


def test_exit_status_and_failures() -> None:
    ok = _report(Row("dns", True, Verdict.OK, ""), Row("tls", False, Verdict.ABSENT, ""),
                 Row("mysql", True, Verdict.SKIPPED, ""), Row("proc", None, Verdict.NA, ""))
    assert not ok.failed and exit_status(ok) == ExitCode.OK
    for bad in (Verdict.FAIL, Verdict.PRESENT, Verdict.ERROR):
        report = _report(Row("dns", True, Verdict.OK, ""), Row("tls", False, bad, ""))
        assert report.failed and exit_status(report) == ExitCode.CHECK_FAILED


def test_json_round_trips() -> None:
    report = _report(Row("dns", True, Verdict.OK, "a"), Row("tls", False, Verdict.PRESENT, "b"))
    data = json.loads(report_json(report))
    assert data["failed"] is True
    assert data["counts"]["PRESENT"] == 1 and data["counts"]["ok"] == 1
    assert data["pools"][0]["rows"][1] == {"feature": "tls", "declared": False,
                                           "verdict": "PRESENT", "detail": "b"}


# ---------------------------------------------------------------- table


def test_table_has_a_row_per_check_and_a_summary() -> None:
    report = _report(Row("user", None, Verdict.OK, "runs as php-p:t"),
                     Row("dns", True, Verdict.FAIL, "x" * 300),
                     Row("tls", False, Verdict.ABSENT, "no CA"),
                     Row("mail", False, Verdict.PRESENT, "sendmail there"))
    text = render_report(report)
    lines = text.splitlines()
    assert lines[0] == "phphost check s.toml (run r1)"
    assert "pool p (user php-p, jailed)" in lines
    head = next(ln for ln in lines if ln.strip().startswith("feature"))
    assert head.split() == ["feature", "declared", "result", "detail"]
    row = {ln.split()[0]: ln for ln in lines
           if ln.startswith("  ") and not ln.startswith("  feature")}
    assert row["user"].split()[1:3] == ["always", "ok"]
    assert "absent as expected" in row["tls"] and row["tls"].split()[1] == "no"
    assert "PRESENT though not declared" in row["mail"]
    assert row["dns"].endswith("...") and len(row["dns"]) < 200
    # the result column starts at the same offset in every row
    col = head.index("result")
    assert {ln[col:].split()[0] for ln in row.values()} == {"ok", "FAIL", "absent", "PRESENT"}
    assert lines[-1] == summary(report)
    assert "2 FAILED" in lines[-1]


def test_table_shows_no_control_character_of_a_pools_answer() -> None:
    """Attacker review: a detail quotes the pool's answer (JSON "\\u001b" is ESC), and
    the table printed it raw to the admin's terminal."""
    outcome = J.judge_user({"user": "php-p\x1b]0;pwned\x07\x1b[2J", "group": "t", "uid": 1,
                            "gid": 2}, JAILED, EXPECT)
    text = render_report(_report(row_of("user", None, outcome)))
    assert "php-p?]0;pwned??[2J:t" in text
    assert not any((ord(c) < 32 and c != "\n") or 0x7f <= ord(c) <= 0x9f for c in text)


def test_summary_when_all_pass() -> None:
    report = _report(Row("dns", True, Verdict.OK, ""), Row("tls", None, Verdict.NA, ""))
    assert summary(report) == "1 pools: 1 ok, 1 n/a: all checks passed"


# ---------------------------------------------------------------- judging


def judge(check: str, answer: dict[str, Any], pool: J.PoolFacts = JAILED,
          expect: J.Expect = EXPECT) -> Row:
    report = J.judge_pool(pool, expect, J.Answers({check: answer}))
    return next(r for r in report.rows if r.feature == check)


def test_unjailed_pool_runs_base_checks_only() -> None:
    assert J.tests_for(PLAIN) == ["user", "tmp", "zoneinfo"]
    assert J.tests_for(JAILED) == list(CHECKS)
    report = J.judge_pool(PLAIN, EXPECT, J.Answers({}))
    rows = {r.feature: r for r in report.rows}
    assert [r.feature for r in report.rows] == list(CHECKS)
    assert rows["dns"].verdict is Verdict.NA and rows["dns"].declared is True
    assert rows["dns"].detail == "pool not jailed"
    assert rows["tls"].declared is False
    assert rows["user"].verdict is Verdict.ERROR     # base checks run (here: no answer)


def test_a_probe_that_did_not_answer_is_an_error() -> None:
    report = J.judge_pool(JAILED, EXPECT, J.Answers({"dns": "probe failed (status 500)"}))
    row = next(r for r in report.rows if r.feature == "dns")
    assert row.verdict is Verdict.ERROR and "500" in row.detail
    assert judge("iconv", {"thrown": True, "error": "Error: boom"}).verdict is Verdict.ERROR


def test_user() -> None:
    good = {"user": "php-p", "group": "t", "uid": 990, "gid": 990}
    assert judge("user", good).verdict is Verdict.OK
    assert judge("user", {**good, "group": "other"}).verdict is Verdict.FAIL
    row = judge("user", {"user": None, "uid": 990, "error": ""})
    assert row.verdict is Verdict.FAIL and "no passwd entry" in row.detail


def test_tmp_and_zoneinfo() -> None:
    assert judge("tmp", {"works": True, "dir": "/tmp"}).verdict is Verdict.OK
    assert judge("tmp", {"works": False, "dir": "/tmp", "error": "EACCES"}).verdict \
        is Verdict.FAIL
    want = J.zone_expected(J.ZONE, J.STAMPS)
    assert want == ["2023-11-14 17:13:20 EST -05:00", "2024-07-03 05:46:40 EDT -04:00"]
    assert judge("zoneinfo", {"formatted": want}).verdict is Verdict.OK
    row = judge("zoneinfo", {"formatted": ["2023-11-14 22:13:20 UTC +00:00", want[1]]})
    assert row.verdict is Verdict.FAIL and "zoneinfo" in row.detail


def test_dns() -> None:
    assert judge("dns", {"addresses": ["127.0.0.7"]}).verdict is Verdict.OK
    wrong = judge("dns", {"addresses": ["10.0.0.1"]})
    assert wrong.verdict is Verdict.FAIL and "differs from the host" in wrong.detail
    missing = {"addresses": None, "resolv_conf": False, "hosts": False, "raw": None}
    raw = judge("dns", {**missing, "raw": ["127.0.0.7"]})
    assert raw.verdict is Verdict.FAIL and "dns_get_record() still gets 127.0.0.7" in raw.detail
    assert judge("dns", missing).verdict is Verdict.FAIL
    undeclared = J.PoolFacts("p", "php-p", "t", True, frozenset(), "127.0.0.1:25")
    assert judge("dns", missing, undeclared).verdict is Verdict.ABSENT
    assert judge("dns", {"addresses": ["10.0.0.1"]}, undeclared).verdict is Verdict.PRESENT
    # no --dns-name: localhost through /etc/hosts only
    local = J.Expect(TOKEN)
    assert judge("dns", {"addresses": ["127.0.0.1"]}, expect=local).verdict is Verdict.OK
    # the host cannot resolve the name either: nothing to compare with
    blind = J.Expect(TOKEN, dns_name="x.test", dns_host=None, dns_host_error="NXDOMAIN")
    assert judge("dns", {"addresses": None}, expect=blind).verdict is Verdict.FAIL
    row = judge("dns", {"addresses": ["1.2.3.4"]}, expect=blind)
    assert row.verdict is Verdict.SKIPPED and "NXDOMAIN" in row.detail


def test_tls() -> None:
    tls = J.PoolFacts("p", "php-p", "t", True, frozenset({"tls"}), "127.0.0.1:25")
    good = {"stream": {"ok": True, "bytes": 22}, "curl": {"ok": True, "bytes": 22},
            "cafile": "/etc/ssl/certs/ca-certificates.crt", "ca_certs": 140}
    assert judge("tls", good, tls).verdict is Verdict.OK
    half = {**good, "curl": {"ok": False, "error": "SSL certificate problem"}}
    row = judge("tls", half, tls)
    assert row.verdict is Verdict.FAIL and "SSL certificate problem" in row.detail
    assert judge("tls", {**good, "curl": None}, tls).verdict is Verdict.OK   # no curl ext
    failed = {"stream": {"ok": False, "error": "verify failed"},
              "curl": {"ok": False, "error": "x"}, "ca_certs": None}
    assert judge("tls", failed, tls).verdict is Verdict.FAIL
    assert judge("tls", failed).verdict is Verdict.ABSENT          # JAILED lacks tls
    assert judge("tls", half).verdict is Verdict.PRESENT
    no_url = J.Expect(TOKEN)
    assert judge("tls", {"ca_certs": 140}, tls, no_url).verdict is Verdict.OK
    assert judge("tls", {"ca_certs": None}, tls, no_url).verdict is Verdict.FAIL


def _mail(msg: Message | None, answer: dict[str, Any], pool: J.PoolFacts = JAILED,
          expect: J.Expect = EXPECT) -> Row:
    captured = (msg,) if msg else ()
    report = J.judge_pool(pool, expect, J.Answers({"mail": answer}, captured))
    return next(r for r in report.rows if r.feature == "mail")


GOOD_MAIL = Message(J.MAIL_SENDER, (J.MAIL_TO,),
                    f"To: {J.MAIL_TO}\r\nFrom: {J.MAIL_FROM_HEADER}\r\n\r\nbody\r\n".encode())


def test_mail_through_the_sink() -> None:
    sent = {"sent": True, "sendmail": True}
    assert _mail(GOOD_MAIL, sent).verdict is Verdict.OK
    row = _mail(Message("php-p@host", (J.MAIL_TO,), GOOD_MAIL.data), sent)
    assert row.verdict is Verdict.FAIL and "MAIL FROM:<php-p@host>" in row.detail
    mangled = Message(J.MAIL_SENDER, (J.MAIL_TO,), b"From: phphost-check-from@phphost.test\r\n")
    assert "From:" in _mail(mangled, sent).detail
    assert _mail(mangled, sent).verdict is Verdict.FAIL
    row = _mail(None, sent)
    assert row.verdict is Verdict.FAIL and "nothing reached the sink" in row.detail
    assert _mail(None, {"sent": False, "sendmail": True}).verdict is Verdict.FAIL
    undeclared = J.PoolFacts("p", "php-p", "t", True, frozenset(), "127.0.0.1:2525")
    assert _mail(None, {"sent": False, "sendmail": False}, undeclared).verdict \
        is Verdict.ABSENT
    # the mailer is there even though the SMTP server could not be reached
    assert _mail(None, {"sent": False, "sendmail": True}, undeclared).verdict \
        is Verdict.PRESENT


def test_mail_modes() -> None:
    assert J.mail_args(JAILED, EXPECT)["send"] is True
    other = J.PoolFacts("p", "php-p", "t", True, frozenset({"mail"}), "127.0.0.1:25")
    assert J.mail_args(other, EXPECT)["send"] is False          # not sending to the sink
    row = _mail(None, {"sendmail": True, "sendmail_path": "/usr/sbin/sendmail -t -i"}, other)
    assert row.verdict is Verdict.OK and "--smtp-sink" in row.detail
    real = J.Expect(TOKEN, mail_to="ops@example.org")
    args = J.mail_args(other, real)
    assert args["send"] is True and args["to"] == "ops@example.org"
    assert args["sender"] == J.MAIL_SENDER and args["from"] == J.MAIL_FROM_HEADER
    assert _mail(None, {"sent": True, "sendmail": True}, other, real).verdict is Verdict.OK
    assert _mail(None, {"sent": False, "sendmail": True}, other, real).verdict is Verdict.FAIL


def test_set_cookie_parsing() -> None:
    assert J.parse_set_cookie("PHPSESSID=abc; path=/") == {"PHPSESSID": "abc"}
    joined = "a=1; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; path=/, PHPSESSID=x; HttpOnly"
    assert J.parse_set_cookie(joined) == {"a": "1", "PHPSESSID": "x"}
    assert J.parse_set_cookie("") == {}


def _sessions(first: dict[str, Any], cookie: str | None,
              second: dict[str, Any] | str | None) -> Row:
    report = J.judge_pool(JAILED, EXPECT, J.Answers({"sessions": first}, cookie=cookie,
                                                    session2=second))
    return next(r for r in report.rows if r.feature == "sessions")


def test_sessions() -> None:
    first = {"started": True, "handler": "files", "save_path": "/var/lib/php/sessions"}
    row = _sessions(first, "PHPSESSID=x", {"value": TOKEN})
    assert row.verdict is Verdict.OK and "PHPSESSID=" not in row.detail   # no session id
    assert _sessions(first, "PHPSESSID=x", {"value": None}).verdict is Verdict.FAIL
    assert _sessions(first, None, None).verdict is Verdict.FAIL
    assert _sessions(first, "PHPSESSID=x", "status 500").verdict is Verdict.FAIL
    row = _sessions({**first, "started": False, "error": "Failed to read session data"},
                    None, None)
    assert row.verdict is Verdict.FAIL and "Failed to read" in row.detail


def test_iconv_locale_proc_shell() -> None:
    assert J.ICONV_CP1252 == "803520636166e9"
    assert judge("iconv", {"hex": J.ICONV_CP1252}).verdict is Verdict.PRESENT  # undeclared
    assert judge("iconv", {"hex": None, "error": "Wrong encoding"}).verdict is Verdict.ABSENT
    both = J.PoolFacts("p", "php-p", "t", True, frozenset({"iconv", "locale", "proc", "shell"}),
                       "127.0.0.1:25")
    assert judge("iconv", {"hex": J.ICONV_CP1252}, both).verdict is Verdict.OK
    assert judge("iconv", {"hex": "3f"}, both).verdict is Verdict.FAIL
    assert judge("locale", {"name": "C.UTF-8", "set": "C.UTF-8"}, both).verdict is Verdict.OK
    assert judge("locale", {"name": "C.UTF-8", "set": False}, both).verdict is Verdict.FAIL
    assert judge("proc", {"status_uid": 990, "visible_pids": 2}, both).verdict is Verdict.OK
    assert judge("proc", {"status_uid": None}, both).verdict is Verdict.FAIL
    assert judge("shell", {"output": "phphost-check-ok\n"}, both).verdict is Verdict.OK
    row = judge("shell", {"output": None, "bin_sh": True}, both)
    assert row.verdict is Verdict.FAIL and "mail-only" in row.detail
    assert judge("shell", {"output": None, "bin_sh": True}).verdict is Verdict.ABSENT


def test_mysql() -> None:
    db = J.PoolFacts("p", "php-p", "t", True, frozenset({"mysql"}), "127.0.0.1:25")
    connected = {"connected": True, "row": ["php-p@localhost", "10.11"], "dir_visible": True}
    assert judge("mysql", connected, db).verdict is Verdict.OK
    refused = {"connected": False, "errno": 1698, "error": "Access denied", "user": "php-p",
               "dir_visible": True}
    row = judge("mysql", refused, db)
    assert row.verdict is Verdict.OK and "refused" in row.detail
    gone = {"connected": False, "errno": 2002, "error": "No such file", "dir_visible": False}
    assert judge("mysql", gone, db).verdict is Verdict.FAIL
    assert judge("mysql", gone).verdict is Verdict.ABSENT
    assert judge("mysql", {**gone, "dir_visible": True}).verdict is Verdict.PRESENT
    no_server = J.Expect(TOKEN, mysqld_running=False)
    assert judge("mysql", gone, db, no_server).verdict is Verdict.SKIPPED
    assert judge("mysql", gone, JAILED, no_server).verdict is Verdict.ABSENT


# ---------------------------------------------------------------- probe arguments


def test_probe_args() -> None:
    assert J.probe_args("user", JAILED, EXPECT) == {"test": "identity", "token": TOKEN}
    assert J.probe_args("dns", JAILED, EXPECT)["name"] == "probe.test"
    assert J.probe_args("dns", JAILED, J.Expect(TOKEN))["name"] == "localhost"
    assert J.probe_args("sessions", JAILED, EXPECT) == {"test": "session", "token": TOKEN,
                                                        "step": 1}
    assert J.probe_args("zoneinfo", JAILED, EXPECT)["stamps"] == list(J.STAMPS)
    assert J.probe_args("mail", JAILED, EXPECT)["subject"] == f"phphost check p {TOKEN}"
    assert J.probe_args("mysql", JAILED, EXPECT)["socket"] == "/run/mysqld/mysqld.sock"
    assert set(J.TEST_OF) == set(CHECKS)


SPEC = """
[tenants.a]
home = "/srv/t/a"
[tenants.b]
home = "/srv/t/b"
[pools.a1]
tenant = "a"
jail = { enabled = false, features = ["dns"] }
[pools.b1]
tenant = "b"
jail = { enabled = true, features = ["mail", "shell"], smtp = "127.0.0.1:2525" }
[sites.a]
server_name = "a.test"
tenant = "a"
docroot = "htdocs"
pool = "a1"
[sites.b]
server_name = "b.test"
tenant = "b"
docroot = "www"
pool = "b1"
"""


def test_pool_facts_and_placement_from_a_spec() -> None:
    model = parse_spec(SPEC, "t.toml")
    a1 = pool_facts(model, model.pool("a1"))
    b1 = pool_facts(model, model.pool("b1"))
    assert not a1.jailed and a1.features == frozenset({"base", "dns"})
    assert b1.jailed and b1.smtp == "127.0.0.1:2525" and b1.group == "b"
    assert {"mail", "shell"} <= b1.features
    # the probe lives outside every docroot; a jailed pool's inside its jail
    jailed = probe_dir(model.pool("b1"), "check-r1")
    assert jailed.host == "/var/lib/phphost/jails/b1/phphost-probes/check-r1"
    assert jailed.inside == "/phphost-probes/check-r1"
    plain = probe_dir(model.pool("a1"), "check-r1")
    assert plain.host == plain.inside == "/var/lib/phphost-probes/check-r1/a1"
    for where in (jailed.host, plain.host):
        assert not any(where.startswith(s.docroot or "-") for s in model.sites)


def test_probe_text_is_the_packaged_probe() -> None:
    text = probe_text("probe.php")
    assert text.startswith("<?php\n")
    for test in set(J.TEST_OF.values()):
        assert f"'{test}' => 'check_" in text


def test_phplibs_judged_against_the_hosts_dirs() -> None:
    dirs = ("/usr/share/php", "/usr/share/javascript")
    e = J.Expect(TOKEN, phplibs_dirs=dirs, phplibs_sample="SimplePie/autoloader.php")
    libs = J.PoolFacts("p", "php-p", "t", True, frozenset({"phplibs"}), "127.0.0.1:25")
    none = J.PoolFacts("p", "php-p", "t", True, frozenset(), "127.0.0.1:25")
    good = {"dirs": {d: 3 for d in dirs}, "include_path": ".:/usr/share/php",
            "resolved": "/usr/share/php/SimplePie/autoloader.php"}
    assert J.judge_phplibs(good, libs, e).worked
    row = row_of("phplibs", True, J.judge_phplibs({**good, "resolved": None}, libs, e))
    assert row.verdict is Verdict.FAIL and "include_path" in row.detail
    half = {"dirs": {dirs[0]: 3, dirs[1]: None}}
    row = row_of("phplibs", True, J.judge_phplibs(half, libs, e))
    assert row.verdict is Verdict.FAIL and "/usr/share/javascript" in row.detail
    gone = {"dirs": {d: None for d in dirs}}
    assert row_of("phplibs", False, J.judge_phplibs(gone, none, e)).verdict is Verdict.ABSENT
    assert row_of("phplibs", False, J.judge_phplibs(good, none, e)).verdict is Verdict.PRESENT
    bare = J.Expect(TOKEN)
    assert row_of("phplibs", True, J.judge_phplibs({}, libs, bare)).verdict is Verdict.SKIPPED
    assert J.probe_args("phplibs", libs, e)["dirs"] == list(dirs)


def test_absent_mysql_row_names_the_feature_where_mariadb_runs() -> None:
    bare = J.PoolFacts("p", "php-p", "t", True, frozenset(), "127.0.0.1:25")
    answer = {"dir_visible": False, "errno": 2002, "error": "No such file or directory"}
    running = J.judge_mysql(answer, bare, J.Expect(TOKEN, mysqld_running=True))
    assert "add the jail feature 'mysql'" in running.detail and not running.worked
    stopped = J.judge_mysql(answer, bare, J.Expect(TOKEN, mysqld_running=False))
    assert "add the jail feature" not in stopped.detail
