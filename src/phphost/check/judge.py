"""From the probe's answers (JSON facts seen inside a pool) to one Outcome per check,
judged against what the host side expects. Pure: the runner gathers the answers and
the expectations, everything here is tested from hand-written answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from phphost import layout
from phphost.check.result import (
    BASE_CHECKS,
    CHECKS,
    Outcome,
    PoolReport,
    Row,
    Verdict,
    row_of,
)
from phphost.check.smtp import Message

ZONE = "America/New_York"
STAMPS = (1700000000, 1720000000)         # one in winter (EST), one in summer (EDT)
ICONV_TEXT = "\u20ac5 caf\u00e9"
ICONV_CP1252 = ICONV_TEXT.encode("cp1252").hex()
SHELL_WORD = "phphost-check-ok"
MYSQL_AUTH_REFUSED = (1044, 1045, 1698)   # the server answered, and refused the login
MAIL_FROM_HEADER = "Real Name <phphost-check-from@phphost.test>"
MAIL_SENDER = "phphost-check-sender@phphost.test"
MAIL_TO = "phphost-check-rcpt@phphost.test"
NOT_JAILED = "pool not jailed"

Answer = Mapping[str, Any]


@dataclass(frozen=True)
class PoolFacts:
    """What the spec says about one pool."""

    name: str
    user: str
    group: str
    jailed: bool
    features: frozenset[str]
    smtp: str


@dataclass(frozen=True)
class Expect:
    """What the host side knows or was told (command-line options)."""

    token: str
    dns_name: str | None = None
    dns_host: tuple[str, ...] | None = None    # the host's IPv4 answer for dns_name
    dns_host_error: str = ""
    https_url: str | None = None
    smtp_sink: str | None = None               # HOST:PORT check listens on
    mail_to: str | None = None                 # --mail-to: a real recipient
    mysqld_running: bool = False
    phplibs_dirs: tuple[str, ...] = ()          # what the phplibs feature binds on this host
    phplibs_sample: str = ""                   # a file in /usr/share/php, by include_path
    zone: str = ZONE
    stamps: tuple[int, ...] = STAMPS


@dataclass(frozen=True)
class Answers:
    """The probe's answers for one pool, by check name; a string is why the probe did
    not answer at all."""

    by_test: Mapping[str, Answer | str]
    captured: tuple[Message, ...] = ()         # what the SMTP sink got from this pool
    cookie: str | None = None                  # the session cookie of request 1
    session2: Answer | str | None = None       # request 2 of the session test


def zone_expected(zone: str, stamps: tuple[int, ...]) -> list[str]:
    """What PHP's DateTime::format('Y-m-d H:i:s T P') must print, by Python's zoneinfo."""
    out = []
    for ts in stamps:
        d = datetime.fromtimestamp(ts, ZoneInfo(zone))
        off = d.utcoffset()
        minutes = int(off.total_seconds()) // 60 if off is not None else 0
        sign = "-" if minutes < 0 else "+"
        hh, mm = divmod(abs(minutes), 60)
        out.append(f"{d.strftime('%Y-%m-%d %H:%M:%S %Z')} {sign}{hh:02d}:{mm:02d}")
    return out


def _err(a: Answer) -> str:
    return str(a.get("error") or "")


def _why(a: Answer, fallback: str) -> str:
    return _err(a) or fallback


# ---------------------------------------------------------------- base checks


def judge_user(a: Answer, pool: PoolFacts, _e: Expect) -> Outcome:
    seen = f"{a.get('user')}:{a.get('group')} (uid {a.get('uid')}, gid {a.get('gid')})"
    if a.get("user") is None:
        return Outcome(False, f"uid {a.get('uid')} has no passwd entry here: "
                              f"{_why(a, 'posix_getpwuid failed')}")
    wrong = "" if (a.get("user"), a.get("group")) == (pool.user, pool.group) else \
        f"runs as {seen}, expected {pool.user}:{pool.group}"
    return Outcome(True, f"runs as {seen}", wrong=wrong)


def judge_tmp(a: Answer, _p: PoolFacts, _e: Expect) -> Outcome:
    where = a.get("dir", "?")
    if a.get("works"):
        return Outcome(True, f"wrote and read back a file in sys_get_temp_dir() = {where}")
    return Outcome(False, f"cannot write {where}: {_why(a, 'no error given')}")


def judge_zoneinfo(a: Answer, _p: PoolFacts, e: Expect) -> Outcome:
    got = list(a.get("formatted") or [])
    want = zone_expected(e.zone, e.stamps)
    if not got:
        return Outcome(False, f"{e.zone}: {_why(a, 'no answer')}")
    if got == want:
        return Outcome(True, f"{e.zone}: {'; '.join(got)} (= Python zoneinfo)")
    return Outcome(True, f"{e.zone}: {'; '.join(got)}",
                   wrong=f"{e.zone}: PHP says {'; '.join(got)}, zoneinfo {'; '.join(want)}")


# ---------------------------------------------------------------- features


def judge_dns(a: Answer, _p: PoolFacts, e: Expect) -> Outcome:
    got = a.get("addresses")
    name = a.get("name", e.dns_name or "localhost")
    files = f"resolv.conf {'readable' if a.get('resolv_conf') else 'missing'}, " \
            f"hosts {'readable' if a.get('hosts') else 'missing'}"
    if got is None:
        raw = a.get("raw")
        note = f"; dns_get_record() still gets {', '.join(raw)} from 127.0.0.1:53, " \
            "libc's default server without resolv.conf" if raw else ""
        return Outcome(False, f"{name} does not resolve ({files}){note}")
    if e.dns_name is None:
        wrong = "" if "127.0.0.1" in got else f"localhost resolves to {got}"
        return Outcome(True, f"localhost -> {', '.join(got)} via /etc/hosts; give --dns-name "
                             "to ask the DNS server", wrong=wrong)
    if e.dns_host is None:
        return Outcome(True, f"{name} -> {', '.join(got)}",
                       skip=f"the host cannot resolve {name} either ({e.dns_host_error}); "
                            f"the jail got {got}")
    detail = f"{name} -> {', '.join(got)} (the host: {', '.join(e.dns_host)})"
    wrong = "" if set(got) == set(e.dns_host) else f"differs from the host: {detail}"
    return Outcome(True, detail, wrong=wrong)


def _fetch(name: str, res: Any) -> tuple[bool, str]:
    if res is None:
        return False, f"{name}: not available"
    if res.get("ok"):
        return True, f"{name} {res.get('bytes')} bytes"
    return False, f"{name}: {res.get('error') or 'failed'}"


def judge_tls(a: Answer, _p: PoolFacts, e: Expect) -> Outcome:
    certs = a.get("ca_certs")
    bundle = f"CA bundle {a.get('cafile')}: " + \
        (f"{certs} certificates" if certs is not None else "unreadable")
    if e.https_url is None:
        return Outcome(bool(certs), f"{bundle}; give --https-url for a verified handshake")
    stream_ok, stream = _fetch("PHP streams", a.get("stream"))
    curl_ok, curl = _fetch("curl", a.get("curl"))
    if a.get("curl") is None:
        curl_ok = stream_ok
    worked = stream_ok or curl_ok
    detail = f"{e.https_url} with verification: {stream}; {curl}"
    wrong = "" if stream_ok and curl_ok else detail + f" ({bundle})"
    return Outcome(worked, detail if worked else f"{detail} ({bundle})", wrong=wrong)


def _mail_mode(pool: PoolFacts, e: Expect) -> str:
    if e.smtp_sink is not None and e.smtp_sink == pool.smtp:
        return "sink"
    return "send" if e.mail_to is not None else "local"


def mail_args(pool: PoolFacts, e: Expect) -> dict[str, Any]:
    """The mail test's arguments: whether it sends, and to whom."""
    mode = _mail_mode(pool, e)
    to = e.mail_to if mode == "send" and e.mail_to else MAIL_TO
    return {"send": mode != "local", "to": to, "from": MAIL_FROM_HEADER,
            "sender": MAIL_SENDER, "token": e.token,
            "subject": f"phphost check {pool.name} {e.token}"}


def _envelope_problems(msg: Message) -> list[str]:
    problems = []
    if msg.mail_from != MAIL_SENDER:
        problems.append(f"MAIL FROM:<{msg.mail_from}>, expected <{MAIL_SENDER}> (-f)")
    if list(msg.rcpt_to) != [MAIL_TO]:
        problems.append(f"RCPT TO {list(msg.rcpt_to)}, expected [{MAIL_TO}]")
    if msg.header("From") != MAIL_FROM_HEADER:
        problems.append(f"From: {msg.header('From')!r}, expected {MAIL_FROM_HEADER!r}")
    return problems


def judge_mail(a: Answer, pool: PoolFacts, e: Expect, captured: tuple[Message, ...]) -> Outcome:
    mode = _mail_mode(pool, e)
    binary = "/usr/sbin/sendmail " + ("present" if a.get("sendmail") else "missing")
    if mode == "local":
        return Outcome(bool(a.get("sendmail")), f"{binary}, sendmail_path "
                       f"{a.get('sendmail_path')!r}; give --smtp-sink or --mail-to to send")
    sent = bool(a.get("sent"))
    said = f"mail() {'accepted' if sent else 'failed'}" + \
        (f": {_err(a)}" if _err(a) and not sent else "")
    worked = sent or bool(captured) or bool(a.get("sendmail"))
    if mode == "send":
        detail = f"{said} (to {e.mail_to} via {pool.smtp}; delivery not checked); {binary}"
        return Outcome(worked, detail, wrong="" if sent else detail)
    if not captured:
        detail = f"{said}; nothing reached the sink at {e.smtp_sink}; {binary}"
        return Outcome(worked, detail, wrong=detail)
    msg = captured[0]
    problems = _envelope_problems(msg)
    detail = (f"{said}; sink got MAIL FROM:<{msg.mail_from}> RCPT TO:"
              f"{','.join(f'<{r}>' for r in msg.rcpt_to)}, From: {msg.header('From')}")
    wrong = f"{detail}: {'; '.join(problems)}" if problems or not sent else ""
    return Outcome(True, detail, wrong=wrong)


def parse_set_cookie(value: str) -> dict[str, str]:
    """Pure: cookies (name -> value) in a Set-Cookie header, also several joined by
    ', ' (as the FastCGI client joins repeated headers). Attributes are skipped."""
    attrs = {"path", "domain", "expires", "max-age", "secure", "httponly", "samesite"}
    out: dict[str, str] = {}
    for part in value.replace(",", ";").split(";"):
        name, sep, val = part.strip().partition("=")
        if sep and name and name.lower() not in attrs:
            out[name] = val
    return out


def judge_sessions(first: Answer, second: Answer | str | None, cookie: str | None,
                   e: Expect) -> Outcome:
    where = f"{first.get('handler')} in {first.get('save_path')!r}"
    if not first.get("started"):
        return Outcome(False, f"request 1: session_start() failed ({where}): "
                              f"{_why(first, 'no error given')}")
    if cookie is None:
        return Outcome(False, f"request 1 started a session ({where}) but sent no cookie")
    if not isinstance(second, Mapping):
        return Outcome(False, f"request 2 with the cookie failed: {second}")
    if second.get("value") == e.token:
        name = cookie.partition("=")[0]
        return Outcome(True, f"value kept across 2 requests by cookie {name} ({where})")
    return Outcome(False, f"request 2 with cookie {cookie.partition('=')[0]} did not see the value "
                          f"({where}): {_why(second, 'session empty')}")


def judge_iconv(a: Answer, _p: PoolFacts, _e: Expect) -> Outcome:
    got = a.get("hex")
    if got is None:
        return Outcome(False, f"iconv UTF-8 -> CP1252 failed: {_why(a, 'no error given')}")
    detail = f"iconv UTF-8 -> CP1252 of {ICONV_TEXT!r} = {got}"
    return Outcome(True, detail, wrong="" if got == ICONV_CP1252 else
                   f"{detail}, expected {ICONV_CP1252}")


def judge_locale(a: Answer, _p: PoolFacts, _e: Expect) -> Outcome:
    call = f"setlocale(LC_ALL, {a.get('name')!r})"
    if not a.get("set"):
        return Outcome(False, f"{call} failed")
    return Outcome(True, f"{call} = {a.get('set')!r}")


def judge_proc(a: Answer, _p: PoolFacts, _e: Expect) -> Outcome:
    uid = a.get("status_uid")
    if uid is None:
        return Outcome(False, f"/proc/self/status unreadable: {_why(a, 'no /proc')}")
    return Outcome(True, f"/proc/self/status says Uid {uid}; {a.get('visible_pids')} "
                         "processes visible")


def judge_mysql(a: Answer, pool: PoolFacts, e: Expect) -> Outcome:
    sock = a.get("socket", layout.MYSQL_SOCKET)
    errno = a.get("errno")
    if a.get("connected"):
        row = a.get("row") or []
        return Outcome(True, f"connected through {sock} as {row[0] if row else '?'} "
                             f"(server {row[1] if len(row) > 1 else '?'})")
    if errno in MYSQL_AUTH_REFUSED:
        return Outcome(True, f"{sock} reachable: the server refused {a.get('user')!r} "
                             f"({_err(a)}); grant it to log in")
    seen = "visible" if a.get("dir_visible") else "missing"
    detail = f"cannot connect through {sock} (/run/mysqld {seen}): {_why(a, f'errno {errno}')}"
    if not a.get("dir_visible") and e.mysqld_running and "mysql" not in pool.features:
        # apps often hide the warning (@mysqli_connect): say here what it means
        detail += ("; an app in this pool that uses this host's MariaDB gets just this "
                   "error: add the jail feature 'mysql'")
    skip = "" if e.mysqld_running else f"mysqld is not running on the host (no {sock})"
    return Outcome(bool(a.get("dir_visible")), detail, skip=skip, wrong=detail)


def judge_shell(a: Answer, _p: PoolFacts, _e: Expect) -> Outcome:
    out = a.get("output")
    if isinstance(out, str) and out.strip() == SHELL_WORD:
        return Outcome(True, f"shell_exec('echo {SHELL_WORD}') ran /bin/sh")
    sh = "present (mail-only)" if a.get("bin_sh") else "missing"
    return Outcome(False, f"shell_exec gave {out!r}; /bin/sh {sh}")


def judge_phplibs(a: Answer, _p: PoolFacts, e: Expect) -> Outcome:
    if not e.phplibs_dirs:
        return Outcome(False, "the host has none of /usr/share/php, /usr/share/javascript, "
                       "/usr/share/php-*", skip="no shared PHP libraries on this host "
                       "(install php-* or libjs-* packages)")
    seen = a.get("dirs") or {}
    visible = [d for d in e.phplibs_dirs if isinstance(seen.get(d), int)]
    missing = [d for d in e.phplibs_dirs if d not in visible]
    resolved = a.get("resolved")
    detail = f"{len(visible)} of {len(e.phplibs_dirs)} dirs readable" + \
        (f"; include_path {a.get('include_path')!r} finds {e.phplibs_sample} at {resolved}"
         if resolved else "")
    wrong = ""
    if missing:
        wrong = f"not readable in the jail: {', '.join(missing)}"
    elif e.phplibs_sample and not resolved:
        wrong = (f"include_path {a.get('include_path')!r} does not find {e.phplibs_sample} "
                 "(keep /usr/share/php in include_path)")
    return Outcome(bool(visible), detail, wrong=wrong)


Judge = Callable[[Answer, PoolFacts, Expect], Outcome]
SIMPLE: dict[str, tuple[str, Judge]] = {       # check -> (probe test, judge)
    "user": ("identity", judge_user),
    "tmp": ("tmp", judge_tmp),
    "zoneinfo": ("zoneinfo", judge_zoneinfo),
    "dns": ("dns", judge_dns),
    "tls": ("tls", judge_tls),
    "iconv": ("iconv", judge_iconv),
    "locale": ("locale", judge_locale),
    "proc": ("proc", judge_proc),
    "mysql": ("mysql", judge_mysql),
    "shell": ("shell", judge_shell),
    "phplibs": ("phplibs", judge_phplibs),
}
TEST_OF = {**{c: t for c, (t, _j) in SIMPLE.items()}, "mail": "mail", "sessions": "session"}


def tests_for(pool: PoolFacts) -> list[str]:
    """The checks to run in a pool: all of them when jailed, else only the base ones."""
    return list(CHECKS if pool.jailed else BASE_CHECKS)


def probe_args(check: str, pool: PoolFacts, e: Expect) -> dict[str, Any]:
    """Pure: the arguments of a check's (first) probe request."""
    args: dict[str, Any] = {"test": TEST_OF[check], "token": e.token}
    if check == "zoneinfo":
        args.update(zone=e.zone, stamps=list(e.stamps))
    elif check == "dns":
        args["name"] = e.dns_name or "localhost"
    elif check == "tls":
        args["url"] = e.https_url or ""
    elif check == "mail":
        args.update(mail_args(pool, e))
    elif check == "sessions":
        args["step"] = 1
    elif check == "mysql":
        args["socket"] = layout.MYSQL_SOCKET
    elif check == "phplibs":
        args.update(dirs=list(e.phplibs_dirs), sample=e.phplibs_sample)
    return args


def _declared(check: str, pool: PoolFacts) -> bool | None:
    return None if check in BASE_CHECKS else check in pool.features


def _outcome(check: str, answer: Answer, pool: PoolFacts, e: Expect, ans: Answers) -> Outcome:
    if check == "mail":
        return judge_mail(answer, pool, e, ans.captured)
    if check == "sessions":
        return judge_sessions(answer, ans.session2, ans.cookie, e)
    return SIMPLE[check][1](answer, pool, e)


def judge_pool(pool: PoolFacts, e: Expect, ans: Answers) -> PoolReport:
    """Pure: one row per check, in CHECKS order."""
    rows = []
    for check in CHECKS:
        declared = _declared(check, pool)
        if check not in tests_for(pool):
            rows.append(Row(check, declared, Verdict.NA, NOT_JAILED))
            continue
        answer = ans.by_test.get(check, "not run")
        if isinstance(answer, str):
            rows.append(Row(check, declared, Verdict.ERROR, answer))
            continue
        if answer.get("thrown"):
            rows.append(Row(check, declared, Verdict.ERROR, f"probe threw {_err(answer)}"))
            continue
        rows.append(row_of(check, declared, _outcome(check, answer, pool, e, ans)))
    return PoolReport(pool.name, pool.user, pool.jailed, tuple(rows))
