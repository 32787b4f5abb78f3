"""gunicorn settings for the console (`gunicorn -c gunicorn.conf.py wsgi:app`).

Environment: CONSOLE_BIND (default 127.0.0.1:8443), TLS_CERT_FILE + TLS_KEY_FILE (serve HTTPS
directly; leave unset behind a TLS-terminating proxy), WEB_CONCURRENCY, WEB_THREADS,
CONSOLE_REQUEST_READ_TIMEOUT (seconds a request may take to arrive; slower clients get a 408),
CONSOLE_CONTROL_SOCKET (this instance's gunicornc socket; none when unset).
The startup checks (environment stamp, migration head) run once in the master, before forking.
"""

import os

from console.observability.logging import logging_config
from console.serving.limits import ServingLimits
from console.settings import ConfigError

try:
    ServingLimits.from_env(os.environ)  # each worker reads it again; refuse a bad value here
except ConfigError as error:
    raise SystemExit(f"configuration error: {error}") from None

bind = os.environ.get("CONSOLE_BIND", "127.0.0.1:8443")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread's loop, but a request reaches a thread only once it has fully arrived (TLS handshake,
# headers and body buffered in the loop under a deadline): slow clients cannot hold the threads.
worker_class = "console.serving.worker.BufferingThreadWorker"
# Connections one worker buffers or keeps alive; the threads serve only complete requests.
worker_connections = 1000
threads = int(os.environ.get("WEB_THREADS", "8"))
# Authorization answers must leave within FINCI's 3 s; nothing legitimate runs this long.
timeout = 30
graceful_timeout = 20
keepalive = 5
# Request-line and header limits: webhook headers are small; refuse anything unusual early.
limit_request_line = 4096
limit_request_fields = 60
limit_request_field_size = 8190
# X-Forwarded-* is interpreted by the app (ProxyFix with CONSOLE_TRUSTED_PROXY_COUNT) only.
forwarded_allow_ips = ""
proxy_allow_ips = ""

# gunicorn's control socket (for `gunicornc`) defaults to one path per user, shared by every
# instance on the machine, so a second console would take over the first one's. It is off unless
# CONSOLE_CONTROL_SOCKET names this instance's own path (created mode 0600).
control_socket_disable = not os.environ.get("CONSOLE_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["CONSOLE_CONTROL_SOCKET"]
    control_socket_mode = 0o600

certfile = os.environ.get("TLS_CERT_FILE") or None
keyfile = os.environ.get("TLS_KEY_FILE") or None
if bool(certfile) != bool(keyfile):
    raise SystemExit("TLS_CERT_FILE and TLS_KEY_FILE must be set together")


def ssl_context(config, default_ssl_context_factory):
    # TLS 1.2+ with forward-secret AEAD suites only (TLS 1.3 suites are fixed by OpenSSL).
    import ssl

    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    return context


logconfig_dict = logging_config(os.environ.get("LOG_LEVEL", "INFO").upper())
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'


def on_starting(server):
    # Once, in the master: a mismatched environment or pending migration stops the deploy here.
    from console.db import Database
    from console.settings import ConfigError, Settings
    from console.startup import check

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        raise SystemExit(f"configuration error: {error}") from None
    database = Database.from_settings(settings)
    try:
        check(settings, database)
    finally:
        database.dispose()
