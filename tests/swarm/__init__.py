"""The one-node Docker Swarm lab end to end: one swarm for this package's tests."""
