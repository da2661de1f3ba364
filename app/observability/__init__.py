"""Logs and metrics: one observe() for every protocol."""
