"""Translation between the API a client speaks and the API a provider serves.

One module per dialect pairing; ``registry.translator_for`` composes pairings through the
OpenAI chat format when no direct one exists.
"""
