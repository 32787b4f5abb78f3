"""Every panel that refreshes itself (templates/_poll.html) refreshes figures only: what it is
replaced with holds no field a person types into, so a refresh never erases their input."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from console.audit import Actor
from console.ingress.models import MessageStatus, StoredMessage
from console.pipeline import replay
from tests.conftest import make_settings
from tests.ingress.helpers import deliver, ingress_settings, message

PAGES = ["/", "/flows/", "/decisions/", "/pipeline/deliveries",
         "/pipeline/duplicates", "/pipeline/dead-letters", "/pipeline/rejections",
         "/pipeline/replays"]


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.pollers: list[dict[str, str | None]] = []
        self.fields: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "data-poll" in attributes:
            self.pollers.append(attributes)
        typed = tag in {"textarea", "select"} or (
            tag == "input" and attributes.get("type", "text") != "hidden")
        if typed:
            self.fields.append((tag, attributes))


def _parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    return parser


@pytest.fixture
def settings(db_factory):
    return make_settings(db_factory.shared_url, ingress=ingress_settings())


@pytest.fixture
def busy(client, db_session, settings):
    """Rows in every panel: a dead letter (whose row offers a replay) and a running replay."""
    deliver(client, message())
    deliver(client, message("refund"))
    dead, other = db_session.scalars(select(StoredMessage)).all()
    dead.status = MessageStatus.DEAD
    dead.last_error = "RuntimeError: boom"
    other.status = MessageStatus.PROCESSED
    db_session.flush()
    replay.start(db_session, Actor.system("test"), replay.Criteria(type="refund"),
                 "INC-9 re-run refunds", settings.ingress)
    db_session.flush()


@pytest.mark.parametrize("path", PAGES)
def test_a_polled_panel_never_holds_a_field_someone_types_into(busy, as_oncall, path):
    page = as_oncall.get(path)
    assert page.status_code == 200
    pollers = _parse(page.get_data(as_text=True)).pollers
    assert pollers, f"{path} has no live panel"
    for poller in pollers:
        fragment = as_oncall.get(poller["hx-get"], headers={
            "HX-Request": "true", "HX-Target": poller.get("id") or ""})
        assert fragment.status_code == 200
        body = fragment.get_data(as_text=True)
        assert "<html" not in body
        assert _parse(body).fields == [], f"{path}: {poller['hx-get']} refreshes a form"
