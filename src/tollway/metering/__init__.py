"""Tokens, usage, prices, budgets and limits."""
