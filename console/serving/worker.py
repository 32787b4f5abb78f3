"""A gunicorn worker whose threads only ever see whole requests.

gunicorn's ``gthread`` worker hands a connection to a thread as soon as it is readable; the
thread then blocks in the TLS handshake and in reading headers and body. A few dozen clients that
send a byte every few seconds therefore hold every thread, and FINCI's authorization requests
wait behind them past their 3 s window.

:class:`BufferingThreadWorker` keeps the event loop in charge until a request is complete:
the TLS handshake runs non-blocking in the loop, bytes are buffered per connection, and
:class:`~console.serving.framing.Framer` decides when the headers and body are all there. Only
then does a thread parse and serve the request, from memory. Each request must arrive within
``CONSOLE_REQUEST_READ_TIMEOUT`` of its first byte (408 otherwise); oversized headers (431) and
bodies (413) are refused before they are read. A slow client costs a buffer, not a thread.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import socket
import ssl
import time
from functools import partial
from http import HTTPStatus

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.workers.gthread import TConn, ThreadWorker

from console.serving.framing import Framer, State
from console.serving.limits import ServingLimits

READ_SIZE = 64 * 1024
# After a refusal, unread bytes are drained (at most this much, this long) before closing, so
# the client reads the answer instead of a connection reset.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024
# A stopping worker gives idle kept-alive connections this long (gunicorn's own choice).
STOP_IDLE_LINGER = 2.0


class BufferedConn(TConn):
    """One client connection: its buffered bytes, framing and deadline while in the loop."""

    def __init__(self, cfg, sock, client, server, *, limits: ServingLimits, deadline: float):
        super().__init__(cfg, sock, client, server)
        self.limits = limits
        self.inbox = bytearray()
        self.framer = Framer(max_header_bytes=limits.max_header_bytes,
                             max_body_bytes=limits.max_body_bytes)
        self.handshaking = isinstance(sock, ssl.SSLSocket)
        self.deadline = deadline
        self.continue_sent = False
        self.lingering = -1  # bytes drained while closing; -1 while not closing
        # gunicorn waits for a first byte in the thread unless told it is there; it always is.
        self.data_ready = True

    def init(self):
        # Runs in the request thread right after gunicorn made the socket blocking: bound every
        # read and write there too (a client that does not read its answer).
        self.initialized = True
        self.sock.settimeout(self.limits.read_timeout_s)
        if self.parser is None:
            self.parser = http.get_parser(self.cfg, self.sock, self.client)

    def next_request(self, keepalive_deadline: float) -> None:
        """Back in the loop after a response: the client may send another request."""
        self.inbox = bytearray(self.parser.unreader.take_buffered())
        self.framer.reset()
        self.continue_sent = False
        self.deadline = keepalive_deadline


class BufferingThreadWorker(ThreadWorker):

    @classmethod
    def check_config(cls, cfg, log):
        super().check_config(cfg, log)
        if "h2" in (cfg.http_protocols or ()):
            # HTTP/2 multiplexes streams on one connection; this worker frames HTTP/1.1 only.
            raise RuntimeError("BufferingThreadWorker serves HTTP/1.1 only: remove h2 from "
                               "http_protocols")

    def init_process(self):
        self.limits = ServingLimits.from_env(os.environ)
        self.buffering: dict[int, BufferedConn] = {}
        self._context = gunicorn_sock.ssl_context(self.cfg) if self.cfg.is_ssl else None
        super().init_process()

    # --- accepting and reading, in the loop --------------------------------------------------

    def accept(self, listener):
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        client.setblocking(False)
        if self._context is not None:
            client = self._context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs)
        conn = BufferedConn(self.cfg, client, address, listener.getsockname(), limits=self.limits,
                            deadline=time.monotonic() + self.limits.read_timeout_s)
        self._watch(conn)
        self._on_event(conn, None)

    def _watch(self, conn, events=selectors.EVENT_READ):
        self.buffering[id(conn)] = conn
        try:
            self.poller.modify(conn.sock, events, partial(self._on_event, conn))
        except KeyError:
            self.poller.register(conn.sock, events, partial(self._on_event, conn))

    def _unwatch(self, conn):
        self.buffering.pop(id(conn), None)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _on_event(self, conn, _fileobj):
        try:
            if conn.lingering >= 0:
                self._drain(conn)
            elif conn.handshaking:
                self._handshake(conn)
            else:
                self._read(conn)
        except Exception:
            # A bug here must cost one connection, not the worker and everyone it serves.
            self.log.exception("Error buffering a request from %s", _peer(conn))
            if id(conn) in self.buffering:
                self._close(conn)

    def _handshake(self, conn):
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(conn, selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as error:
            self.log.debug("TLS handshake failed from %s: %s", conn.client, error)
            self._close(conn)
            return
        conn.handshaking = False
        self._watch(conn, selectors.EVENT_READ)
        self._read(conn)

    def _read(self, conn):
        limit = self.limits.max_header_bytes + self.limits.max_body_bytes + READ_SIZE
        received = False
        while len(conn.inbox) < limit:
            try:
                data = conn.sock.recv(READ_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except (ssl.SSLError, OSError):
                self._close(conn)
                return
            if not data:  # the client closed; a partial request has nobody left to answer
                self._close(conn)
                return
            if not conn.inbox and not received:
                # A new request's first byte starts its read deadline (idle keepalive before).
                conn.deadline = time.monotonic() + self.limits.read_timeout_s
            received = True
            conn.inbox += data
        if received:
            self._examine(conn)

    def _examine(self, conn):
        framing = conn.framer.examine(conn.inbox)
        if framing.state is State.COMPLETE:
            self._dispatch(conn)
        elif framing.state is State.TOO_LARGE:
            self._refuse(conn, framing.status)
        elif framing.expects_continue and not conn.continue_sent:
            conn.continue_sent = True
            self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")

    def _dispatch(self, conn):
        self._unwatch(conn)
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(conn.inbox))
        conn.inbox = bytearray()
        self.enqueue_req(conn)

    # --- answers the loop gives itself ---------------------------------------------------------

    def _refuse(self, conn, status: int):
        phrase = HTTPStatus(status).phrase
        body = json.dumps({"error": phrase.lower(), "status": status}).encode()
        head = (f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        self.log.info("Refused a request from %s: %s %s", _peer(conn), status, phrase)
        self._send(conn, head + body)
        self._linger(conn)

    def _send(self, conn, data: bytes):
        # A client that is gone or not reading: its deadline closes the connection.
        with contextlib.suppress(ssl.SSLError, OSError):
            conn.sock.send(data)

    def _linger(self, conn):
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.inbox = bytearray()
        conn.lingering = 0
        conn.deadline = time.monotonic() + LINGER_SECONDS
        self._watch(conn, selectors.EVENT_READ)
        self._drain(conn)

    def _drain(self, conn):
        while conn.lingering < LINGER_BYTES:
            try:
                data = conn.sock.recv(READ_SIZE)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                return
            except (ssl.SSLError, OSError):
                break
            if not data:
                break
            conn.lingering += len(data)
        self._close(conn)

    def _close(self, conn):
        self._unwatch(conn)
        self.nr_conns -= 1
        conn.close()

    # --- deadlines -----------------------------------------------------------------------------

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        stopping = not self.alive
        for conn in list(self.buffering.values()):
            idle = not conn.inbox and not conn.handshaking and conn.lingering < 0
            deadline = conn.deadline
            if stopping and idle:
                deadline = min(deadline, self._stopped_at + STOP_IDLE_LINGER)
            if now < deadline:
                continue
            if conn.lingering >= 0 or idle or conn.handshaking:
                self._close(conn)  # nothing to answer (or already answered)
            else:
                self._refuse(conn, 408)

    def handle_exit(self, sig, frame):
        self._stopped_at = time.monotonic()
        super().handle_exit(sig, frame)

    _stopped_at = 0.0

    # --- after a request, back to the loop -------------------------------------------------------

    def handle_request(self, req, conn):
        # The loop answered "Expect: 100-continue" itself (the body is already here).
        req._expected_100_continue = False
        return super().handle_request(req, conn)

    def finish_request(self, conn, fs):
        try:
            keepalive = bool(fs.result()) if not fs.cancelled() else False
        except Exception:
            keepalive = False
        try:
            conn.sock.setblocking(False)
        except OSError:
            self._close(conn)
            return
        if not keepalive or not self.alive:
            # gunicorn's graceful close lingers in blocking reads, stalling this loop for
            # every client that does not close its end; linger in the loop instead.
            self._linger(conn)
            return
        try:
            conn.next_request(time.monotonic() + self.cfg.keepalive)
            self._watch(conn)
        except OSError:
            self._close(conn)
            return
        if conn.inbox:
            # Pipelined bytes already read: they start the next request's deadline now.
            conn.deadline = time.monotonic() + self.limits.read_timeout_s
            self._examine(conn)
        else:
            # TLS may hold decrypted bytes the poller cannot see.
            self._read(conn)


def _peer(conn) -> str:
    client = conn.client
    return str(client[0]) if isinstance(client, tuple) and client else str(client or "-")
