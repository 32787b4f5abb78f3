"""Metrics settings, read with the same rules as ``console.settings`` (``NAME_FILE`` for secrets,
every problem named at start, secret values never echoed).

``CONSOLE_METRICS_TOKEN`` (or ``_FILE``): the bearer token Prometheus presents on ``/metrics``.
Without it ``/metrics`` answers 404 on every node: the endpoint is never open. Generate one with
``python -c 'import secrets; print(secrets.token_urlsafe(32))'``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

# console.settings imports this module (for its ``metrics`` field), so its helpers are imported
# where they are used, once console.settings has finished loading.

TOKEN_VARIABLE = "CONSOLE_METRICS_TOKEN"  # noqa: S105 - the variable's name, not a token
TOKEN_MIN_LENGTH = 32
# token_urlsafe(32) (43 characters) scores about 200 bits by symbol frequency; a typed
# placeholder such as "metrics-metrics-metrics-metrics!" about 100.
TOKEN_MIN_ENTROPY_BITS = 128
# RFC 6750 token68 characters: what an Authorization header can carry unquoted.
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class MetricsSettings:
    # SHA-256 of the token: the process never needs the token itself again, and digests of
    # equal length compare in constant time.
    token_sha256: bytes | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        return self.token_sha256 is not None

    def accepts(self, presented: str) -> bool:
        """Constant-time check of a presented bearer token; False when none is configured."""
        if self.token_sha256 is None:
            return False
        return hmac.compare_digest(token_digest(presented), self.token_sha256)

    @classmethod
    def with_token(cls, token: str) -> MetricsSettings:
        return cls(token_sha256=token_digest(token))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> MetricsSettings:
        from console.settings import ConfigError, _read, estimated_entropy_bits

        token = _read(environ, TOKEN_VARIABLE, secret=True)
        if not token:
            return cls()
        if len(token) < TOKEN_MIN_LENGTH:
            raise ConfigError(f"{TOKEN_VARIABLE} is too short (at least {TOKEN_MIN_LENGTH} "
                              "characters)")
        if not _TOKEN68.fullmatch(token):
            raise ConfigError(f"{TOKEN_VARIABLE} may hold only letters, digits and -._~+/ "
                              "(it is sent in an Authorization: Bearer header)")
        if estimated_entropy_bits(token) < TOKEN_MIN_ENTROPY_BITS:
            raise ConfigError(
                f"{TOKEN_VARIABLE} looks guessable (too few distinct characters); generate one "
                "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
        return cls.with_token(token)
