"""Console pages: permissions, partials shared by page and fragment, empty states, actions."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from console.audit import Actor, AuditAction
from console.audit.models import AuditEvent
from console.flows.services import Flow, set_flow
from console.ingress.models import MessageStatus, StoredMessage
from console.pipeline.models import ReplayJob
from console.security.redaction import find_pans
from tests.ingress.helpers import TEST_PANS, deliver, message, signed

PAGES = ["/pipeline/deliveries", "/pipeline/deliveries?verification=rejected",
         "/pipeline/duplicates", "/pipeline/dead-letters", "/pipeline/rejections",
         "/pipeline/replays", "/pipeline/status"]
POLL = 'data-poll'


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_a_signed_in_user(client, path):
    response = client.get(path)
    assert response.status_code in (302, 303, 401, 403)


@pytest.mark.parametrize("path", PAGES)
def test_a_viewer_sees_every_page_with_a_useful_empty_state(as_viewer, path):
    response = as_viewer.get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert any(hint in html for hint in ("No deliveries yet", "No refused attempts",
                                         "has been delivered more than once",
                                         "No dead letters", "Nothing refused", "No replays yet",
                                         "No deliveries in the last hour"))


def test_compliance_reads_but_cannot_replay(as_compliance):
    assert as_compliance.get("/pipeline/deliveries").status_code == 200
    assert as_compliance.get("/pipeline/replays/preview?type=refund").status_code == 403


def test_nav_lists_deliveries_and_dead_letters(as_viewer):
    html = as_viewer.get("/pipeline/deliveries").get_data(as_text=True)
    assert 'href="/pipeline/deliveries"' in html and 'href="/pipeline/dead-letters"' in html


@pytest.mark.parametrize(("path", "target", "partial_marker"), [
    ("/pipeline/deliveries", "delivery-rows", "No deliveries yet"),
    ("/pipeline/duplicates", "duplicates-panel", "duplicate deliveries"),
    ("/pipeline/dead-letters", "dead-letters-panel", "No dead letters"),
    ("/pipeline/rejections", "rejections-panel", "Nothing refused"),
    ("/pipeline/replays", "replay-jobs", "No replays yet"),
])
def test_fragment_requests_return_the_partial_the_page_includes(as_viewer, path, target,
                                                                partial_marker):
    page = as_viewer.get(path).get_data(as_text=True)
    fragment = as_viewer.get(path, headers={"HX-Request": "true", "HX-Target": target})
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert "<html" not in body and partial_marker in body
    assert body.strip() in page
    assert f'id="{target}"' in page


@pytest.mark.parametrize("path", ["/pipeline/deliveries", "/pipeline/duplicates",
                                  "/pipeline/dead-letters", "/pipeline/rejections",
                                  "/pipeline/replays"])
def test_panels_poll_only_while_visible(as_viewer, path):
    assert POLL in as_viewer.get(path).get_data(as_text=True)


def test_deliveries_list_and_detail_show_masked_bodies_and_every_delivery(client, as_viewer,
                                                                          db_session):
    raw, headers = signed(message("presentment"))
    client.post("/webhooks/finci", data=raw, headers=headers)
    client.post("/webhooks/finci", data=raw, headers=headers)  # a duplicate
    stored = db_session.scalar(select(StoredMessage))
    listing = as_viewer.get("/pipeline/deliveries").get_data(as_text=True)
    assert listing.count(f"/pipeline/messages/{stored.id}") == 2
    assert "duplicate" in listing and "verified" in listing
    detail = as_viewer.get(f"/pipeline/messages/{stored.id}").get_data(as_text=True)
    assert "411111******1111" in detail
    assert TEST_PANS[0] not in detail and find_pans(detail) == []
    assert "Deliveries (2)" in detail
    assert "Not processed yet" in detail


def test_deliveries_can_be_filtered_and_rejections_listed(client, as_viewer):
    deliver(client, message("refund"))
    deliver(client, message("presentment"))
    raw, headers = signed(message())
    headers["webhook-signature"] = "v1," + "A" * 43 + "="
    client.post("/webhooks/finci", data=raw, headers=headers)
    refunds = as_viewer.get("/pipeline/deliveries?type=refund").get_data(as_text=True)
    assert "refund" in refunds and "presentment</td>" not in refunds
    rejected = as_viewer.get("/pipeline/deliveries?verification=rejected").get_data(as_text=True)
    assert "signature_mismatch" in rejected
    summary = as_viewer.get("/pipeline/rejections").get_data(as_text=True)
    assert "signature_mismatch" in summary and "<svg" in summary


@pytest.mark.parametrize("query", ["?status=bogus", "?since=yesterday", "?before=x1",
                                   "?q=" + "x" * 300])
def test_bad_filters_are_400(as_viewer, query):
    assert as_viewer.get("/pipeline/deliveries" + query).status_code == 400


def test_the_status_panel_shows_the_backlog_and_a_sparkline(client, as_viewer):
    deliver(client, message())
    html = as_viewer.get("/pipeline/status").get_data(as_text=True)
    assert "Waiting" in html and "<svg" in html and "<rect" in html


def test_a_pause_is_visible_with_the_growing_backlog(client, as_viewer, db_session):
    set_flow(db_session, Actor.system("test"), Flow.PROCESSING, enabled=False,
             reason="INC-7 investigating")
    db_session.flush()
    deliver(client, message())
    html = as_viewer.get("/pipeline/deliveries").get_data(as_text=True)
    assert 'data-testid="processing-paused"' in html and "INC-7 investigating" in html


def test_duplicates_show_counts_and_effects(client, as_viewer):
    raw, headers = signed(message())
    for _ in range(3):
        client.post("/webhooks/finci", data=raw, headers=headers)
    html = as_viewer.get("/pipeline/duplicates").get_data(as_text=True)
    assert "2 duplicate deliveries" in html
    assert "applied more than once" not in html


def _dead_letter(db_session) -> StoredMessage:
    stored = db_session.scalar(select(StoredMessage))
    stored.status = MessageStatus.DEAD
    stored.last_error = "RuntimeError: card 4111111111111111 declined"
    db_session.flush()
    return stored


def test_dead_letters_list_errors_masked_and_offer_replay_to_operators(client, as_viewer,
                                                                       as_operator,
                                                                       db_session):
    deliver(client, message())
    _dead_letter(db_session)
    stored = db_session.scalar(select(StoredMessage))
    replay_link = f'href="/pipeline/messages/{stored.id}#replay"'
    viewer_html = as_viewer.get("/pipeline/dead-letters").get_data(as_text=True)
    assert "411111******1111" in viewer_html and replay_link not in viewer_html
    operator_html = as_operator.get("/pipeline/dead-letters").get_data(as_text=True)
    assert replay_link in operator_html
    # The list refreshes itself, so the reason is typed on the message page, which does not.
    assert 'id="replay"' in as_operator.get(f"/pipeline/messages/{stored.id}").get_data(
        as_text=True)


def test_a_viewer_cannot_replay_or_preview(client, as_viewer, db_session):
    deliver(client, message())
    stored = _dead_letter(db_session)
    refused = as_viewer.post(f"/pipeline/messages/{stored.id}/replay",
                             data={"reason": "try", "csrf_token": as_viewer.csrf_token})
    assert refused.status_code == 403
    assert as_viewer.get("/pipeline/replays/preview?type=presentment").status_code == 403
    assert db_session.scalar(select(ReplayJob)) is None


def test_an_operator_replays_one_message_audited(client, as_operator, db_session):
    deliver(client, message())
    stored = _dead_letter(db_session)
    response = as_operator.post(f"/pipeline/messages/{stored.id}/replay",
                                data={"reason": "fixed", "csrf_token": as_operator.csrf_token})
    assert response.status_code == 303
    db_session.expire_all()
    assert db_session.get(StoredMessage, stored.id).status == MessageStatus.PENDING
    event = db_session.scalar(select(AuditEvent).where(
        AuditEvent.action == AuditAction.PIPELINE_REPLAY_START))
    assert event.actor_id != "anonymous" and event.target_id is not None
    page = as_operator.get(f"/pipeline/messages/{stored.id}").get_data(as_text=True)
    assert "re-queued" in page


def test_a_replay_without_a_reason_is_refused(client, as_operator, db_session):
    deliver(client, message())
    stored = _dead_letter(db_session)
    response = as_operator.post(f"/pipeline/messages/{stored.id}/replay",
                                data={"reason": " ", "csrf_token": as_operator.csrf_token},
                                follow_redirects=True)
    assert "a reason is required" in response.get_data(as_text=True)
    assert db_session.scalar(select(ReplayJob)) is None


def test_replay_without_csrf_is_refused(client, as_operator, db_session):
    deliver(client, message())
    stored = _dead_letter(db_session)
    response = as_operator.post(f"/pipeline/messages/{stored.id}/replay", data={"reason": "x"})
    assert response.status_code == 403


def test_an_operator_previews_starts_and_cancels_a_replay(client, as_operator, db_session):
    for _ in range(3):
        deliver(client, message("refund"))
    preview = as_operator.get("/pipeline/replays/preview?type=refund",
                              headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<strong>3</strong> messages match" in preview
    headers = {"HX-Request": "true", "X-CSRF-Token": as_operator.csrf_token}
    started = as_operator.post("/pipeline/replays", data={"type": "refund", "reason": "check"},
                               headers=headers)
    assert started.status_code == 200
    assert "Replay #" in started.get_data(as_text=True)
    job = db_session.scalar(select(ReplayJob))
    cancelled = as_operator.post(f"/pipeline/replays/{job.id}/cancel", headers=headers)
    assert "cancelled" in cancelled.get_data(as_text=True)
    again = as_operator.post(f"/pipeline/replays/{job.id}/cancel", headers=headers)
    assert again.status_code == 422
    actions = set(db_session.scalars(select(AuditEvent.action)))
    assert {AuditAction.PIPELINE_REPLAY_START, AuditAction.PIPELINE_REPLAY_CANCEL} <= actions


def test_a_replay_without_filters_is_explained(as_operator):
    preview = as_operator.get("/pipeline/replays/preview").get_data(as_text=True)
    assert "Choose at least one filter" in preview


def test_an_unknown_message_is_404(as_viewer):
    assert as_viewer.get("/pipeline/messages/999999").status_code == 404


def test_a_message_no_transaction_links_says_so(client, as_viewer, db_session):
    raw, headers = signed(message("presentment"))  # stored, never processed: not linked
    client.post("/webhooks/finci", data=raw, headers=headers)
    stored = db_session.scalar(select(StoredMessage))
    html = as_viewer.get(f"/pipeline/messages/{stored.id}").get_data(as_text=True)
    assert "not linked to a transaction" in html and 'data-testid="transaction-link"' not in html
