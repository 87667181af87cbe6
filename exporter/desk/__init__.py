"""Desk-aware monitoring: trading calendar, freshness, halt switch, risk limits, reconciliation."""
