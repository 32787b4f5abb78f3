"""Outbound FINCI Card API client (portal section A; request signature per assumption B.6).

What the portal states: HTTPS, three ``X-Auth-*`` headers, a ``status``/``errors`` envelope and
three endpoints. What it does not state is the exact string the HMAC covers; :func:`signature`
holds our guess and is the only thing to replace when FINCI confirms it.

Design points, each because money or card data is at stake:

- The JSON body is serialised once; those exact bytes are both signed and sent, so a second
  serialisation can never produce a body that differs from what was signed.
- The signed path is the path as sent: ``token_id`` is validated and percent-quoted first, and
  redirects are never followed (a redirect would resend the auth headers to wherever it points).
- Retries only on transport failures, 429 and 5xx, with exponential backoff and jitter. Both
  updates set an absolute value, so repeating one after an ambiguous timeout is harmless.
- A full card number is never kept: a ``card_number`` that is not in the masked form is masked
  here and flagged, and responses never reach exception messages.
- The token and secret never appear in a repr or an exception message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final
from urllib.parse import quote, urlsplit

import requests

from console.finci import contract

_MASKED_RE: Final = re.compile(contract.MASKED_CARD_NUMBER_PATTERN)
_EXPIRY_RE: Final = re.compile(contract.EXPIRATION_DATE_PATTERN)
_HEADER_SAFE_RE: Final = re.compile(r"[\x21-\x7e]+")
_TOKEN_ID_RE: Final = re.compile(rf"[\x21-\x7e]{{1,{contract.TOKEN_ID_MAX_LENGTH}}}")
_ERROR_CODE_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Digits (or mask stars) with the usual separators: anything shaped like a card number.
_CARD_LIKE_RE: Final = re.compile(r"[0-9*][0-9* -]*[0-9*]")
_MAX_ERRORS_KEPT: Final = 20
# Far above a page of cards; stops a misbehaving endpoint from filling memory.
_MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024


def signature(secret: bytes, timestamp: int, path: str, body: str) -> str:
    """``X-Auth-Signature`` for one request (assumption B.6, until FINCI confirms it).

    Lowercase hex HMAC-SHA256 keyed with the API secret over ``f"{timestamp}{path}{body}"``
    (UTF-8): ``timestamp`` is the ``X-Auth-Timestamp`` value, ``path`` the exact request path as
    sent (percent-encoding included, no query), ``body`` the exact JSON text sent, or ``""``.
    """
    message = f"{timestamp}{path}{body}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class ErrorKind(StrEnum):
    TRANSPORT = "transport"  # no usable HTTP response (connect/read failure or timeout)
    HTTP = "http"  # an HTTP status we cannot treat as an answer (3xx, 4xx, 5xx)
    REJECTED = "rejected"  # FINCI answered with the ``status: error`` envelope
    MALFORMED = "malformed"  # a response we could not read as the documented shape


class CardApiError(Exception):
    """A Card API call failed. Carries codes only: no token, secret, body or card data."""

    def __init__(
        self,
        kind: ErrorKind,
        errors: tuple[str, ...] = (),
        status: int | None = None,
        *,
        attempts: int = 1,
    ) -> None:
        self.kind = kind
        self.errors = errors
        self.status = status
        self.attempts = attempts
        super().__init__(
            f"FINCI Card API {kind.value} error"
            f" (status={status}, errors={list(errors)}, attempts={attempts})"
        )


@dataclass(frozen=True, slots=True)
class Card:
    """One card from ``get-cards``. ``card_number`` is always in the masked form.

    ``card_number_exposed`` is True when FINCI sent more digits than the mask allows; the
    number was masked here, and the caller should raise a security alert.
    """

    token_id: str
    embossing_name: str
    card_number: str
    expiration_date: str
    product_id: str
    card_number_exposed: bool = False
    # The card data as FINCI encrypted it to our key (B.5), if it sent any: ciphertext only,
    # read through console.keys.jwe. Never in a repr: it is an opaque, long token.
    encrypted_card_data: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class CardList:
    items: tuple[Card, ...]
    total: int

    @property
    def card_number_exposed(self) -> bool:
        return any(card.card_number_exposed for card in self.items)


def mask_card_number(value: str) -> tuple[str, bool]:
    """``(masked, exposed)``: the ``XXXX-XX**-****-XXXX`` form, and whether digits beyond the
    first six and last four had to be hidden. Raises ``ValueError`` for non-card shapes."""
    if _MASKED_RE.fullmatch(value):
        return value, False
    if not _CARD_LIKE_RE.fullmatch(value):
        raise ValueError("not a card number")
    symbols = value.replace(" ", "").replace("-", "")
    if not 12 <= len(symbols) <= 19:
        raise ValueError("not a card number")
    head, tail = symbols[:6], symbols[-4:]
    if not (head.isdigit() and tail.isdigit()):
        raise ValueError("not a card number")
    exposed = any(ch.isdigit() for ch in symbols[6:-4])
    return f"{head[:4]}-{head[4:]}**-****-{tail}", exposed


def _quote_token_id(token_id: str) -> str:
    # Validated before quoting: "." and ".." would survive quoting and be collapsed by servers
    # into a different path than the one signed.
    if (
        not isinstance(token_id, str)
        or not _TOKEN_ID_RE.fullmatch(token_id)
        or token_id in (".", "..")
    ):
        raise ValueError(
            f"token_id must be 1..{contract.TOKEN_ID_MAX_LENGTH} printable ASCII characters"
        )
    return quote(token_id, safe="")


def _clean_errors(value: object, redact: tuple[str, ...]) -> tuple[str, ...]:
    """Error codes fit for messages and logs: anything not code-shaped is replaced, and so is
    anything containing one of our credentials, should an upstream ever echo them back."""
    if not isinstance(value, list):
        return ()
    cleaned = []
    for item in value[:_MAX_ERRORS_KEPT]:
        if not isinstance(item, str) or not _ERROR_CODE_RE.fullmatch(item):
            cleaned.append("<unrecognised>")
        elif any(credential in item for credential in redact):
            cleaned.append("<redacted>")
        else:
            cleaned.append(item)
    return tuple(cleaned)


def _reject_constant(_name: str) -> Any:
    raise ValueError("non-finite number")


def _envelope(raw: bytes) -> dict[str, Any] | None:
    """The decoded response if it has the documented envelope shape, else None."""
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    if document.get("status") not in (
        contract.CARD_API_STATUS_SUCCESS,
        contract.CARD_API_STATUS_ERROR,
    ):
        return None
    if not isinstance(document.get("errors", []), list):
        return None
    return document


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After", "")
    return float(value) if value.isascii() and value.isdigit() else None


class CardApiClient:
    """Client for one environment's Card API. One instance per (base URL, credentials)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        secret: bytes | str,
        *,
        timeout: tuple[float, float] = (3.0, 10.0),
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        allow_http: bool = False,
        on_accepted: Callable[[], None] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        # Plain HTTP only when explicitly allowed (local fakes in tests): FINCI requires TLS.
        allowed_schemes = ("https", "http") if allow_http else ("https",)
        if (
            parts.scheme not in allowed_schemes
            or not parts.hostname
            or parts.username
            or parts.password
            or parts.query
            or parts.fragment
        ):
            raise ValueError("base_url must be an https URL without credentials, query or fragment")
        if not isinstance(token, str) or not _HEADER_SAFE_RE.fullmatch(token):
            raise ValueError("API token must be non-empty printable ASCII")
        secret_bytes = secret.encode() if isinstance(secret, str) else secret
        if not isinstance(secret_bytes, bytes) or not secret_bytes:
            raise ValueError("API secret must be non-empty")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._base_path = parts.path.rstrip("/")
        self._token = token
        self._secret = secret_bytes
        self._redact = (token, secret_bytes.decode("utf-8", "replace"))
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._clock = clock
        self._sleep = sleep
        # Jitter only spreads retries out; it needs no cryptographic randomness.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        # Called when FINCI accepted our credentials (a success, or its own error envelope on
        # anything but 401/403): the inventory's "last used" for the token and secret.
        self._on_accepted = on_accepted

    def __repr__(self) -> str:
        return f"CardApiClient(base_url={self._origin + self._base_path!r})"

    def __reduce__(self) -> object:
        raise TypeError("CardApiClient holds credentials and cannot be pickled")

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> CardApiClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- endpoints ----------------------------------------------------------------------------

    def get_cards(
        self, person_id: str | int | None = None, corporate_id: str | int | None = None
    ) -> CardList:
        """Cards of one person or one corporate (exactly one of the two)."""
        if (person_id is None) == (corporate_id is None):
            raise ValueError("give exactly one of person_id and corporate_id")
        owner = (
            ("person_id", person_id) if person_id is not None else ("corporate_id", corporate_id)
        )
        if isinstance(owner[1], bool) or not isinstance(owner[1], str | int):
            raise ValueError(f"{owner[0]} must be a string or an integer")
        document = self._call("POST", contract.CARD_API_PATH_GET_CARDS, {owner[0]: owner[1]})
        return _card_list(document)

    def update_card_status(self, token_id: str, token_status: contract.TokenStatus | str) -> None:
        """Ask FINCI to set a card's status. Whether the change is sensible is
        :mod:`console.finci.card_status`'s decision, made by the caller before this."""
        status = contract.TokenStatus(token_status)
        path = contract.CARD_API_PATH_UPDATE_STATUS.format(token_id=_quote_token_id(token_id))
        self._call("PATCH", path, {"token_status": status.value})

    def update_card_stage(self, token_id: str, token_stage: contract.TokenStage | str) -> None:
        """Ask FINCI to set a card's fulfilment stage (only the documented targets)."""
        stage = contract.TokenStage(token_stage)
        if stage not in contract.REQUESTABLE_TOKEN_STAGES:
            raise ValueError("token_stage must be one of the requestable stages")
        path = contract.CARD_API_PATH_UPDATE_STAGE.format(token_id=_quote_token_id(token_id))
        self._call("PATCH", path, {"token_stage": stage.value})

    # --- transport ----------------------------------------------------------------------------

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
        # "Equal jitter": half the step fixed so delays keep growing, half random so clients
        # that failed together do not retry together.
        delay = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._max_backoff))
        return delay

    def _call(self, method: str, endpoint: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        path = self._base_path + endpoint
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        data = body.encode("ascii")
        url = self._origin + path
        attempt = 0
        while True:
            attempt += 1
            # A fresh timestamp per attempt: a retry after backoff must not look stale to FINCI.
            timestamp = int(self._clock())
            headers = {
                contract.CARD_API_HEADER_TOKEN: self._token,
                contract.CARD_API_HEADER_TIMESTAMP: str(timestamp),
                contract.CARD_API_HEADER_SIGNATURE: signature(self._secret, timestamp, path, body),
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
            retry_after: float | None = None
            try:
                status, response_headers, raw = self._send(method, url, headers, data, attempt)
            except _Retryable:
                failure = CardApiError(ErrorKind.TRANSPORT, attempts=attempt)
            except requests.RequestException:
                # Not a network hiccup (e.g. an invalid URL): retrying cannot help. The original
                # exception is not chained because it holds the request and its auth headers.
                raise CardApiError(ErrorKind.TRANSPORT, attempts=attempt) from None
            else:
                if status != 429 and status < 500:
                    if self._on_accepted is not None and status not in (401, 403) and (
                            200 <= status < 300 or _envelope(raw) is not None):
                        self._on_accepted()
                    return _interpret(status, raw, attempt, self._redact)
                envelope = _envelope(raw)
                errors = _clean_errors(envelope.get("errors"), self._redact) if envelope else ()
                failure = CardApiError(ErrorKind.HTTP, errors, status, attempts=attempt)
                retry_after = _retry_after(response_headers)
            if attempt >= self._max_attempts:
                raise failure
            self._sleep(self._delay(attempt, retry_after))

    def _send(
        self, method: str, url: str, headers: dict[str, str], data: bytes, attempt: int
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            response = self._session.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                stream=True,
            )
        except (requests.ConnectionError, requests.Timeout):
            raise _Retryable from None
        with response:
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_content(chunk_size=65536):
                    size += len(chunk)
                    if size > _MAX_RESPONSE_BYTES:
                        raise CardApiError(
                            ErrorKind.MALFORMED,
                            ("response_too_large",),
                            response.status_code,
                            attempts=attempt,
                        )
                    chunks.append(chunk)
            except requests.RequestException:
                # Connection dropped or read timed out mid-body: as retryable as a failed connect.
                raise _Retryable from None
            return response.status_code, response.headers, b"".join(chunks)


class _Retryable(Exception):
    """Internal marker: the attempt failed in transport and may be retried."""


def _interpret(status: int, raw: bytes, attempt: int, redact: tuple[str, ...]) -> dict[str, Any]:
    envelope = _envelope(raw)
    if envelope is not None and envelope["status"] == contract.CARD_API_STATUS_ERROR:
        errors = _clean_errors(envelope.get("errors"), redact)
        raise CardApiError(ErrorKind.REJECTED, errors, status, attempts=attempt)
    if not 200 <= status < 300:
        raise CardApiError(ErrorKind.HTTP, (), status, attempts=attempt)
    if envelope is None:
        raise CardApiError(ErrorKind.MALFORMED, ("envelope",), status, attempts=attempt)
    return envelope


def _card_list(document: Mapping[str, Any]) -> CardList:
    items = document.get("items")
    total = document.get("total")
    if not isinstance(items, list):
        raise CardApiError(ErrorKind.MALFORMED, ("items",))
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise CardApiError(ErrorKind.MALFORMED, ("total",))
    return CardList(
        items=tuple(_card(item, index) for index, item in enumerate(items)), total=total
    )


def _card(item: object, index: int) -> Card:
    def bad(name: str) -> CardApiError:
        # Field name only: the value may be the very card number we refuse to keep.
        return CardApiError(ErrorKind.MALFORMED, (f"items[{index}].{name}",))

    if not isinstance(item, dict):
        raise bad("item")
    token_id = item.get("token_id")
    if not isinstance(token_id, str) or not _TOKEN_ID_RE.fullmatch(token_id):
        raise bad("token_id")
    embossing_name = item.get("embossing_name")
    if not isinstance(embossing_name, str):
        raise bad("embossing_name")
    card_number = item.get("card_number")
    if not isinstance(card_number, str):
        raise bad("card_number")
    try:
        masked, exposed = mask_card_number(card_number)
    except ValueError:
        raise bad("card_number") from None
    expiration_date = item.get("expiration_date")
    if not isinstance(expiration_date, str) or not _EXPIRY_RE.fullmatch(expiration_date):
        raise bad("expiration_date")
    product_id = item.get("product_id")
    if isinstance(product_id, bool) or not isinstance(product_id, str | int):
        raise bad("product_id")
    encrypted = item.get(contract.CARD_DATA_ITEM_FIELD)
    if encrypted is not None and (not isinstance(encrypted, str) or not encrypted.isascii()
                                  or not 0 < len(encrypted) <= contract.CARD_DATA_JWE_MAX_LENGTH):
        raise bad(contract.CARD_DATA_ITEM_FIELD)
    return Card(
        token_id=token_id,
        embossing_name=embossing_name,
        card_number=masked,
        expiration_date=expiration_date,
        product_id=str(product_id),
        card_number_exposed=exposed,
        encrypted_card_data=encrypted,
    )
