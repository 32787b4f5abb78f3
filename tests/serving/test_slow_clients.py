"""Slow and idle clients against the console as production serves it (gunicorn, TLS).

A request reaches a thread only once it has fully arrived, so connections that trickle headers
or a body, or never finish their TLS handshake, cannot delay FINCI's authorization requests.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time

import pytest
import requests

from console.audit import Actor
from console.db import Database, make_engine
from console.deployment import record_environment
from tests.decisioning.helpers import funded_card, sent_now
from tests.ingress.helpers import SECRET, signed
from tests.support.servers import Gunicorn, console_env

pytestmark = pytest.mark.slow

WORKERS, THREADS = 2, 4
# Well inside FINCI's 3 s window, with room for a loaded CI machine.
ANSWER_WITHIN_S = 1.5


@pytest.fixture
def env(db_factory) -> dict[str, str]:
    url = db_factory.fresh()
    database = Database(make_engine(url))
    with database.transaction() as session:
        record_environment(session, "sandbox", Actor.system("test"))
        funded_card(session, balance=1_000_000)
    database.dispose()
    return console_env(url, FINCI_WEBHOOK_SECRETS=SECRET.export(), LOG_LEVEL="WARNING",
                       INGRESS_RATE_LIMIT_PER_S="100000", INGRESS_RATE_LIMIT_BURST="100000")


class Clients:
    """Raw client connections that are closed however the test ends."""

    def __init__(self, server: Gunicorn):
        self.server = server
        self.stack = contextlib.ExitStack()
        self.context = ssl.create_default_context(cafile=str(server.cert_path))

    def tcp(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        return self.stack.enter_context(sock)

    def tls(self) -> ssl.SSLSocket:
        sock = self.context.wrap_socket(self.tcp(), server_hostname="127.0.0.1")
        return self.stack.enter_context(sock)

    def close(self):
        self.stack.close()


@pytest.fixture
def clients():
    opened: list[Clients] = []

    def open_for(server):
        opened.append(Clients(server))
        return opened[-1]

    yield open_for
    for each in opened:
        each.close()


def trickle(connections: list[ssl.SSLSocket], data: bytes, stop: threading.Event,
            every: float = 0.5):
    """Send ``data`` one byte per connection every ``every`` seconds until ``stop``."""
    for position in range(len(data)):
        if stop.wait(every):
            return
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.sendall(data[position:position + 1])


def authorize(server: Gunicorn) -> tuple[requests.Response, float]:
    raw, headers = signed(sent_now(amount=100))
    started = time.monotonic()
    response = requests.post(server.url + "/webhooks/finci", data=raw, headers=headers,
                             verify=server.verify, timeout=10)
    return response, time.monotonic() - started


def test_slow_and_idle_clients_do_not_delay_authorization_answers(env, tmp_path, clients):
    slow = 2 * WORKERS * THREADS
    with Gunicorn(env, tls_dir=tmp_path, workers=WORKERS, threads=THREADS) as server:
        connect = clients(server)
        authorize(server)  # warm both workers' database connections
        headers = [connect.tls() for _ in range(slow)]
        bodies = [connect.tls() for _ in range(slow)]
        for sock in bodies:
            sock.sendall(b"POST /webhooks/finci HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n{")
        silent = [connect.tcp() for _ in range(slow)]  # never even start TLS
        stop = threading.Event()
        tricklers = [
            threading.Thread(target=trickle, args=(headers, b"GET /healthz HTTP/1.1\r\n" * 9,
                                                   stop)),
            threading.Thread(target=trickle, args=(bodies, b'"a":"' + b"x" * 1990, stop)),
        ]
        for thread in tricklers:
            thread.start()
        try:
            time.sleep(2)  # every slow connection has sent something and is waiting
            timings = []
            for _ in range(5):
                response, took = authorize(server)
                assert response.status_code == 200, response.text
                assert response.json() == {"status": "success"}
                timings.append(took)
                health = requests.get(server.url + "/healthz", verify=server.verify, timeout=10)
                assert health.status_code == 200
        finally:
            stop.set()
            for thread in tricklers:
                thread.join()
        assert max(timings) < ANSWER_WITHIN_S, timings
        assert len(silent) == slow


def read_response(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_request_that_does_not_arrive_in_time_is_answered_408_and_closed(env, tmp_path,
                                                                        clients):
    env = dict(env, CONSOLE_REQUEST_READ_TIMEOUT="2")
    with Gunicorn(env, tls_dir=tmp_path, workers=1, threads=2) as server:
        connect = clients(server)
        sock = connect.tls()
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never end
        answer = read_response(sock)
        waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"Connection: close" in head and b"Content-Type: application/json" in head
        assert json.loads(body) == {"error": "request timeout", "status": 408}
        assert 1.5 < waited < 6, waited
        stalled_body = connect.tls()
        stalled_body.sendall(b"POST /webhooks/finci HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 10\r\n\r\n{")
        assert read_response(stalled_body).startswith(b"HTTP/1.1 408 ")
        assert requests.get(server.url + "/healthz", verify=server.verify,
                            timeout=5).status_code == 200


def exchange(sock: ssl.SSLSocket, data: bytes, responses: int = 1) -> list[bytes]:
    """Send ``data``, read ``responses`` complete responses (Content-Length framed)."""
    sock.sendall(data)
    buffer, answers = b"", []
    while len(answers) < responses:
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(65536)
            assert chunk, (buffer, answers)
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        answers.append(head + b"\r\n\r\n" + rest[:length])
        buffer = rest[length:]
    return answers


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_requests_are_framed_as_http_1_1_requires(env, tmp_path, clients):
    with Gunicorn(env, tls_dir=tmp_path, workers=1, threads=2) as server:
        connect = clients(server)
        # Kept alive, and pipelined: two requests in one write get two answers, in order.
        sock = connect.tls()
        assert exchange(sock, HEALTH)[0].startswith(b"HTTP/1.1 200")
        answers = exchange(sock, HEALTH + b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 2)
        assert [answer[:12] for answer in answers] == [b"HTTP/1.1 200", b"HTTP/1.1 404"]
        # Expect: 100-continue is answered before the body is sent, then the request itself.
        raw, headers = signed(sent_now(amount=100))
        head = (b"POST /webhooks/finci HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
                + f"Content-Length: {len(raw)}\r\n\r\n".encode())
        expecting = connect.tls()
        expecting.sendall(head)
        assert expecting.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        final = exchange(expecting, raw)[0]
        assert final.startswith(b"HTTP/1.1 200")
        assert json.loads(final.partition(b"\r\n\r\n")[2]) == {"status": "success"}
        # A chunked delivery is buffered whole too.
        raw, headers = signed(sent_now(amount=100))
        chunked = (b"POST /webhooks/finci HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
                   + f"{len(raw[:10]):x}\r\n".encode() + raw[:10] + b"\r\n"
                   + f"{len(raw[10:]):x}\r\n".encode() + raw[10:] + b"\r\n0\r\n\r\n")
        assert exchange(connect.tls(), chunked)[0].startswith(b"HTTP/1.1 200")
        # Refused before being read, with a JSON answer.
        too_long = b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"c" * 70_000 + b"\r\n\r\n"
        assert read_response_after(connect.tls(), too_long).startswith(b"HTTP/1.1 431 ")
        too_big = b"POST /webhooks/finci HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"
        answer = read_response_after(connect.tls(), too_big)
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["status"] == 413
        # gunicorn's own parser still judges what framing cannot.
        bad = b"POST /webhooks/finci HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n"
        assert read_response_after(connect.tls(), bad).startswith(b"HTTP/1.1 400 ")


def read_response_after(sock: ssl.SSLSocket, data: bytes) -> bytes:
    with contextlib.suppress(OSError):
        sock.sendall(data)
    return read_response(sock)
