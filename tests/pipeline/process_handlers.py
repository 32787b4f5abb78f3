"""A handler for the process-level tests, loaded by real worker processes through
PIPELINE_HANDLER_MODULES (allowed outside live mode only). Not a test module: pytest never
imports it, so it registers nothing in the test process itself."""

from __future__ import annotations

import os
import time

from console.pipeline import handlers

TYPE = "process_test"


@handlers.register(TYPE, name="tests.process_test")
def handle(ctx: handlers.Context) -> handlers.Result:
    delay = float(os.environ.get("PROCESS_TEST_HANDLER_DELAY_S", "0"))
    if delay:
        time.sleep(delay)
    return handlers.Result(f"seen {ctx.message.id}")
