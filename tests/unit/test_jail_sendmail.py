"""The jail mailer (src/phphost/launcher/sendmail.c), compiled with gcc and run for real
against an SMTP sink on 127.0.0.1 (never any other address)."""

from __future__ import annotations

import os
import shutil
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from phphost.launcher import mailer

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc + libc6-dev")


@dataclass
class Session:
    helo: str = ""
    mail_from: str = ""
    rcpt: list[str] = field(default_factory=list)
    data: bytes = b""


class SinkHandler(socketserver.StreamRequestHandler):
    server: Sink

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self) -> None:
        s = Session()
        self.server.sessions.append(s)
        self.reply("220 sink ESMTP")
        while line := self.rfile.readline():
            cmd = line.decode().rstrip("\r\n")
            upper = cmd.upper()
            if upper.startswith("EHLO"):
                s.helo = cmd[5:]
                self.reply("250-sink\r\n250-8BITMIME\r\n250 SIZE 1000000")
            elif upper.startswith("MAIL FROM:"):
                s.mail_from = cmd[10:]
                self.reply("250 ok")
            elif upper.startswith("RCPT TO:"):
                addr = cmd[8:]
                if "reject" in addr:
                    self.reply("550 5.1.1 no such user")
                elif "tempfail" in addr:
                    self.reply("451 4.3.0 try later")
                else:
                    s.rcpt.append(addr)
                    self.reply("250 ok")
            elif upper == "DATA":
                self.reply("354 go on")
                s.data = self._read_data()
                self.reply("250 queued")
            elif upper == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 unknown")

    def _read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)


class Sink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SinkHandler)
        self.sessions: list[Session] = []


@pytest.fixture(scope="module")
def binary() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="phphost-sendmail-")
    os.chmod(d, 0o755)  # noqa: S103 - the no-passwd test runs it as another uid
    path = os.path.join(d, "phphost-sendmail")
    subprocess.run(mailer.build_argv(path), check=True)
    yield path
    shutil.rmtree(d)


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def conf(sink: Sink, binary: str) -> str:
    path = os.path.join(os.path.dirname(binary), f"conf-{sink.server_address[1]}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(mailer.render_sendmail_conf(f"127.0.0.1:{sink.server_address[1]}",
                                             "php-blog@web1.example.org", "web1.example.org"))
    os.chmod(path, 0o644)
    return path


def send(binary: str, args: list[str], message: bytes, argv0: str | None = None,
         **kw: object) -> subprocess.CompletedProcess[bytes]:
    argv = [argv0 or binary, *args]
    return subprocess.run(argv, executable=binary, input=message, capture_output=True,
                          timeout=30, env={}, check=False, **kw)  # type: ignore[call-overload]


MESSAGE = (b'From: "Wiki Admin" <wiki@example.org>\n'
           b'To: Alice <alice@example.org>, "Doe, John" <john@example.org>\n'
           b"Cc: undisclosed-recipients:;, bob@example.org (Bob)\n"
           b"Bcc: secret@example.org\n"
           b"Subject: hello\n"
           b"\n"
           b"line one\n"
           b".hidden dot line\n"
           b"caf\xc3\xa9\n")


def test_headers_recipients_and_sender(binary: str, conf: str, sink: Sink) -> None:
    proc = send(binary, ["-C", conf, "-t", "-i", "-f", "bounce@example.org"], MESSAGE)
    assert proc.returncode == 0, proc.stderr
    s = sink.sessions[-1]
    assert s.helo == "web1.example.org"
    assert s.mail_from == "<bounce@example.org> BODY=8BITMIME"
    assert s.rcpt == ["<alice@example.org>", "<john@example.org>", "<bob@example.org>",
                      "<secret@example.org>"]
    assert b'From: "Wiki Admin" <wiki@example.org>\r\n' in s.data     # intact
    assert b"Bcc" not in s.data
    assert s.data.startswith(b"Date: ")                               # added when missing
    assert b"\r\n.hidden dot line\r\n" in s.data and b"caf\xc3\xa9\r\n" in s.data


def test_bare_cr_cannot_end_the_data(binary: str, conf: str, sink: Sink) -> None:
    """SMTP smuggling: "\\r.\\r" in the body must reach the relay as a stuffed line, never
    as the end of the data followed by commands of the sender's choosing."""
    before = len(sink.sessions)
    body = b"To: a@example.org\n\nsmuggle\r.\rMAIL FROM:<evil@example.org>\r\n"
    proc = send(binary, ["-C", conf, "-t", "-i"], body)
    assert proc.returncode == 0, proc.stderr
    assert len(sink.sessions) == before + 1
    s = sink.sessions[-1]
    assert s.rcpt == ["<a@example.org>"]
    assert b"smuggle\r\n.\r\nMAIL FROM:<evil@example.org>\r\n" in s.data


@pytest.mark.parametrize("flags", [["-fbounce@example.org"], ["-f", "bounce@example.org"],
                                   ["-f", "Bounce <bounce@example.org>"]])
def test_sender_forms(binary: str, conf: str, sink: Sink, flags: list[str]) -> None:
    proc = send(binary, ["-C", conf, "-oi", *flags, "rcpt@example.org"], b"Subject: x\n\nx\n")
    assert proc.returncode == 0, proc.stderr
    assert sink.sessions[-1].mail_from == "<bounce@example.org>"
    assert sink.sessions[-1].rcpt == ["<rcpt@example.org>"]


def test_default_sender_and_from_added(binary: str, conf: str, sink: Sink) -> None:
    proc = send(binary, ["-C", conf, "-t"], b"To: a@example.org\nSubject: x\n\nbody\n.\nafter\n")
    assert proc.returncode == 0, proc.stderr
    s = sink.sessions[-1]
    assert s.mail_from == "<php-blog@web1.example.org>"
    assert s.data.startswith(b"From: php-blog@web1.example.org\r\n")
    assert b"after" not in s.data          # without -i a lone "." ends the message


def test_no_passwd_entry_needed(binary: str, conf: str, sink: Sink) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run as a uid without a passwd entry")
    proc = send(binary, ["-C", conf, "-t", "-i"], b"To: a@example.org\n\nx\n",
                user=54321, group=54321, extra_groups=[])
    assert proc.returncode == 0, proc.stderr
    assert sink.sessions[-1].rcpt == ["<a@example.org>"]


@pytest.mark.parametrize(("rcpt", "code", "text"), [
    ("reject@example.org", 69, b"answered '550 5.1.1 no such user' to RCPT TO:<reject@"),
    ("tempfail@example.org", 75, b"answered '451 4.3.0 try later'"),
])
def test_smtp_refusal(binary: str, conf: str, sink: Sink, rcpt: str, code: int,
                      text: bytes) -> None:
    proc = send(binary, ["-C", conf, rcpt], b"Subject: x\n\nx\n")
    assert proc.returncode == code
    assert text in proc.stderr and proc.stderr.startswith(b"sendmail: ")


def test_smtp_server_down(binary: str, conf: str, sink: Sink) -> None:
    port = sink.server_address[1]
    sink.shutdown()
    sink.server_close()
    proc = send(binary, ["-C", conf, "a@example.org"], b"x\n")
    assert proc.returncode == 75
    assert f"cannot connect to SMTP server 127.0.0.1:{port}".encode() in proc.stderr


def test_usage_errors(binary: str, conf: str) -> None:
    proc = send(binary, ["-C", conf, "-t"], b"Subject: nobody\n\nx\n")
    assert proc.returncode == 64 and b"no recipients" in proc.stderr
    proc = send(binary, ["-C", conf, "-bs"], b"")
    assert proc.returncode == 64 and b"-bs is not supported" in proc.stderr
    proc = send(binary, ["-C", "/nonexistent.conf", "a@b"], b"x\n")
    assert proc.returncode == 78 and b"cannot read /nonexistent.conf" in proc.stderr


def test_mail_only_sh_runs_sendmail(binary: str, conf: str, sink: Sink) -> None:
    # what PHP's mail() does: popen("/usr/sbin/sendmail -t -i <escaped extra params>")
    cmd = f"/usr/sbin/sendmail -t -i -C '{conf}' -f\\ \"bounce@example.org\""
    proc = send(binary, ["-c", cmd], b"To: a@example.org\n\nx\n", argv0="sh")
    assert proc.returncode == 0, proc.stderr
    assert sink.sessions[-1].mail_from == "<bounce@example.org>"


@pytest.mark.parametrize("cmd", ["ls -la", "/usr/sbin/sendmail -t; id", "sendmail $(id)",
                                 "sendmail -t | cat", "echo `id`", "sendmail \"$HOME\""])
def test_mail_only_sh_refuses_anything_else(binary: str, cmd: str) -> None:
    proc = send(binary, ["-c", cmd], b"", argv0="sh")
    assert proc.returncode == 127
    assert proc.stderr.startswith(b"sh: cannot run ")
    assert b"add the 'shell' jail feature" in proc.stderr


def test_render_conf_refuses_odd_values() -> None:
    with pytest.raises(ValueError, match="one printable word"):
        mailer.render_sendmail_conf("127.0.0.1:25", "a b@c", "h")
    with pytest.raises(ValueError, match="host:port"):
        mailer.render_sendmail_conf("127.0.0.1", "a@c", "h")
    assert mailer.split_server("[::1]:587") == ("::1", 587)
