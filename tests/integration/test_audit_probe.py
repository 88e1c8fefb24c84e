"""PHA023's behaviour probe on the installed apache2 (a throwaway server on a
loopback port, never the live config): refused from .htaccess here (2.4.71), and
the same expression in the main config, where Apache does not restrict it, is seen
as a read: the probe can report BREACHED-style "allowed" at all."""

from __future__ import annotations

import dataclasses

from phphost.audit.htaccess_probe import ALLOWED, REFUSED, probe
from phphost.audit.rules_apache import htaccess_file_reads
from phphost.spec.model import Model
from tests.integration.hostkit import phphost


def test_probe_refused_in_htaccess_here() -> None:
    assert probe() == REFUSED


def test_probe_sees_a_read_where_apache_allows_it(demo: Model) -> None:
    assert probe(in_htaccess=False) == ALLOWED
    from phphost.audit.facts import gather
    facts = dataclasses.replace(gather(demo), htaccess_probe=probe(in_htaccess=False))
    found = htaccess_file_reads(demo, facts)
    assert found and all("behaviour probe" in f.problem for f in found)


def test_audit_on_the_demo_has_no_pha023(demo: Model) -> None:
    proc = phphost("audit", "examples/demo.toml", check=False)
    assert "PHA023" not in proc.stdout + proc.stderr, proc.stdout
