"""Hardened webhook ingress: verify → store → answer. No business logic lives here.

- ``settings``: ``IngressSettings`` (secrets, allowlists, caps, pipeline tuning), from the env.
- ``verify``: source checks (IP allowlist, trusted proxies, mTLS pin) and the rate limiter.
- ``services``: the hot path (one transaction: INSERT message / delivery, COMMIT) and rejections.
- ``routes``: the ``ingress`` blueprint (``POST /webhooks/finci``).
- ``decisioning_port``: where the decisioning service (issue #5) plugs in.
- ``models``: messages (the inbox), deliveries and rejected attempts.
"""
