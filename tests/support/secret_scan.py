"""The secret-value scanner: QUALITY.md and issue 14 ask that no secret value appears in a log
line, a response or a table, across the whole suite. The suite's own secrets are looked up
where the tests define them (modules already imported; nothing is imported from here), in every
form a leak could take: the webhook secret's ``whsec_`` export, its key as text, the plain
credentials."""

from __future__ import annotations

import sys
from collections.abc import Iterator

# (module, attribute) of each secret the suite configures.
SOURCES = (
    ("tests.conftest", "TEST_SECRET_KEY"),
    ("tests.ingress.helpers", "SECRET"),
    ("tests.ingress.helpers", "OTHER_SECRET"),
    ("tests.cards.conftest", "API_SECRET"),
    ("tests.keys.conftest", "API_SECRET"),
    ("tests.checks.test_probes", "API_SECRET"),
    ("tests.auth.conftest", "CLIENT_SECRET"),
)


def _forms(value: object) -> Iterator[str]:
    export = getattr(value, "export", None)
    if callable(export):
        yield export()
        key = getattr(value, "_key", b"")
        if key.isascii():
            yield key.decode()
    elif isinstance(value, str):
        yield value


def known_secrets() -> list[str]:
    """Every secret value of the modules loaded so far (at least 12 characters, so a short test
    word cannot match by chance)."""
    found = []
    for module_name, attribute in SOURCES:
        module = sys.modules.get(module_name)
        value = getattr(module, attribute, None) if module is not None else None
        found += [form for form in _forms(value) if len(form) >= 12]
    return found


def secrets_in(text: str) -> list[str]:
    """The secrets found in ``text``, shown by their first four characters only."""
    return [f"{secret[:4]}…({len(secret)} chars)" for secret in known_secrets() if secret in text]
