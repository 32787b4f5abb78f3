"""Where an HTTP/1.1 request ends, decided from the bytes received so far (RFC 9112 §6).

The serving loop buffers each connection until :meth:`Framer.examine` says a whole request is there,
and only then hands it to a request thread; a client that sends slowly therefore costs one
buffer, never a thread. The function never parses more than framing needs: headers are checked
for ``Content-Length``, ``Transfer-Encoding`` and ``Expect``; everything else (and every
malformed request) is left to gunicorn's own parser, which answers it with a 400. A request whose
framing cannot be understood is reported complete at the end of its headers, so that parser sees
it at once instead of the loop waiting for bytes that will never make sense.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

HEADER_END = b"\r\n\r\n"
# RFC 9110 §8.6: Content-Length is 1*DIGIT; 18 digits always fit a signed 64-bit integer.
MAX_CONTENT_LENGTH_DIGITS = 18
# A chunk-size line is hex digits plus optional extensions; anything longer is not a real one.
MAX_CHUNK_LINE = 4096


class State(Enum):
    INCOMPLETE = "incomplete"  # keep reading
    COMPLETE = "complete"  # the first ``length`` bytes are one request: dispatch them
    TOO_LARGE = "too_large"  # refuse with ``status`` without reading further


@dataclass(frozen=True)
class Framing:
    state: State
    length: int = 0
    expects_continue: bool = False  # headers complete, body expected after "100 Continue"
    status: int = 0  # 413 or 431 when TOO_LARGE


INCOMPLETE = Framing(State.INCOMPLETE)


class Framer:
    """Framing of the requests on one connection; keeps its place so each byte is looked at once.

    ``examine`` is called with everything buffered so far, after each read. A client that sends
    one byte at a time must not make the loop rescan kilobytes per byte, so the header search and
    the chunk walk resume where the last call stopped. ``reset`` after a request was taken off
    the front of the buffer.
    """

    def __init__(self, *, max_header_bytes: int, max_body_bytes: int):
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.reset()

    def reset(self) -> None:
        self._scanned = 0  # header search: no HEADER_END starts before this index
        self._header_end = 0  # 0 until the headers are complete
        self._content_length: int | None = None
        self._expects_continue = False
        self._chunk_position: int | None = None  # next chunk line (chunked bodies)
        self._chunk_body = 0
        self._in_trailers = False

    def examine(self, buffer: bytes | bytearray) -> Framing:
        """How much of ``buffer`` (bytes received on this connection) is its next request."""
        if not self._header_end:
            framing = self._headers(buffer)
            if framing is not None:
                return framing
        if self._chunk_position is not None:
            return self._chunked(buffer)
        if self._content_length is None:
            return Framing(State.COMPLETE, self._header_end)
        if len(buffer) >= self._header_end + self._content_length:
            return Framing(State.COMPLETE, self._header_end + self._content_length)
        return self._waiting_for_body(buffer)

    def _headers(self, buffer: bytes) -> Framing | None:
        start = 0
        # A client may send empty lines before a request line (RFC 9112 §2.2).
        while buffer.startswith(b"\r\n", start):
            start += 2
        end = buffer.find(HEADER_END, max(start, self._scanned))
        if end < 0:
            if len(buffer) - start > self.max_header_bytes:
                return Framing(State.TOO_LARGE, status=431)
            self._scanned = max(start, len(buffer) - len(HEADER_END) + 1)
            return INCOMPLETE
        header_end = end + len(HEADER_END)
        if header_end - start > self.max_header_bytes:
            return Framing(State.TOO_LARGE, status=431)
        self._header_end = header_end
        fields = _fields(bytes(buffer[start:end]))
        chunked, length = fields.get(b"transfer-encoding"), fields.get(b"content-length")
        self._expects_continue = fields.get(b"expect", b"").strip().lower() == b"100-continue"
        if chunked is not None:
            if length is None and chunked.strip().lower() == b"chunked":
                self._chunk_position = header_end
            # Otherwise ambiguous or unsupported framing: complete, and gunicorn refuses it.
            return None
        if length is None:
            return None  # no body
        length = length.strip()
        if not length.isascii() or not length.isdigit() or len(length) > MAX_CONTENT_LENGTH_DIGITS:
            return None  # not a valid Content-Length: complete, and gunicorn answers 400
        self._content_length = int(length)
        if self._content_length > self.max_body_bytes:
            return Framing(State.TOO_LARGE, status=413)
        return None

    def _waiting_for_body(self, buffer: bytes) -> Framing:
        # "100 Continue" only while nothing of the body has arrived (RFC 9110 §10.1.1).
        return Framing(State.INCOMPLETE,
                       expects_continue=self._expects_continue and len(buffer) == self._header_end)

    def _chunked(self, buffer: bytes) -> Framing:
        """Walk the chunks after the headers: complete after the last chunk and its trailers."""
        position = self._chunk_position
        while not self._in_trailers:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                self._chunk_position = position
                if len(buffer) - position > MAX_CHUNK_LINE:
                    return Framing(State.COMPLETE, len(buffer))  # no chunk line: gunicorn refuses
                return self._waiting_for_body(buffer)
            size_text = buffer[position:line_end].split(b";", 1)[0].strip()
            if not (size_text and size_text.isascii() and _is_hex(size_text)):
                return Framing(State.COMPLETE, line_end + 2)  # malformed: gunicorn answers 400
            size = int(size_text, 16)
            if self._chunk_body + size > self.max_body_bytes:
                return Framing(State.TOO_LARGE, status=413)
            if size == 0:
                self._in_trailers = True
                position = line_end + 2
                break
            if len(buffer) < line_end + 2 + size + 2:
                self._chunk_position = position
                return INCOMPLETE
            self._chunk_body += size
            position = line_end + 2 + size + 2  # data and its CRLF (gunicorn checks the CRLF)
        # Trailer fields, then an empty line.
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                self._chunk_position = position
                if len(buffer) - position > MAX_CHUNK_LINE:
                    return Framing(State.COMPLETE, len(buffer))  # not a trailer: gunicorn refuses
                return INCOMPLETE
            if line_end == position:
                return Framing(State.COMPLETE, line_end + 2)
            position = line_end + 2


HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def _is_hex(text: bytes) -> bool:
    return all(byte in HEX_DIGITS for byte in text)


def _fields(head: bytes) -> dict[bytes, bytes]:
    """The framing header fields, lower-cased; a repeated one is joined with a comma."""
    fields: dict[bytes, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue
        key = name.strip().lower()
        if key in (b"content-length", b"transfer-encoding", b"expect"):
            # Two values make the framing ambiguous; the comma keeps it invalid for the checks.
            fields[key] = fields[key] + b"," + value if key in fields else value
    return fields
