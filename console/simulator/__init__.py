"""The FINCI simulator: a stand-in for FINCI in the sandbox, the demo and the benchmarks.

It plays FINCI's two roles towards the console: it *sends* signed webhooks (authorization
requests that wait for the console's answer, advices, reversals, presentments, refunds, card
status changes) with the messiness FINCI.md warns about (duplicates, retries, out-of-order and
late delivery, bursts, a few forged or malformed requests), and it *serves* the Card API the
console calls. Modules, one reason to change each:

- ``cards``: FINCI's card book: seeded cards, masked numbers only, the status model enforced.
- ``scenarios``: what FINCI sends, as per-card scripts (data), and the named scenarios.
- ``sender``: how FINCI delivers: signing, the answer deadline, advices, retries, duplicates,
  ordering and delays.
- ``runner``: worker threads, bursts, pacing, duration and stopping.
- ``report``: counts and latencies, as a summary dict and a table.
- ``card_api_server``: the Card API endpoints on a threaded server on 127.0.0.1.
- ``commands``: the ``simulate`` CLI group (``flask --app wsgi simulate ...`` and
  ``python -m console.simulator ...``).

Nothing here reads the console's settings or touches its database: the simulator is FINCI,
and reaches the console only over HTTP.
"""
