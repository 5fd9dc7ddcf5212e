"""Which provider and upstream model serve a client-facing model name."""

from tollway.routing.router import Route, Router

__all__ = ["Route", "Router"]
