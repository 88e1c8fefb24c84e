"""`phphost import [--apache-root DIR] [--out FILE]`: read a mod_php Apache and write a
phphost spec for it (docs/migrate.md). Output only; the work is in phphost.importer."""

from __future__ import annotations

import argparse
import io
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Any

from phphost import layout
from phphost.cli.result import Result, dumps
from phphost.exitcodes import ExitCode
from phphost.importer.problems import KINDS
from phphost.importer.run import ImportResult, import_host, write_out
from phphost.importer.tomlout import printable


def add_import_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("import", help="read a mod_php Apache and write a phphost spec "
                                             "for it (changes nothing on the host)")
    p.add_argument("--apache-root", default=layout.APACHE_DIR, metavar="DIR",
                   help="Apache's ServerRoot holding apache2.conf or httpd.conf "
                        f"(default {layout.APACHE_DIR})")
    p.add_argument("--out", metavar="FILE",
                   help="write the spec here (default: print it on standard output)")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true", help="machine-readable report")


def cmd_import(args: argparse.Namespace) -> int:
    out_name = args.out or "imported.toml"
    result = import_host(args.apache_root, out_name)
    if args.out:
        write_out(args.out, result.spec_text, args.force)
    return ImportReport(result, args.out).emit(args.json)


@dataclass(frozen=True)
class ImportReport(Result):
    result: ImportResult
    out: str | None

    def text(self) -> str:
        """The summary and the problems; without --out the spec itself is the text and
        the summary goes to standard error (so `phphost import > spec.toml` works)."""
        if self.out is None:
            sys.stderr.write(self.summary())
            return self.result.spec_text
        return self.summary()

    def summary(self) -> str:
        r, buf = self.result, io.StringIO()
        counts = Counter(p.kind for p in r.problems)
        print(f"import: {r.config}: {len(r.model.sites)} sites, {len(r.model.pools)} pools, "
              f"{len(r.model.tenants)} tenants" + (f" -> {self.out}" if self.out else ""),
              file=buf)
        for site in r.model.sites:
            php = f"PHP via pool {site.pool}" if site.php else "PHP off"
            if site.redirect:
                php = f"redirect to {site.redirect}"
            routes = "".join(f", {x.path} -> {x.pool}" for x in site.routes)
            print(f"  site {site.name}: {site.server_name}: {php}{routes}", file=buf)
        print(f"{len(r.problems)} items: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in KINDS),
              file=buf)
        for p in r.problems:
            print(f"  {printable(p.line())}", file=buf)
        return buf.getvalue()

    def json(self) -> str:
        r = self.result
        data: dict[str, Any] = {
            "apache_root": r.root, "config": r.config, "out": self.out,
            "sites": [{"name": s.name, "server_name": s.server_name, "aliases": list(s.aliases),
                       "docroot": s.docroot, "php": s.php, "pool": s.pool,
                       "routes": {x.path: x.pool for x in s.routes},
                       "tls": s.tls is not None, "redirect": s.redirect,
                       "from": r.origins.get(s.name, [])}
                      for s in r.model.sites],
            "problems": [p.to_json() for p in r.problems],
        }
        if self.out is None:
            data["spec"] = r.spec_text
        return dumps(data)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK
