"""FINCI's Card API for the sandbox: three endpoints over the simulator's card book.

Requests are authenticated exactly as the console's client signs them (FINCI.md A and B.6):
``X-Auth-Token`` must match, ``X-Auth-Timestamp`` must be within the tolerance of our clock,
and ``X-Auth-Signature`` must equal :func:`console.finci.card_api.signature` over the raw
request path (percent-encoding as sent) and the raw body. Every refusal uses the documented
envelope ``{"status": "error", "errors": [...]}``.

Status changes follow :mod:`console.finci.card_status`; asking for the status a card already
has succeeds unchanged (both updates set absolute values, so a client's retry after an
ambiguous timeout must not fail). ``get-cards`` returns exactly the documented item fields,
with the masked card number, the only form the book holds.

Injectable faults, drawn from a seeded generator: a share of calls answered 503 before any
change, and a share that stall past the client's read timeout *after* the change is made: the
ambiguous case a client must survive. Nothing about requests is logged but method, endpoint
name and status; werkzeug's access log is silenced because it would print token ids.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from console.finci import card_api, contract
from console.finci.card_status import TransitionRefused
from console.finci.contract import TokenStage, TokenStatus
from console.simulator.cards import CardBook, SimCard, UnknownCard, seeded_random

log = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"
# Not documented by FINCI; the webhook tolerance (B.1) is the natural guess.
DEFAULT_TOLERANCE_S: Final = contract.WEBHOOK_TIMESTAMP_TOLERANCE_SECONDS
_TIMESTAMP_RE: Final = re.compile(r"[0-9]{1,12}")
_MAX_BODY_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Faults:
    """Failures and latency to inject (all off by default)."""

    error_rate: float = 0.0  # share of calls answered 503 (nothing changed)
    timeout_rate: float = 0.0  # share of calls that stall for stall_s (after any change)
    stall_s: float = 12.0  # past the console client's 10 s read timeout
    latency_s: tuple[float, float] = (0.0, 0.0)  # uniform extra latency on every call

    def __post_init__(self) -> None:
        if not (0 <= self.error_rate <= 1 and 0 <= self.timeout_rate <= 1):
            raise ValueError("fault rates must be between 0 and 1")
        if self.error_rate + self.timeout_rate > 1:
            raise ValueError("error_rate + timeout_rate must not exceed 1")
        low, high = self.latency_s
        if not 0 <= low <= high or self.stall_s < 0:
            raise ValueError("latency and stall must be non-negative, low <= high")


NO_FAULTS: Final = Faults()


class _Refused(Exception):
    def __init__(self, status: int, code: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.code = code
        self.headers = headers or {}
        super().__init__(code)


def _envelope(status: int, errors: list[str], headers: dict[str, str] | None = None,
              **fields: Any) -> Response:
    document = {"status": "error" if errors else "success", "errors": errors, **fields}
    return Response(json.dumps(document, separators=(",", ":")), status=status,
                    mimetype="application/json", headers=headers)


def _raw_path() -> str:
    # The path as sent, percent-encoding included: that is what the client signed. werkzeug's
    # servers and test client both provide it; PATH_INFO is already decoded.
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    return raw.split("?", 1)[0]


def create_app(
    book: CardBook,
    token: str,
    secret: bytes | str,
    *,
    faults: Faults = NO_FAULTS,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    seed: int = 0,
    clock: Callable[[], float] = time.time,
    halt: threading.Event | None = None,
    card_data: Callable[[SimCard], str] | None = None,
) -> Flask:
    """The Card API as a Flask app. ``halt`` cuts injected stalls short (server shutdown).
    ``card_data``: get-cards items carry its JWE of each card (console.simulator.card_data)."""
    if not token:
        raise ValueError("token must not be empty")
    secret_bytes = secret.encode() if isinstance(secret, str) else secret
    if not secret_bytes:
        raise ValueError("secret must not be empty")
    rng = seeded_random("card-api", seed)
    rng_lock = threading.Lock()
    halt = halt or threading.Event()

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = _MAX_BODY_BYTES

    def authenticate() -> None:
        presented = request.headers.get(contract.CARD_API_HEADER_TOKEN)
        timestamp = request.headers.get(contract.CARD_API_HEADER_TIMESTAMP)
        signature = request.headers.get(contract.CARD_API_HEADER_SIGNATURE)
        if not presented or not timestamp or not signature:
            raise _Refused(401, "missing_auth_headers")
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise _Refused(401, "invalid_token")
        if not _TIMESTAMP_RE.fullmatch(timestamp):
            raise _Refused(401, "invalid_timestamp")
        if not abs(clock() - int(timestamp)) <= tolerance_s:
            raise _Refused(401, "stale_timestamp")
        try:
            body = request.get_data(cache=True).decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(400, "invalid_body") from None
        expected = card_api.signature(secret_bytes, int(timestamp), _raw_path(), body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise _Refused(401, "invalid_signature")

    def draw() -> tuple[float, float]:
        with rng_lock:
            return rng.random(), rng.uniform(*faults.latency_s)

    def json_object() -> dict[str, Any]:
        try:
            document = json.loads(request.get_data(cache=True) or b"null")
        except ValueError:
            raise _Refused(400, "invalid_json") from None
        if not isinstance(document, dict):
            raise _Refused(400, "invalid_json")
        return document

    @app.before_request
    def _authenticate_and_inject() -> Response | None:
        authenticate()
        roll, latency = draw()
        if latency:
            halt.wait(latency)
        if roll < faults.error_rate:
            raise _Refused(503, "service_unavailable", {"Retry-After": "1"})
        request.environ["finci_sim.stall"] = roll < faults.error_rate + faults.timeout_rate
        return None

    @app.after_request
    def _stall_and_log(response: Response) -> Response:
        if request.environ.get("finci_sim.stall"):
            halt.wait(faults.stall_s)
        log.info("card api %s %s -> %s", request.method, request.endpoint or "-",
                 response.status_code)
        return response

    @app.errorhandler(_Refused)
    def _refused(error: _Refused) -> Response:
        return _envelope(error.status, [error.code], error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            error.code or 500, "bad_request")
        return _envelope(error.code or 500, [code])

    @app.post(contract.CARD_API_PATH_GET_CARDS)
    def get_cards() -> Response:
        document = json_object()
        owners = {k: document.get(k) for k in ("person_id", "corporate_id") if k in document}
        if len(owners) != 1:
            raise _Refused(400, "exactly_one_owner_required")
        (name, value), = owners.items()
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise _Refused(400, f"invalid_{name}")
        cards = book.by_owner(**{name: str(value)})
        items = [c.api_item() for c in cards]
        if card_data is not None:
            for item, card in zip(items, cards, strict=True):
                item[contract.CARD_DATA_ITEM_FIELD] = card_data(card)
        return _envelope(200, [], items=items, total=len(cards))

    @app.patch(contract.CARD_API_PATH_UPDATE_STATUS.replace("{token_id}", "<path:token_id>"))
    def update_card_status(token_id: str) -> Response:
        value = json_object().get("token_status")
        try:
            target = TokenStatus(value)
        except ValueError:
            raise _Refused(400, "invalid_token_status") from None
        try:
            book.request_status(token_id, target)
        except UnknownCard:
            raise _Refused(404, "card_not_found") from None
        except TransitionRefused:
            raise _Refused(409, "transition_not_allowed") from None
        return _envelope(200, [])

    @app.patch(contract.CARD_API_PATH_UPDATE_STAGE.replace("{token_id}", "<path:token_id>"))
    def update_card_stage(token_id: str) -> Response:
        value = json_object().get("token_stage")
        try:
            stage = TokenStage(value)
        except ValueError:
            raise _Refused(400, "invalid_token_stage") from None
        if stage not in contract.REQUESTABLE_TOKEN_STAGES:
            raise _Refused(400, "invalid_token_stage")
        try:
            book.request_stage(token_id, stage)
        except UnknownCard:
            raise _Refused(404, "card_not_found") from None
        return _envelope(200, [])

    return app


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's access log would print paths, and paths carry token ids."""

    def log_request(self, *_args: Any, **_kwargs: Any) -> None:
        pass


class CardApiServer:
    """The Card API on ``127.0.0.1`` in a background thread (a threaded werkzeug server)."""

    def __init__(
        self,
        book: CardBook,
        token: str,
        secret: bytes | str,
        *,
        port: int = 0,
        faults: Faults = NO_FAULTS,
        seed: int = 0,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        clock: Callable[[], float] = time.time,
        card_data: Callable[[SimCard], str] | None = None,
    ) -> None:
        self.book = book
        self._halt = threading.Event()
        self.app = create_app(book, token, secret, faults=faults, seed=seed,
                              tolerance_s=tolerance_s, clock=clock, halt=self._halt,
                              card_data=card_data)
        self._server: BaseWSGIServer = make_server(
            HOST, port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> CardApiServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
            name="finci-sim-card-api", daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the ``serve-card-api`` command)."""
        try:
            self._server.serve_forever(poll_interval=0.2)
        finally:
            self._halt.set()
            self._server.server_close()

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> CardApiServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
