"""cProfile of the console ingress hot path on PostgreSQL, in-process (no gunicorn, no HTTP).

`python -m bench.profile_ingress` (BENCH_PROFILE_REQUESTS, default 600): a scratch database,
the console app as the ingest bench serves it, signed presentments through Flask's test client;
prints the mean time per request of ``POST /webhooks/finci`` and of the in-console reference
``POST /bench/reference`` and the profile's top costs (cumulative and own time). The findings
are in bench/ingest.py's docstring.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from bench import ingest
    from bench.common import DEFAULT_PG, ScratchDatabase
    from console.finci.webhook_signature import WebhookSecret, signed_headers
    from tests.support.servers import console_env

    requests = int(os.environ.get("BENCH_PROFILE_REQUESTS", 600))
    with ScratchDatabase(os.environ.get("BENCH_PG_URL", DEFAULT_PG)) as url:
        ingest._prepare(url)
        os.environ.update(console_env(
            url, FINCI_WEBHOOK_SECRETS=ingest.SECRET_TEXT, LOG_LEVEL="WARNING",
            INGRESS_RATE_LIMIT_PER_S="1000000", INGRESS_RATE_LIMIT_BURST="1000000",
            DB_POOL_SIZE="10", CONSOLE_HSTS="false"))
        from bench.reference_app import create_console_app

        app = create_console_app()
        client = app.test_client()
        secret = WebhookSecret.parse(ingest.SECRET_TEXT)

        def post(n: int, path: str) -> None:
            document = {"type": "presentment", "id": f"pres_prof_{n}",
                        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "token_id": "tok_0001", "amount": 1250, "currency": "EUR",
                        "authorization_id": f"auth_prof_{n}",
                        "merchant": {"name": "BENCH SHOP", "mcc": "5411", "country": "DE"}}
            raw = json.dumps(document).encode()
            headers = signed_headers(secret, f"msg_prof_{path[-4:]}_{n}", int(time.time()), raw)
            headers["Content-Type"] = "application/json"
            response = client.post(path, data=raw, headers=headers,
                                   environ_base={"REMOTE_ADDR": "127.0.0.1"})
            assert response.status_code == 200, (response.status_code, response.data[:300])

        for n in range(50):  # warm the pool, prepared statements and caches
            post(n, "/webhooks/finci")
            post(n, "/bench/reference")
        for path in ("/webhooks/finci", "/bench/reference"):
            started = time.perf_counter()
            for n in range(100, 100 + requests):
                post(n, path)
            print(f"{path}: {(time.perf_counter() - started) / requests * 1000:.2f} ms/request")
        profile = cProfile.Profile()
        profile.enable()
        for n in range(10**6, 10**6 + requests):
            post(n, "/webhooks/finci")
        profile.disable()
        stats = pstats.Stats(profile)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
