"""Go-live evidence (issue 17): FINCI's twelve sandbox-validation steps, driven and judged.

``flask --app wsgi evidence run --out DIR`` plays each step against the console and writes the
pack FINCI's onboarding engineer reviews: one JSON file per step, ``report.html`` (opens from
disk, prints to PDF), ``manifest.json`` with every file's SHA-256, and ``manifest.sig`` (Ed25519,
the audit export key) when that key is configured.

How a step is driven: over HTTP, through the simulator's :class:`~console.simulator.sender.Sender`
against the console's real webhook ingress (``--console-url``), not through Flask's test client.
The sender is what the simulator tests and ``make demo`` already use against a console: it signs
like FINCI, applies FINCI's 3-second deadline, sends the advice after the answer and delivers
duplicates, so the evidence shows what FINCI itself would see (answers and their latency on the
wire, headers as received) and works unchanged against a console in another process. How a step
is judged: from the console's own database (stored messages and deliveries, decision records,
holds, postings, ledger entries, card status, audit rows), never from HTTP codes alone.

Modules: ``scenarios`` (the twelve steps: what to send, and the judgement), ``collect`` (the
facts read from the database), ``runner`` (one run: cards, sending, waiting for the worker),
``pack`` (files, report, manifest and signature), ``commands`` (the CLI).
"""
