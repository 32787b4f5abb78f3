"""Credentials and keys: what is configured, what is healthy, what needs action.

Read-only for now: one service (``services.key_status``) behind the admin page
(``routes.py``) and ``flask --app wsgi keys status`` (``commands.py``). Secrets are never
shown, logged or returned: only fingerprints, key ids, counts and dates.
"""
