"""Which deployments serve a model name, in which order, and how failures are retried."""
