"""Scheduled health checks and alerting.

``registry`` names every check once (stable ids); ``probes`` computes them from the owning
features' read services; ``services`` runs them, stores each result and moves each check's alert
state; ``alerts`` decides, without I/O, when a change deserves a notification; ``notifiers``
send them (JSON webhook, SMTP) after the transaction commits.
"""
