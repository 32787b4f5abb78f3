"""How long and how much the serving loop buffers before a request reaches a thread."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from console.finci import contract
from console.settings import _float, max_form_bytes

# Request line (4 KiB) and header fields together; browsers' cookies stay far below this.
MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class ServingLimits:
    # A request (TLS handshake, headers and body) must arrive within this many seconds of its
    # first byte; a connection that is slower is answered 408 and closed.
    read_timeout_s: float = 10.0
    max_header_bytes: int = MAX_HEADER_BYTES
    max_body_bytes: int = 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServingLimits:
        return cls(
            read_timeout_s=_float(environ, "CONSOLE_REQUEST_READ_TIMEOUT", 10.0,
                                  minimum=0.5, maximum=60),
            # The largest body any route accepts: a form, or a webhook delivery.
            max_body_bytes=max(max_form_bytes(environ), contract.WEBHOOK_MAX_BODY_BYTES),
        )
