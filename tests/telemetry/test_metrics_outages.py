"""Store failures are counted: calls refused because Redis is down, and scrapes that
could not read it (which then show the last values read)."""

from __future__ import annotations

from pathlib import Path

from metrics_support import (
    MASTER_KEY,
    bearer,
    chat,
    config,
    created,
    management,
    scrape,
    total,
    value,
)

from fake_upstream import FakeUpstream
from harness import running_gateway
from services import PrivateRedis, stopped
from tollway.settings import Settings


def test_redis_outage_is_counted_by_store_and_operation(
    private_redis: PrivateRedis, fake: FakeUpstream, tmp_path: Path
) -> None:
    values = config(tmp_path / "data", fake, redis_url=private_redis.url)
    with running_gateway(Settings(**values)) as gateway:
        url = gateway.url
        with management(url) as api:
            budgeted = created(
                api.post("/projects", json={"name": "budgeted", "max_budget_usd": "5"})
            )
            limited = created(api.post("/projects", json={"name": "limited"}))
            budget_key = created(api.post("/keys", json={"name": "b", "project": budgeted["id"]}))[
                "key"
            ]
            limit_key = created(
                api.post("/keys", json={"name": "l", "project": limited["id"], "rpm": 100})
            )["key"]
        assert chat(url, budget_key).status_code == 200
        before = scrape(url, bearer(MASTER_KEY))
        assert value(before, "tollway_budget_limit_usd", project="budgeted") == 5
        with stopped(private_redis):
            budget_refused = chat(url, budget_key)
            limit_refused = chat(url, limit_key)
            during = scrape(url, bearer(MASTER_KEY))
        assert budget_refused.status_code == 503, budget_refused.text
        assert budget_refused.json()["error"]["code"] == "budget_unavailable"
        assert limit_refused.status_code == 503, limit_refused.text
        assert limit_refused.json()["error"]["code"] == "rate_limits_unavailable"
        errors = "tollway_store_errors_total"
        assert value(during, errors, store="redis", operation="budget") == 1
        assert value(during, errors, store="redis", operation="rate_limit") == 1
        # The scrape could not read the budget held in Redis: counted, last values shown.
        assert value(during, errors, store="redis", operation="metrics_scrape") == 1
        assert value(during, "tollway_budget_limit_usd", project="budgeted") == 5
        assert total(during, errors, store="database") == 0
