"""taxonomy.yml's handled_by: read once, and what routing and the actions do with it."""

from __future__ import annotations

import pytest

from bot.routing.directory import load_directory_file
from bot.routing.locator import Located, Locator
from bot.settings import PROJECT_ROOT
from bot.taxonomy import (
    COMMUNITY_OFFICE,
    GRID_WORKER,
    MEDIATION_COMMITTEE,
    RESIDENTS_COUNCIL,
    TaxonomyError,
    get_taxonomy,
    parse_taxonomy,
)
from tests.helpers import taxonomy_text_with, taxonomy_with


def test_every_category_names_who_handles_it():
    handlers = {c.code: c.handled_by for c in get_taxonomy().categories}
    assert handlers["NEIGHBOUR_DISPUTE"] == handlers["INHERITANCE"] == MEDIATION_COMMITTEE
    assert handlers["PROPOSAL"] == RESIDENTS_COUNCIL
    assert handlers["CERTIFICATE"] == COMMUNITY_OFFICE
    assert handlers["HEATING"] == GRID_WORKER


def test_a_copy_without_handled_by_gets_the_plain_body_of_the_level():
    taxonomy = taxonomy_with("PROPOSAL", handled_by=None)
    assert taxonomy.by_code("PROPOSAL").handled_by == COMMUNITY_OFFICE
    assert taxonomy.by_code("HEATING").handled_by == GRID_WORKER


def test_fields_the_parser_does_not_know_are_ignored():
    taxonomy = parse_taxonomy(taxonomy_text_with("HEATING", photo_required=True))
    assert taxonomy.by_code("HEATING").label == "供暖供气"


def test_publication_is_data_public_space_yes_household_affairs_no():
    public = {c.code for c in get_taxonomy().categories if c.public}
    assert {"FACILITY", "SANITATION", "PARKING", "HEATING"} <= public
    for private in ("NEIGHBOUR_DISPUTE", "INHERITANCE", "SUBSIDY", "CERTIFICATE", "RELOCATION"):
        assert private not in public
    assert not get_taxonomy().by_code("HANDOFF").public  # internal call-backs


def test_a_category_without_public_is_private():
    assert taxonomy_with("FACILITY", public=None).by_code("FACILITY").public is False


@pytest.mark.parametrize("value", ["private", 1, "true", [True]])
def test_a_public_that_is_not_a_boolean_is_refused(value):
    with pytest.raises(TaxonomyError, match="FACILITY: public must be true or false"):
        taxonomy_with("FACILITY", public=value)


@pytest.mark.parametrize(
    "changes",
    [{"handled_by": "the_mayor"}, {"handled_by": GRID_WORKER}],  # unknown; wrong for its level
)
def test_a_handler_that_does_not_fit_is_refused(changes):
    with pytest.raises(TaxonomyError, match="PROPOSAL"):
        parse_taxonomy(taxonomy_text_with("PROPOSAL", **changes))


def test_routing_names_the_body_taxonomy_yml_gives():
    locator = Locator.from_directory(
        load_directory_file(PROJECT_ROOT / "data" / "grids" / "jinan-demo.yml")
    )
    where = Located(community="和平新村社区", building=3, grid="HPXC-01", level="grid")
    taxonomy = taxonomy_with("CERTIFICATE", handled_by=MEDIATION_COMMITTEE)
    route = locator.route(taxonomy.by_code("CERTIFICATE"), where)
    assert "人民调解委员会" in route.reason
    # a dispute the data hands to the office itself is no longer "mediation"
    taxonomy = taxonomy_with("NEIGHBOUR_DISPUTE", handled_by=COMMUNITY_OFFICE)
    route = locator.route(taxonomy.by_code("NEIGHBOUR_DISPUTE"), where)
    assert "人民调解委员会" not in route.reason and route.level == "community"
