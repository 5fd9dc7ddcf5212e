"""Tollway: a secure, metered gateway for LLM APIs."""

__version__ = "0.1.0"
