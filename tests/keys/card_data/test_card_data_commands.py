"""``flask keys card-data generate|activate|list|retire|revoke``: the services, from a shell."""

from __future__ import annotations

from sqlalchemy import select

from console.audit.models import AuditEvent


def test_on_call_rotates_and_revokes_from_a_shell(cli, store, db_session):
    result, first = cli("keys", "card-data", "generate", "--json")
    assert result.exit_code == 0, result.output
    assert first["status"] == "pending" and "PRIVATE" not in result.output
    result, _ = cli("keys", "card-data", "activate", first["kid"])
    assert result.exit_code == 0 and "is active" in result.output
    result, listed = cli("keys", "card-data", "list", "--json")
    assert [k["kid"] for k in listed["keys"]] == [first["kid"]]
    result, _ = cli("keys", "card-data", "retire", first["kid"])
    assert result.exit_code == 2 and "--reason" in result.output
    result, retired = cli("keys", "card-data", "retire", first["kid"], "--reason",
                          "rotation finished", "--json")
    assert retired["status"] == "retired"
    result, revoked = cli("keys", "card-data", "revoke", first["kid"], "--reason",
                          "key compromised", "--json")
    assert revoked["status"] == "revoked" and store.names() == []
    result, _ = cli("keys", "card-data", "revoke", first["kid"], "--reason", "twice over")
    assert result.exit_code == 1 and "revoked already" in result.output
    actors = set(db_session.scalars(select(AuditEvent.actor_type).where(
        AuditEvent.action.like("keys.card_data.%"))))
    assert actors == {"cli"}


def test_a_weak_key_size_is_refused(cli, store):
    result, _ = cli("keys", "card-data", "generate", "--bits", "2048")
    assert result.exit_code == 1 and "3072" in result.output and store.names() == []


def test_listing_nothing(cli):
    result, _ = cli("keys", "card-data", "list")
    assert result.exit_code == 0 and "no card-data key" in result.output
