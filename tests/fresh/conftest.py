"""The fresh-root proof (scripts/fresh-root): root only; it builds a brand-new Debian 12
root in namespaces of its own and touches none of this host's services."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    skip = None
    if os.geteuid() != 0:
        skip = "the fresh-root proof needs root (mmdebstrap, namespaces, mounts)"
    elif os.environ.get("PHPHOST_FRESH_ROOT") == "0":
        skip = "PHPHOST_FRESH_ROOT=0"
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.fresh)
            if skip:
                item.add_marker(pytest.mark.skip(reason=skip))
