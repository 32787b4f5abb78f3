"""Liveness and readiness probes (scheduled health checks and alerts join later)."""
