"""/api/v1/automation/runs over HTTP: filters, pages, one run; another organization's runs
are neither listed nor found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from tests.integration.automation_api.helpers import HOT_LEAD, RULES, RUNS, all_pages, created, ok
from tests.support.agents import assert_error


async def test_runs_are_filtered_and_paged(
    acme: httpx.AsyncClient, beta: httpx.AsyncClient
) -> None:
    hot = await created(acme, RULES, {"name": "Hot", "conditions": HOT_LEAD})
    other = await created(acme, RULES, {"name": "Other", "conditions": HOT_LEAD})
    run_ids = []
    for rule, price in [(hot, 5000), (hot, 1), (other, 5000)]:
        found = await ok(
            await acme.post(
                f"{RULES}/{rule['id']}/dry-run", json={"event": {"lead": {"id": 9, "price": price}}}
            )
        )
        run_ids.append(found["run_id"])

    def ids(runs: list[dict[str, object]]) -> list[object]:
        return [run["id"] for run in runs]

    assert ids(await all_pages(acme, RUNS, limit=1)) == run_ids[::-1]
    assert ids(await all_pages(acme, RUNS, rule_id=hot["id"])) == run_ids[1::-1]
    assert ids(await all_pages(acme, RUNS, matched="true")) == [run_ids[2], run_ids[0]]
    assert ids(await all_pages(acme, RUNS, status="skipped", kind="rule")) == [run_ids[1]]
    assert ids(await all_pages(acme, RUNS, kind="trigger")) == []
    assert ids(await all_pages(acme, RUNS, lead_id=9)) == run_ids[::-1]
    assert ids(await all_pages(acme, RUNS, lead_id=10)) == []
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert ids(await all_pages(acme, RUNS, since=later)) == []
    assert ids(await all_pages(acme, RUNS, until=later)) == run_ids[::-1]

    assert (await ok(await acme.get(f"{RUNS}/{run_ids[0]}")))["rule_id"] == hot["id"]
    assert await all_pages(beta, RUNS) == []
    assert_error(await beta.get(f"{RUNS}/{run_ids[0]}"), 404, "run_not_found")
    assert_error(await acme.get(RUNS, params={"cursor": "forged"}), 400, "invalid_cursor")
    assert_error(await acme.get(RUNS, params={"status": "exploded"}), 422, "validation_error")
