"""Plugins: every provider type, translator, routing strategy, guard, event sink and
admin router, built-in or not, is found through Python entry points (see registry.py)."""
