"""`check`'s warning for front controllers: the script a site's `front_controller` names
should be a file in its docroot (else every unknown URL answers 404). Not a failure:
the application may not be deployed yet. Reached without following a tenant's symlink."""

from __future__ import annotations

import posixpath
import stat

from phphost import safefs
from phphost.spec.model import Model, Site


def front_controller_warnings(model: Model, pools: tuple[str, ...] = ()) -> list[str]:
    """One line per site (of `pools`, all when empty) whose front controller is not a
    regular file in its docroot."""
    out = []
    for site in model.sites:
        if site.front_controller is None or site.docroot is None:
            continue
        if pools and site.pool not in pools:
            continue
        problem = _problem(site)
        if problem:
            out.append(f"site {site.name}: front_controller {site.front_controller}: {problem}")
    return out


def _problem(site: Site) -> str:
    path = posixpath.join(site.docroot or "/", (site.front_controller or "").lstrip("/"))
    try:
        st = safefs.lstat(path)
    except safefs.UnsafePath as err:
        return f"cannot be checked ({err.problem})"
    except OSError as err:
        return f"cannot be checked ({err.strerror})"
    if st is None:
        return (f"{path} does not exist: unknown URLs answer 404 until the application "
                "is deployed there")
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file: unknown URLs will not reach PHP"
    return ""
