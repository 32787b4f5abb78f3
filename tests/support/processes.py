"""Helpers for tests that run the console as real processes (gunicorn, workers) against a
database of their own: signed test deliveries, the processes' environment, a one-shot worker
run and the counts that say whether anything was lost or applied twice."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests
from sqlalchemy import func, select

from console.db import Database, make_engine, utcnow
from console.finci.payload import parse_message
from console.ingress import services as ingress
from console.ingress.models import MessageStatus, StoredMessage
from console.ingress.verify import Source
from console.pipeline.models import MessageEffect, Outcome, ProcessingAttempt
from tests.ingress.helpers import IDENTITY_KEY, SECRET, TEST_PANS, ingress_settings, new_webhook_id
from tests.pipeline.process_handlers import TYPE
from tests.support.ids import new_id
from tests.support.servers import ROOT, console_env


def body(**fields) -> dict:
    return {"type": TYPE, "id": new_id("pt", 10),
            "created_at": "2026-11-27T08:00:00Z", "card_reference": TEST_PANS[0], **fields}


def process_env(url: str, **extra: str) -> dict[str, str]:
    return console_env(url, FINCI_WEBHOOK_SECRETS=SECRET.export(),
                       INGRESS_RATE_LIMIT_PER_S="100000", INGRESS_RATE_LIMIT_BURST="100000",
                       PIPELINE_HANDLER_MODULES="tests.pipeline.process_handlers",
                       PIPELINE_POLL_INTERVAL_S="0.05", PIPELINE_BATCH_SIZE="10",
                       PIPELINE_LEASE_S="2", LOG_LEVEL="WARNING", **extra)


def run_worker(env: dict[str, str], *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--json", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


class Counts:
    def __init__(self, url: str):
        self.engine = make_engine(url)

    def __call__(self) -> dict:
        with self.engine.connect() as connection:
            def count(query):
                return connection.execute(query).scalar_one()
            applied = connection.execute(
                select(ProcessingAttempt.message_id, func.count())
                .where(ProcessingAttempt.outcome == Outcome.APPLIED)
                .group_by(ProcessingAttempt.message_id)).all()
            return {
                "messages": count(select(func.count()).select_from(StoredMessage)),
                "processed": count(select(func.count()).select_from(StoredMessage).where(
                    StoredMessage.status == MessageStatus.PROCESSED)),
                "effects": count(select(func.count()).select_from(MessageEffect)),
                "applied_twice": sum(1 for _, n in applied if n > 1),
                "applied": len(applied),
                "lease_expired": count(select(func.count()).select_from(ProcessingAttempt).where(
                    ProcessingAttempt.outcome == Outcome.LEASE_EXPIRED)),
            }

    def close(self):
        self.engine.dispose()


def post(url: str, raw: bytes, headers: dict, session: requests.Session | None = None):
    started = time.monotonic()
    response = (session or requests).post(url + "/webhooks/finci", data=raw, headers=headers,
                                          timeout=10)
    return response, time.monotonic() - started


def store_messages(url: str, count: int) -> None:
    """``count`` verified test messages stored as the ingress stores them."""
    database = Database(make_engine(url))
    settings = ingress_settings()
    try:
        for _ in range(count):
            raw = json.dumps(body()).encode()
            ingress.store(database, ingress.Delivery(
                webhook_id=new_webhook_id(), webhook_timestamp=int(time.time()), body=raw,
                verified_by=SECRET.fingerprint, source=Source("127.0.0.1", "127.0.0.1", False),
                headers={}, received_at=utcnow()),
                parse_message(raw), settings, identity_key=IDENTITY_KEY)
    finally:
        database.dispose()
