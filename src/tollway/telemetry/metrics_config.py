"""The ``metrics`` section of the configuration: whether, where and to whom ``/metrics``
answers, and how many label values it may grow.

The default is the gateway's own port behind a key (the master key or an admin key):
one port to deploy and firewall, and nothing about models, projects or spend is shown
to a caller who merely reaches the proxy. ``public: true`` drops the key (for a network
only Prometheus reaches); ``port: N`` moves the endpoint to a port of its own, off the
gateway's.
"""

from __future__ import annotations

from pydantic import Field

from tollway.config import Strict


class MetricsConfig(Strict):
    """Prometheus metrics at ``GET /metrics``."""

    enabled: bool = Field(True, description="false: no metrics are kept and /metrics is 404.")
    public: bool = Field(
        False,
        description="Answer /metrics without a key (default: the master key or an admin key "
        "as 'Authorization: Bearer').",
    )
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve /metrics on this port instead of the gateway's (every worker "
        "listens on it; any of them answers for all).",
    )
    host: str | None = Field(
        None, description="The interface of the metrics port (default: the gateway's host)."
    )
    max_projects: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Projects that get their own 'project' label value, per worker process, "
        "first come; calls of any other project are counted under '_other' (0: all are).",
    )
    cache_seconds: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="How long values read from the database at scrape time (budgets, "
        "quarantine) are reused, so that scrapes cannot load the database.",
    )
