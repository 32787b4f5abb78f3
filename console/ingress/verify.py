"""Checks that run before the body is read: who is sending (IP allowlist, trusted proxies, mTLS
pin) and how often (rate limit). Signature verification itself is
``console.finci.webhook_signature.verify``; this module only decides where a request comes from.

Trusted-proxy handling: ``X-Forwarded-For`` and the client-certificate header are believed only
when the TCP peer is one of ``INGRESS_TRUSTED_PROXIES``. The client is then the right-most
address in ``X-Forwarded-For`` that is not itself a trusted proxy (a client can prepend anything
it likes to the header; only what our own proxies appended is trustworthy). The TCP peer is read
from before the app-wide ``ProxyFix`` (if any), so the console's proxy settings never widen what
the ingress believes.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from console.ingress.settings import IngressSettings, Network, normalise_fingerprint


class SourceRejected(Exception):
    """Refused because of where the request came from. ``reason`` is a fixed code."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Source:
    peer_ip: str | None    # the TCP peer
    client_ip: str | None  # the sender, after trusted-proxy handling
    via_trusted_proxy: bool


_MAX_FORWARDED_HOPS = 20


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # An IPv4-mapped IPv6 peer (dual-stack sockets) is the IPv4 address it carries.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def peer_address(environ: Mapping[str, Any]) -> str | None:
    """The TCP peer, as the WSGI server saw it (before any ProxyFix rewrote REMOTE_ADDR)."""
    original = environ.get("werkzeug.proxy_fix.orig")
    if isinstance(original, Mapping) and original.get("REMOTE_ADDR"):
        return original["REMOTE_ADDR"]
    return environ.get("REMOTE_ADDR")


def resolve_source(peer: str | None, forwarded_for: str | None,
                   trusted: tuple[Network, ...]) -> Source:
    peer_ip = _ip(peer)
    if peer_ip is None:
        return Source(None, None, False)
    if not trusted or not _within(peer_ip, trusted):
        return Source(str(peer_ip), str(peer_ip), False)
    client = peer_ip
    if forwarded_for:
        hops = forwarded_for.split(",")
        if len(hops) > _MAX_FORWARDED_HOPS:
            raise SourceRejected("forwarded_for_malformed", 400)
        for hop in reversed(hops):
            address = _ip(hop)
            if address is None:
                raise SourceRejected("forwarded_for_malformed", 400)
            client = address
            if not _within(address, trusted):
                break
    return Source(str(peer_ip), str(client), True)


def check_source(settings: IngressSettings, source: Source,
                 header: Callable[[str], str | None]) -> None:
    """Allowlist and mTLS pin; raises :class:`SourceRejected`."""
    if settings.allow_cidrs:
        client = _ip(source.client_ip)
        if client is None or not _within(client, settings.allow_cidrs):
            raise SourceRejected("source_not_allowed")
    if settings.client_cert_pins:
        if not source.via_trusted_proxy:
            # Anyone can send the header; only our TLS-terminating proxy's word counts.
            raise SourceRejected("client_cert_unverifiable")
        reported = header(settings.client_cert_header)
        if not reported:
            raise SourceRejected("client_cert_missing")
        if normalise_fingerprint(reported) not in settings.client_cert_pins:
            raise SourceRejected("client_cert_not_pinned")


class RateLimiter:
    """Token bucket per key (the client address), per process. ``allow`` is O(1) and thread-safe.

    Memory is bounded: beyond ``max_keys`` the least recently seen key is forgotten (it then
    starts again with a full bucket, which errs on the side of accepting FINCI's traffic).
    """

    def __init__(self, rate_per_s: float, burst: int, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return allowed
