"""The plan-time account check (plan.accounts), from hand-written account facts."""

from __future__ import annotations

import dataclasses

import pytest

from phphost.errors import PlanError
from phphost.facts.accounts import Account, AccountFacts, spec_names
from phphost.facts.state import State
from phphost.plan.accounts import account_problems, check_accounts
from phphost.spec.loader import parse_spec
from phphost.spec.model import Model

SPEC = """
[tenants.{name}]
home = "/srv/www/{name}"
{extra}
[pools.app]
tenant = "{name}"
"""


def model(name: str = "acme", extra: str = "") -> Model:
    return parse_spec(SPEC.format(name=name, extra=extra), "spec.toml")


def facts(users: dict[str, int] | None = None, groups: dict[str, int] | None = None,
          ) -> AccountFacts:
    return AccountFacts({n: Account(n, i) for n, i in (users or {}).items()},
                        {n: Account(n, i) for n, i in (groups or {}).items()})


MAIL = facts({"mail": 8}, {"mail": 8})


def test_new_names_are_fine() -> None:
    assert account_problems(model(), State(), facts()) == []


@pytest.mark.parametrize(("name", "users", "groups", "want"), [
    ("mail", {"mail": 8}, {"mail": 8},
     ["tenants.mail: user 'mail' (uid 8) already exists and phphost did not create it",
      "tenants.mail: group 'mail' (gid 8) already exists and phphost did not create it"]),
    ("ssl-cert", {}, {"ssl-cert": 110},
     ["tenants.ssl-cert: group 'ssl-cert' (gid 110) already exists and phphost did not "
      "create it"]),
    ("docker", {}, {"docker": 999}, ["tenants.docker: group 'docker' (gid 999) already exists "
                                     "and phphost did not create it"]),
    ("alice", {"alice": 1000}, {"alice": 1000},
     ["tenants.alice: user 'alice' (uid 1000) already exists and phphost did not create it",
      "tenants.alice: group 'alice' (gid 1000) already exists and phphost did not create it"]),
])
def test_existing_accounts_phphost_did_not_create_are_refused(
        name: str, users: dict[str, int], groups: dict[str, int], want: list[str]) -> None:
    assert account_problems(model(name), State(), facts(users, groups)) == want


def test_accounts_phphost_created_are_fine() -> None:
    state = State(users=("acme", "php-app"), pool_users=("php-app",), groups=("acme",))
    assert account_problems(model(), state, facts({"acme": 1001, "php-app": 990},
                                                  {"acme": 1001})) == []


def test_a_system_id_is_refused_even_when_recorded() -> None:
    """The state file claims phphost made it, but a uid < 1000 is a system account."""
    state = State(users=("mail",), groups=("mail",))
    got = account_problems(model("mail"), state, MAIL)
    assert got == ["tenants.mail: user 'mail' has uid 8, a system account (below 1000)",
                   "tenants.mail: group 'mail' has gid 8, a system account (below 1000)"]


def test_adopt_true_allows_an_existing_account() -> None:
    adopted = model("mail", "adopt = true")
    assert adopted.tenants[0].adopt
    assert account_problems(adopted, State(), MAIL) == []


def test_pool_user_of_phphost_may_have_a_system_uid() -> None:
    state = State(users=("php-app",), pool_users=("php-app",))
    assert account_problems(model(), state, facts({"php-app": 990})) == []


def test_foreign_pool_user_is_refused_even_for_an_adopted_tenant() -> None:
    m = model("mail", "adopt = true")
    m = dataclasses.replace(m, pools=(dataclasses.replace(m.pools[0], user="postfix"),))
    got = account_problems(m, State(), facts({"mail": 8, "postfix": 105}, {"mail": 8}))
    assert got == ["pools.app: runtime user 'postfix' (uid 105) already exists and phphost "
                   "did not create it"]


def test_check_accounts_names_the_spec_and_the_remedy() -> None:
    with pytest.raises(PlanError, match=r"(?s)spec\.toml: phphost will not take over.*"
                       r"tenants\.mail: user 'mail'.*adopt = true") as err:
        check_accounts(model("mail"), State(), MAIL)
    assert err.value.exit_code == 4


def test_spec_names() -> None:
    assert spec_names(model()) == ({"acme", "php-app"}, {"acme"})


def test_adopt_must_be_a_boolean() -> None:
    from phphost.errors import SpecError
    with pytest.raises(SpecError, match=r"tenants\.acme\.adopt"):
        model(extra='adopt = "yes"')


def test_a_former_tenant_user_is_no_pool_user() -> None:
    """phphost created `acme` as a tenant once: naming it as a pool's user later would
    run that pool as the old tenant's code owner."""
    m = model()
    pool = m.pools[0]
    state = State(users=(pool.user,), pool_users=())
    got = account_problems(m, state, facts({pool.user: 1500}))
    assert any(f"pools.{pool.name}" in p for p in got)
