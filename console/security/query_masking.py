"""Card numbers typed into a page's query string (a search box, a filter) are masked before any
view sees them, for every page at once (PCI DSS 3.3/3.4).

A full page load is redirected (303) to the same URL with them masked, so only the masked form
stays in the address bar, the history, the inputs echoed back and the audit trail of the search.
An htmx request is answered from the masked arguments and pushes the masked URL
(``HX-Push-Url``), replacing the typed one in the address bar.

A value that is a card number as a whole becomes FINCI's masked form (``5555-55**-****-4444``,
what a card's ``masked_number`` holds, so the search still finds the card); a card number inside
other text is masked as everywhere else (``msg_555555******4444``, as identifier columns are
stored). FINCI's ids stay as typed, also the one in ten that passes the Luhn check
(``console.finci.contract.is_finci_id``): an operator must find a transaction by the id FINCI
support quotes.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from flask import Flask, Response, g, redirect, request
from werkzeug.datastructures import ImmutableMultiDict

from console.finci.card_api import mask_card_number
from console.finci.contract import is_finci_id
from console.htmx import htmx
from console.security.redaction import is_card_number, redact_text

_WHOLE_NUMBER = re.compile(r"[0-9][0-9 -]{11,22}[0-9]")


def masked_query_value(value: str) -> str:
    text = value.strip()
    if (_WHOLE_NUMBER.fullmatch(text) and not is_finci_id(text)
            and is_card_number(re.sub(r"[ -]", "", text))):
        return mask_card_number(text)[0]
    return redact_text(value, is_finci_id)


def masked_args(args: ImmutableMultiDict) -> ImmutableMultiDict | None:
    """``args`` with every card number masked, or None when they hold none."""
    masked = [(redact_text(name), masked_query_value(value))
              for name, value in args.items(multi=True)]
    if masked == list(args.items(multi=True)):
        return None
    return ImmutableMultiDict(masked)


def init_app(app: Flask) -> None:
    # Registered before the permission checks: a login redirect carries the URL in ``next``.
    @app.before_request
    def _mask_card_numbers_in_the_query() -> Response | None:
        if request.method not in ("GET", "HEAD"):
            return None
        masked = masked_args(request.args)
        if masked is None:
            return None
        # The masked form's "*" kept as typed: it is what the search box shows.
        query = urlencode(list(masked.items(multi=True)), quote_via=quote, safe="*")
        url = f"{request.script_root}{request.path}?{query}"
        if not htmx:
            return redirect(url, 303)
        request.args = masked
        g.masked_query_url = url
        return None

    @app.after_request
    def _push_the_masked_url(response: Response) -> Response:
        url = g.pop("masked_query_url", None)
        if url is not None:
            response.headers["HX-Push-Url"] = url
        return response
