import io
import json
import logging

import pytest

from console.observability.logging import JsonFormatter, RedactingFilter
from console.security.redaction import find_pans

PAN = "4111111111111111"


@pytest.fixture
def capture():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
                                   logging.CRITICAL])
def test_card_numbers_are_masked_at_every_level(capture, level):
    logger, stream = capture
    logger.log(level, "card %s seen", PAN)
    logger.log(level, f"inline {PAN} too")
    logger.log(level, "extra", extra={"card": PAN})
    output = stream.getvalue()
    assert find_pans(output) == []
    assert "411111******1111" in output


def test_card_numbers_in_exception_tracebacks_are_masked(capture):
    logger, stream = capture
    try:
        raise ValueError(f"bad card {PAN}")
    except ValueError:
        logger.exception("processing failed")
    output = stream.getvalue()
    assert "Traceback" in output and "ValueError" in output
    assert find_pans(output) == []


def test_lines_are_json_with_request_id_when_in_a_request(app, capture):
    logger, stream = capture
    with app.test_request_context("/"):
        from flask import g

        g.request_id = "req-abcdef123"
        logger.info("hello")
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["message"] == "hello"
    assert entry["request_id"] == "req-abcdef123"
    assert entry["level"] == "INFO"


def test_unformattable_messages_are_still_logged(capture):
    logger, stream = capture
    logger.info("broken %d", "not a number")
    assert "broken" in stream.getvalue()
