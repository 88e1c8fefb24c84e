"""App recipes (spec/recipes.py): what a recipe adds to its site and pool, and that
the spec's own keys win."""

from __future__ import annotations

import pytest

from phphost.errors import SpecError
from phphost.spec.loader import parse_spec
from phphost.spec.recipes import RECIPES, apply_recipes
from phphost.spec.validate import At

TENANTS = {"shop": {"home": "/srv/www/shop"}}


def applied(site: dict[str, object], pool: dict[str, object] | None = None,
            ) -> tuple[dict[str, object], dict[str, object]]:
    base_site = {"server_name": "a.test", "tenant": "shop", "docroot": "htdocs", "pool": "p"}
    sites, pools = apply_recipes(At("spec.toml"), {"a": {**base_site, **site}},
                                 {"p": {"tenant": "shop", **(pool or {})}}, TENANTS)
    return sites["a"], pools["p"]


def test_wordpress_gives_site_and_pool_what_it_needs() -> None:
    site, pool = applied({"recipe": "wordpress"})
    assert site["front_controller"] == "/index.php"
    assert site["allow_override"] == ["AuthConfig"]
    assert pool["jail"] == {"features": ["mysql", "mail", "dns", "tls", "phplibs"]}
    assert pool["writable"] == [{"path": "htdocs/wp-content/uploads", "public": True}]
    assert pool["php_admin_values"] == {"upload_max_filesize": "32M", "post_max_size": "33M"}


def test_recipes_add_their_php_extensions() -> None:
    _, pool = applied({"recipe": "mediawiki"}, {"php_extensions": ["gd", "zip"]})
    assert pool["php_extensions"] == ["gd", "zip", "calendar", "intl", "apcu", "curl"]
    _, pool = applied({"recipe": "wordpress"})
    assert pool["php_extensions"] == ["curl", "gd"]
    _, pool = applied({"recipe": "wordpress"}, {"php_extensions": "all"})
    assert pool["php_extensions"] == "all"
    _, pool = applied({"recipe": "adminer"})
    assert "php_extensions" not in pool


def test_every_recipe_names_known_extensions() -> None:
    from phphost.spec.extensions import KNOWN
    for recipe in RECIPES.values():
        assert set(recipe.extensions) <= set(KNOWN), recipe.name


def test_the_specs_own_keys_win() -> None:
    site, pool = applied(
        {"recipe": "wordpress", "front_controller": "/app.php"},
        {"jail": {"features": ["iconv", "mysql"]},
         "writable": ["/srv/www/shop/htdocs/wp-content/uploads", "cache"],
         "php_admin_values": {"upload_max_filesize": "8M"}})
    assert site["front_controller"] == "/app.php"
    assert pool["jail"] == {"features": ["iconv", "mysql", "mail", "dns", "tls", "phplibs"]}
    # the pool's entry for the same dir (here: not public) is kept, no second one added
    assert pool["writable"] == ["/srv/www/shop/htdocs/wp-content/uploads", "cache"]
    assert pool["php_admin_values"] == {"upload_max_filesize": "8M", "post_max_size": "33M"}


def test_options_are_opt_in() -> None:
    _site, plain = applied({"recipe": "wordpress"})
    _site, admin = applied({"recipe": "wordpress", "recipe_options": ["admin-installs"]})
    assert "htdocs/wp-content/plugins" not in str(plain["writable"])
    assert {"path": "htdocs/wp-content/plugins", "public": True} in admin["writable"]  # type: ignore[operator]
    assert "htdocs/wp-content/upgrade" in admin["writable"]  # type: ignore[operator]


def test_input_tables_are_not_changed() -> None:
    sites = {"a": {"server_name": "a.test", "tenant": "shop", "docroot": "htdocs",
                   "pool": "p", "recipe": "adminer"}}
    pools: dict[str, object] = {"p": {"tenant": "shop"}}
    apply_recipes(At("s"), sites, pools, TENANTS)
    assert pools == {"p": {"tenant": "shop"}}


SPEC = """
[tenants.shop]
home = "/srv/www/shop"
[pools.db]
tenant = "shop"
jail = { features = ["dns"] }
[sites.db]
server_name = "db.test"
tenant = "shop"
docroot = "htdocs"
pool = "db"
{extra}
"""


def test_a_recipe_in_a_whole_spec() -> None:
    model = parse_spec(SPEC.replace("{extra}", 'recipe = "adminer"'), "spec.toml")
    assert model.pool("db").jail.features == ("base", "dns", "mysql", "sessions")


@pytest.mark.parametrize("extra, key, words", [
    ('recipe = "joomla"', "sites.db.recipe", "unknown recipe 'joomla'"),
    ('recipe = "adminer"\nrecipe_options = ["x"]', "sites.db.recipe_options[0]",
     "has no option 'x'"),
    ('recipe_options = ["admin-installs"]', "sites.db.recipe_options", "without a recipe"),
])
def test_bad_recipes_are_named(extra: str, key: str, words: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC.replace("{extra}", extra), "spec.toml")
    assert err.value.key == key and words in str(err.value)


def test_two_recipes_on_one_pool_are_refused() -> None:
    text = SPEC.replace("{extra}", 'recipe = "adminer"') + """
[sites.wp]
server_name = "wp.test"
tenant = "shop"
docroot = "wp"
pool = "db"
recipe = "dokuwiki"
"""
    with pytest.raises(SpecError) as err:
        parse_spec(text, "spec.toml")
    assert "also runs site 'db' with recipe 'adminer'" in str(err.value)


def test_every_recipe_names_known_features() -> None:
    from phphost.spec.model import JAIL_FEATURES
    for recipe in RECIPES.values():
        assert set(recipe.features) <= set(JAIL_FEATURES), recipe.name


def test_recipe_with_redirect_is_refused() -> None:
    text = SPEC.replace("{extra}", "") + """
[sites.old]
server_name = "old.test"
redirect = "https://db.test/"
recipe = "wordpress"
"""
    with pytest.raises(SpecError) as err:
        parse_spec(text, "spec.toml")
    assert err.value.key == "sites.old.recipe" and "redirect" in str(err.value)
