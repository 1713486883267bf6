"""/api/v1/rules over HTTP: create, read, change, delete, enable; the field catalog; dry runs
of a saved rule (recorded as a run) and of an unsaved tree (not recorded)."""

from __future__ import annotations

import httpx

from agent_platform.services import Services
from tests.integration.automation_api.helpers import (
    HOT_LEAD,
    RULES,
    RUNS,
    all_pages,
    counts,
    created,
    ok,
    trigger_body,
)
from tests.support.agents import assert_error

SAMPLE = {"lead": {"name": "Ann", "price": 1500, "tags": ["vip"]}}


async def test_a_rule_is_created_read_changed_listed_and_deleted(acme: httpx.AsyncClient) -> None:
    rule = await created(acme, RULES, {"name": "Hot", "conditions": HOT_LEAD})
    assert (rule["name"], rule["conditions"], rule["enabled"]) == ("Hot", HOT_LEAD, True)
    assert await ok(await acme.get(f"{RULES}/{rule['id']}")) == rule

    changed = await ok(
        await acme.patch(f"{RULES}/{rule['id']}", json={"description": "price at least 1000"})
    )
    assert (changed["description"], changed["conditions"]) == ("price at least 1000", HOT_LEAD)

    disabled = await ok(await acme.post(f"{RULES}/{rule['id']}/disable"))
    assert disabled["enabled"] is False
    assert [r["id"] for r in await all_pages(acme, RULES, enabled="false")] == [rule["id"]]
    assert await all_pages(acme, RULES, enabled="true") == []
    assert (await ok(await acme.post(f"{RULES}/{rule['id']}/enable")))["enabled"] is True

    deleted = await acme.delete(f"{RULES}/{rule['id']}")
    assert deleted.status_code == 204
    assert_error(await acme.get(f"{RULES}/{rule['id']}"), 404, "rule_not_found")


async def test_rules_are_listed_newest_first_a_page_at_a_time(acme: httpx.AsyncClient) -> None:
    ids = [
        (await created(acme, RULES, {"name": f"rule {n}", "conditions": HOT_LEAD}))["id"]
        for n in range(5)
    ]
    assert [r["id"] for r in await all_pages(acme, RULES, limit=2)] == ids[::-1]


async def test_the_field_catalog_names_each_fields_type_and_operators(
    acme: httpx.AsyncClient,
) -> None:
    catalog = await ok(await acme.get(f"{RULES}/fields"))
    fields = {field["name"]: field for field in catalog["fields"]}
    assert fields["lead.price"]["type"] == "number"
    assert "gt" in fields["lead.price"]["operators"]
    assert "gt" not in fields["lead.name"]["operators"]
    assert fields["lead.tags"]["operators"] == sorted(
        ["contains", "not_contains", "is_empty", "is_not_empty"]
    )
    assert catalog["custom_field_prefix"] == "lead.custom_fields."


async def test_a_dry_run_of_a_saved_rule_explains_itself_and_is_recorded(
    acme: httpx.AsyncClient,
) -> None:
    rule = await created(acme, RULES, {"name": "Hot", "conditions": {"all": [HOT_LEAD]}})

    hot = await ok(await acme.post(f"{RULES}/{rule['id']}/dry-run", json={"event": SAMPLE}))
    cold = await ok(
        await acme.post(f"{RULES}/{rule['id']}/dry-run", json={"event": {"lead": {"price": 10}}})
    )

    assert hot["matched"] is True
    [condition] = hot["trace"]["all"]
    assert (condition["field"], condition["seen"], condition["matched"]) == (
        "lead.price",
        1500,
        True,
    )
    assert hot["facts"]["lead.name"] == "Ann"
    assert cold["matched"] is False
    runs = await all_pages(acme, RUNS, rule_id=rule["id"])
    assert [(run["id"], run["kind"], run["matched"], run["status"]) for run in runs] == [
        (cold["run_id"], "rule", False, "skipped"),
        (hot["run_id"], "rule", True, "succeeded"),
    ]
    recorded = await ok(await acme.get(f"{RUNS}/{hot['run_id']}"))
    assert recorded["trace"] == hot["trace"]
    assert recorded["event"]["lead"]["name"] == "Ann"


async def test_an_unsaved_tree_is_evaluated_with_the_rules_it_names_and_not_recorded(
    acme: httpx.AsyncClient, services: Services
) -> None:
    rule = await created(acme, RULES, {"name": "Hot", "conditions": HOT_LEAD})
    tree = {
        "all": [
            {"rule": rule["id"]},
            {"field": "lead.tags", "operator": "contains", "value": "vip"},
            {"not": {"field": "lead.name", "operator": "starts_with", "value": "Bob"}},
        ]
    }
    before = await counts(services)

    found = await ok(
        await acme.post(f"{RULES}/dry-run", json={"conditions": tree, "event": SAMPLE})
    )
    await acme.post(f"{RULES}/{rule['id']}/disable")
    disabled = await ok(
        await acme.post(f"{RULES}/dry-run", json={"conditions": tree, "event": SAMPLE})
    )

    assert found["matched"] is True
    assert found["trace"]["all"][0]["rule"] == rule["id"]
    assert disabled["matched"] is False  # a disabled rule matches nothing
    assert await counts(services) == before


async def test_a_rule_in_use_is_not_deleted(acme: httpx.AsyncClient) -> None:
    rule = await created(acme, RULES, {"name": "Hot", "conditions": HOT_LEAD})
    trigger = await created(acme, "/api/v1/triggers", trigger_body(conditions={"rule": rule["id"]}))

    body = assert_error(await acme.delete(f"{RULES}/{rule['id']}"), 409, "rule_in_use")

    assert body["error"]["details"] == {"used_by": [f"trigger {trigger['id']}"]}
    assert (await acme.get(f"{RULES}/{rule['id']}")).status_code == 200


async def test_a_rule_may_not_refer_to_rules(acme: httpx.AsyncClient) -> None:
    rule = await created(acme, RULES, {"name": "Hot", "conditions": HOT_LEAD})
    response = await acme.post(RULES, json={"name": "Nested", "conditions": {"rule": rule["id"]}})
    body = assert_error(response, 422, "invalid_automation")
    assert body["error"]["details"][0]["path"].startswith("conditions")
