"""The docker compose lab end to end: one stack for this package's tests, down after the last."""
