"""Guards: what a request or answer may contain (PII, secrets, injection, limits)."""
