"""check's SMTP sink: the protocol state machine (pure), then the real server on
127.0.0.1 (never any other address) fed by smtplib and by the jail mailer itself."""

from __future__ import annotations

import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from phphost.check import judge as J
from phphost.check.smtp import Message, Session, Sink, loopback_address
from phphost.launcher import mailer


def talk(session: Session, *lines: bytes) -> list[str]:
    out: list[str] = []
    for line in lines:
        out += session.feed(line)
    return out


def test_a_conversation_is_captured() -> None:
    s = Session()
    assert s.greeting().startswith("220 ")
    replies = talk(s, b"EHLO host", b"MAIL FROM:<a@b> BODY=8BITMIME", b"RCPT TO:<c@d>",
                   b"RCPT TO:<e@f>", b"DATA", b"From: Real Name <a@b>", b"Subject: hi", b"",
                   b"..dot-stuffed", b"body", b".", b"QUIT")
    assert [r[:3] for r in replies] == ["250", "250", "250", "250", "250", "250", "354",
                                        "250", "221"]
    assert s.closed
    (msg,) = s.done
    assert msg.mail_from == "a@b" and msg.rcpt_to == ("c@d", "e@f")
    assert msg.header("From") == "Real Name <a@b>" and msg.header("Subject") == "hi"
    assert msg.header("X-Missing") is None
    assert msg.data.endswith(b"\r\n.dot-stuffed\r\nbody\r\n")


def test_out_of_order_and_malformed_commands_are_refused() -> None:
    s = Session()
    assert talk(s, b"RCPT TO:<c@d>")[0].startswith("503")
    assert talk(s, b"DATA")[0].startswith("503")
    assert talk(s, b"MAIL FROM: a@b")[0].startswith("501")
    assert talk(s, b"VRFY root")[0].startswith("502")
    assert talk(s, b"MAIL FROM:<>", b"RSET", b"RCPT TO:<c@d>")[-1].startswith("503")
    assert s.done == []


def test_multiline_header_is_unfolded() -> None:
    msg = Message("a", ("b",), b"From: Real\r\n Name <a@b>\r\n\r\nx\r\n")
    assert msg.header("from") == "Real Name <a@b>"


@pytest.mark.parametrize("bad", ["10.0.0.1:25", "example.org:25", "127.0.0.1", "[::2]:25"])
def test_the_sink_listens_on_loopback_only(bad: str) -> None:
    with pytest.raises(ValueError, match=r"loopback|host:port"):
        loopback_address(bad)
    assert loopback_address("127.0.0.1:2525") == ("127.0.0.1", 2525)
    assert loopback_address("[::1]:2525") == ("::1", 2525)


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink("127.0.0.1:0")
    try:
        yield s
    finally:
        s.close()


def test_the_server_captures_what_smtplib_sends(sink: Sink) -> None:
    port = sink.server_address[1]
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.sendmail("s@x", ["r1@y", "r2@y"],
                        b"From: Real Name <f@x>\r\nSubject: t\r\n\r\nhi\r\n")
    (msg,) = sink.captured()
    assert (msg.mail_from, msg.rcpt_to) == ("s@x", ("r1@y", "r2@y"))
    assert msg.header("From") == "Real Name <f@x>"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the jail mailer")
def test_the_jail_mailer_as_php_runs_it(sink: Sink, tmp_path: Path) -> None:
    """What PHP's mail() runs: sendmail_path + ' -f sender', the message on stdin with
    the To/Subject lines PHP adds; check judges what arrives as ok."""
    binary = str(tmp_path / "sendmail")
    subprocess.run(mailer.build_argv(binary), check=True, capture_output=True, timeout=120)
    conf = tmp_path / "sendmail.conf"
    conf.write_text(mailer.render_sendmail_conf(f"127.0.0.1:{sink.server_address[1]}",
                                                "php-p@host", "host"))
    message = (f"To: {J.MAIL_TO}\nSubject: s\nFrom: {J.MAIL_FROM_HEADER}\n\nbody\n").encode()
    proc = subprocess.run([binary, "-C", str(conf), "-t", "-i", "-f", J.MAIL_SENDER],
                          input=message, capture_output=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    captured = tuple(sink.captured())
    pool = J.PoolFacts("p", "php-p", "t", True, frozenset({"mail"}),
                       f"127.0.0.1:{sink.server_address[1]}")
    expect = J.Expect("tok", smtp_sink=pool.smtp)
    outcome = J.judge_mail({"sent": True, "sendmail": True}, pool, expect, captured)
    assert outcome.worked and not outcome.wrong, outcome
