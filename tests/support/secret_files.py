"""Production configurations for tests: secrets as ``NAME_FILE`` paths, as production requires
(console.settings._read refuses a plain environment variable for a secret there)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

# The variables the console reads as secrets (``_read(..., secret=True)``).
SECRET_VARIABLES = frozenset({
    "SECRET_KEY", "FINCI_WEBHOOK_SECRETS", "OIDC_CLIENT_SECRET", "FINCI_API_TOKEN",
    "FINCI_API_SECRET", "AUDIT_EXPORT_SIGNING_KEY", "CONSOLE_METRICS_TOKEN", "VAULT_TOKEN",
    "CHECKS_WEBHOOK_URL", "CHECKS_SMTP_PASSWORD", "CHECKS_PAGERDUTY_ROUTING_KEY",
})

_DIRECTORY = Path(tempfile.mkdtemp(prefix="console-test-secrets-"))
atexit.register(shutil.rmtree, _DIRECTORY, ignore_errors=True)


def as_secret_files(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with each plain secret moved to a 0600 file named by ``NAME_FILE``."""
    converted = {}
    for name, value in env.items():
        if name in SECRET_VARIABLES:
            path = _DIRECTORY / f"{name.lower()}-{abs(hash(value))}"
            path.write_text(value, encoding="utf-8")
            path.chmod(0o600)
            converted[f"{name}_FILE"] = str(path)
        else:
            converted[name] = value
    return converted
