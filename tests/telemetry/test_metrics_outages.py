"""Store failures are counted where they are handled: calls refused because Redis or
the database is down, spend records that wait for the database, and scrapes that could
not read a store (which then show the last values read)."""

from __future__ import annotations

from pathlib import Path

from metrics_support import (
    MASTER_KEY,
    bearer,
    chat,
    config,
    created,
    eventually,
    management,
    scrape,
    total,
    value,
)

from fake_upstream import FakeUpstream
from harness import running_gateway
from services import PrivatePostgres, PrivateRedis, stopped
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


def test_database_outage_is_counted_where_it_is_handled(
    private_postgres: PrivatePostgres, fake: FakeUpstream, tmp_path: Path
) -> None:
    database = private_postgres.create_database()
    values = config(tmp_path / "data", fake, database_url=database, database_grace=300)
    errors = "tollway_store_errors_total"
    try:
        with running_gateway(Settings(**values)) as gateway:
            url = gateway.url
            with management(url) as api:
                known = created(api.post("/keys", json={"name": "known"}))["key"]
                stranger = created(api.post("/keys", json={"name": "stranger"}))["key"]
            assert chat(url, known).status_code == 200
            with stopped(private_postgres):
                # A key verified before: served within the grace window; its spend
                # record waits in the journal (the flush fails and is retried).
                assert chat(url, known).status_code == 200
                refused = chat(url, stranger)
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "database_unavailable"

                def flush_counted() -> bool:
                    during = scrape(url, bearer(MASTER_KEY))
                    return value(during, errors, store="database", operation="spend_flush") > 0

                assert eventually(flush_counted)
                during = scrape(url, bearer(MASTER_KEY))
            after = scrape(url, bearer(MASTER_KEY))
    finally:
        private_postgres.drop_database(database.rsplit("/", 1)[1])
    # Every request reads the epochs first; the stranger's key also had to be looked up.
    assert value(during, errors, store="database", operation="epochs") >= 2
    assert value(during, errors, store="database", operation="key_lookup") == 1
    assert value(during, errors, store="database", operation="metrics_scrape") >= 1
    # Each failure is counted once, under the operation that failed (a refused call is
    # not counted again as a refusal); background work may have failed meanwhile too.
    failed = {
        dict(labels)["operation"]
        for (name, labels), count in during.items()
        if name == errors and count and dict(labels)["store"] == "database"
    }
    expected = {"epochs", "key_lookup", "spend_flush", "metrics_scrape"}
    assert expected <= failed <= expected | {"budget_holds", "retention", "journal_replay"}
    assert total(during, errors, store="redis") == 0
    # Counters only grow: what the outage counted is still there once it is over.
    assert total(after, errors) >= total(during, errors)
