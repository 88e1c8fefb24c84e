"""Files an attacking tenant puts into its own site's docroot (as the tenant user),
and the markers that tell executed PHP from disclosed source."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping

from phphost.verify.context import Ctx


def put(ctx: Ctx, name: str, content: bytes) -> str:
    """`name` (a file name of this run) into the site's docroot; returns its URL path."""
    if not ctx.run.scratch.ours(name):
        raise ValueError(f"{name!r} is not a file name of this run")
    ctx.run.scratch.write(ctx.tenant, os.path.join(ctx.docroot, name), content)
    return "/" + urllib.parse.quote(name)


def subdir(ctx: Ctx, stem: str, files: Mapping[str, bytes]) -> str:
    """A directory of this run in the docroot holding `files`; returns its URL path."""
    name = ctx.name(f"{ctx.site.name}-{stem}")
    path = os.path.join(ctx.docroot, name)
    ctx.run.scratch.mkdir(ctx.tenant, path)
    for fname, content in files.items():
        ctx.run.scratch.write(ctx.tenant, os.path.join(path, fname), content)
    return "/" + urllib.parse.quote(name) + "/"


def source_mark(run_id: str) -> str:
    return f"VERIFY-SRC-{run_id}"


def exec_mark(run_id: str) -> str:
    return f"VERIFY-EXEC-{run_id}"


def marked_php(run_id: str) -> bytes:
    """PHP whose source contains source_mark and whose output contains exec_mark
    (the source never contains exec_mark in one piece)."""
    return (f"<?php /* {source_mark(run_id)} */ echo 'VERIFY-EXEC-', '{run_id}'; ?>\n").encode()


def classify(text: str, run_id: str) -> str | None:
    """Pure: 'source' if the PHP source came back, 'executed' if it ran, else None."""
    if source_mark(run_id) in text:
        return "source"
    if exec_mark(run_id) in text:
        return "executed"
    return None
