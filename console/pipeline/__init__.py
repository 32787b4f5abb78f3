"""The event pipeline: a worker applies stored messages through per-type handlers.

- ``handlers``: the registry other modules plug their handlers into.
- ``worker``: claim (lease) → apply (one transaction per message) → retry / dead-letter.
- ``replay``: preview, start, step and cancel replay jobs.
- ``services``: the pause switch and the read models behind the console pages.
- ``routes`` / ``commands``: console pages and ``flask --app wsgi worker|replay|pipeline``.
"""
