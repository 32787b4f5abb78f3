"""OpenID Connect relying party: authorization code flow with PKCE (S256), state and nonce,
ID token signature and claims checked against the provider's discovery document and JWKS.

authlib's requests client builds the authorization request and redeems the code; joserfc
verifies the ID token (``authlib.jose`` is deprecated). Every check that fails raises
``OidcError`` with a short reason for the audit log; the user sees a generic message.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from console.auth.settings import AuthSettings

log = logging.getLogger(__name__)

# Asymmetric algorithms only: "none" and HS* (keyed with the client secret) are refused.
ACCEPTED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                       "ES256", "ES384", "ES512", "EdDSA")
CLOCK_SKEW_S = 60
METADATA_TTL_S = 3600
DISCOVERY_RETRY_S = 15
# An unknown key id triggers one JWKS refresh (key rotation) at most this often.
JWKS_REFRESH_MIN_INTERVAL_S = 60
# A login must come back from the IdP within this time.
PENDING_LOGIN_TTL_S = 600
MAX_PENDING_LOGINS = 5


class OidcError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    id_token_algorithms: tuple[str, ...]
    token_auth_method: str


@dataclass(frozen=True)
class PendingLogin:
    """What we remember (server-side) between sending the user to the IdP and their return."""

    state: str
    nonce: str
    code_verifier: str
    next_url: str
    step_up: bool
    started_at: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> PendingLogin:
        return cls(**{k: value[k] for k in cls.__dataclass_fields__})


def _check_url(name: str, url: Any, *, allow_http: bool) -> str:
    if not isinstance(url, str):
        raise OidcError(f"discovery_{name}_missing")
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if allow_http and parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost",
                                                                    "::1"}:
        return url
    raise OidcError(f"discovery_{name}_not_https")


class OidcClient:
    """One per application; thread-safe caches of the discovery document and keys."""

    def __init__(self, settings: AuthSettings, *, http: requests.Session | None = None):
        if not settings.oidc_configured:
            raise ValueError("OIDC is not configured")
        self.settings = settings
        self.http = http or requests.Session()
        self._lock = threading.Lock()
        self._metadata: ProviderMetadata | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._failed_at = -DISCOVERY_RETRY_S

    # -- provider documents -------------------------------------------------------------------

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self.http.get(url, timeout=self.settings.http_timeout_s)
        except requests.RequestException:
            log.warning("identity provider unreachable", extra={"what": what})
            raise OidcError(f"{what}_unreachable") from None
        if response.status_code != 200:
            raise OidcError(f"{what}_http_{response.status_code}")
        try:
            value = response.json()
        except ValueError:
            raise OidcError(f"{what}_not_json") from None
        if not isinstance(value, dict):
            raise OidcError(f"{what}_not_json")
        return value

    def metadata(self) -> ProviderMetadata:
        with self._lock:
            if self._metadata and time.monotonic() - self._metadata_at < METADATA_TTL_S:
                return self._metadata
            # While the provider is down, answer at once instead of waiting out a timeout on
            # every page (the sign-in page, with its break-glass link, must stay quick).
            if time.monotonic() - self._failed_at < DISCOVERY_RETRY_S:
                raise OidcError("discovery_unreachable")
        issuer = self.settings.issuer or ""
        try:
            document = self._get_json(f"{issuer}/.well-known/openid-configuration", "discovery")
        except OidcError:
            with self._lock:
                self._failed_at = time.monotonic()
            raise
        # The discovery document must name exactly the issuer we trust (mix-up defence).
        if document.get("issuer") != issuer:
            raise OidcError("discovery_issuer_mismatch")
        allow_http = self.settings.allow_http_issuer
        methods = document.get("token_endpoint_auth_methods_supported") or [
            "client_secret_basic"]
        algorithms = tuple(a for a in document.get("id_token_signing_alg_values_supported",
                                                   ["RS256"]) if a in ACCEPTED_ALGORITHMS)
        if not algorithms:
            raise OidcError("discovery_no_acceptable_algorithm")
        end_session = document.get("end_session_endpoint")
        metadata = ProviderMetadata(
            issuer=issuer,
            authorization_endpoint=_check_url("authorization_endpoint",
                                              document.get("authorization_endpoint"),
                                              allow_http=allow_http),
            token_endpoint=_check_url("token_endpoint", document.get("token_endpoint"),
                                      allow_http=allow_http),
            jwks_uri=_check_url("jwks_uri", document.get("jwks_uri"), allow_http=allow_http),
            end_session_endpoint=(_check_url("end_session_endpoint", end_session,
                                             allow_http=allow_http) if end_session else None),
            id_token_algorithms=algorithms,
            token_auth_method=("client_secret_basic" if "client_secret_basic" in methods
                               else "client_secret_post"),
        )
        with self._lock:
            self._metadata, self._metadata_at = metadata, time.monotonic()
        return metadata

    def cached_metadata(self) -> ProviderMetadata | None:
        return self._metadata

    def _key_set(self, *, refresh: bool = False) -> KeySet:
        with self._lock:
            fresh_enough = time.monotonic() - self._keys_at < JWKS_REFRESH_MIN_INTERVAL_S
            if self._keys is not None and (not refresh or fresh_enough):
                return self._keys
        document = self._get_json(self.metadata().jwks_uri, "jwks")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise OidcError("jwks_invalid") from None
        with self._lock:
            self._keys, self._keys_at = keys, time.monotonic()
        return keys

    # -- the flow -----------------------------------------------------------------------------

    def _oauth(self, redirect_uri: str) -> OAuth2Session:
        return OAuth2Session(
            self.settings.client_id, self.settings.client_secret,
            scope=" ".join(self.settings.scopes), redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method=self.metadata().token_auth_method)

    def begin(self, redirect_uri: str, *, next_url: str, step_up: bool,
              started_at: float) -> tuple[str, PendingLogin]:
        pending = PendingLogin(state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
                               code_verifier=secrets.token_urlsafe(64), next_url=next_url,
                               step_up=step_up, started_at=started_at)
        extra: dict[str, str] = {}
        if step_up:
            # Force a real re-authentication now: the ID token's auth_time must be fresh.
            extra = {"prompt": "login", "max_age": "0"}
        with self._oauth(redirect_uri) as client:
            url, _ = client.create_authorization_url(
                self.metadata().authorization_endpoint, state=pending.state, nonce=pending.nonce,
                code_verifier=pending.code_verifier, **extra)
        return url, pending

    def redeem(self, code: str, pending: PendingLogin, redirect_uri: str) -> dict[str, Any]:
        try:
            with self._oauth(redirect_uri) as client:
                token = client.fetch_token(self.metadata().token_endpoint, code=code,
                                           code_verifier=pending.code_verifier,
                                           timeout=self.settings.http_timeout_s)
        except OidcError:
            raise
        except requests.RequestException:
            raise OidcError("token_endpoint_unreachable") from None
        except Exception as exc:  # authlib raises OAuthError subclasses for error answers
            log.warning("code redemption refused", extra={"error": type(exc).__name__})
            raise OidcError("token_request_refused") from None
        if not isinstance(token.get("id_token"), str):
            raise OidcError("id_token_missing")
        return dict(token)

    def validate_id_token(self, raw: str, *, nonce: str, now: dt.datetime,
                          max_auth_age_s: int | None = None) -> dict[str, Any]:
        metadata = self.metadata()
        try:
            decoded = self._decode(raw, metadata, refresh=False)
        except OidcError as error:
            if error.reason != "id_token_key_unknown":
                raise
            decoded = self._decode(raw, metadata, refresh=True)
        claims = decoded.claims
        moment = int(now.timestamp())
        registry = jwt.JWTClaimsRegistry(
            now=moment, leeway=CLOCK_SKEW_S,
            iss={"essential": True}, sub={"essential": True}, aud={"essential": True},
            exp={"essential": True}, iat={"essential": True}, nonce={"essential": True})
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise OidcError(f"id_token_claims_{exc.error}") from None
        if claims["iss"] != metadata.issuer:
            raise OidcError("id_token_issuer_mismatch")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if self.settings.client_id not in audiences:
            raise OidcError("id_token_audience_mismatch")
        if len(audiences) > 1 and claims.get("azp") != self.settings.client_id:
            raise OidcError("id_token_azp_mismatch")
        if not isinstance(claims["nonce"], str) or not hmac.compare_digest(claims["nonce"],
                                                                          nonce):
            raise OidcError("id_token_nonce_mismatch")
        auth_time = claims.get("auth_time")
        if auth_time is not None and (not isinstance(auth_time, int | float)
                                      or auth_time > moment + CLOCK_SKEW_S):
            raise OidcError("id_token_auth_time_invalid")
        if max_auth_age_s is not None:
            if auth_time is None:
                raise OidcError("id_token_auth_time_missing")
            if moment - auth_time > max_auth_age_s + CLOCK_SKEW_S:
                raise OidcError("id_token_auth_time_stale")
        return dict(claims)

    def _decode(self, raw: str, metadata: ProviderMetadata, *, refresh: bool):
        keys = self._key_set(refresh=refresh)
        try:
            return jwt.decode(raw, keys, algorithms=list(metadata.id_token_algorithms))
        except InvalidKeyIdError:
            if not refresh:
                raise OidcError("id_token_key_unknown") from None
            raise OidcError("id_token_key_unknown_after_refresh") from None
        except JoseError as exc:
            raise OidcError(f"id_token_{exc.error}") from None
        except (ValueError, KeyError, TypeError):
            raise OidcError("id_token_malformed") from None

    def end_session_url(self, *, id_token_hint: str | None,
                        post_logout_redirect_uri: str) -> str | None:
        try:
            endpoint = self.metadata().end_session_endpoint
        except OidcError:
            return None
        if not endpoint:
            return None
        params = {"client_id": self.settings.client_id,
                  "post_logout_redirect_uri": post_logout_redirect_uri}
        if id_token_hint:
            params["id_token_hint"] = id_token_hint
        separator = "&" if urlsplit(endpoint).query else "?"
        return f"{endpoint}{separator}{urlencode(params)}"

    def origins(self) -> list[str]:
        """Origins a form may be redirected to after a POST (CSP form-action)."""
        urls = [self.settings.issuer or ""]
        metadata = self._metadata
        if metadata:
            urls += [metadata.authorization_endpoint, metadata.end_session_endpoint or ""]
        origins = []
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme and parts.netloc:
                origin = f"{parts.scheme}://{parts.netloc}"
                if origin not in origins:
                    origins.append(origin)
        return origins


def claim_path(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def groups_from_claim(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.replace(",", " ").split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []
