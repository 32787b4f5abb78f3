"""Request framing for the buffering worker: when is a request whole, when is it refused."""

import pytest

from console.serving.framing import Framer, State

LIMITS = {"max_header_bytes": 1024, "max_body_bytes": 100}


def frame(*pieces: bytes, limits=LIMITS):
    """Feed ``pieces`` one after another, as successive reads; the framing after the last."""
    framer, buffer, framing = Framer(**limits), bytearray(), None  # as the worker buffers
    for piece in pieces:
        buffer += piece
        framing = framer.examine(buffer)
    return framing


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_request_without_a_body_is_complete_at_the_end_of_its_headers():
    assert frame(GET).state is State.COMPLETE
    assert frame(GET).length == len(GET)
    assert frame(b"\r\n\r\n" + GET).length == len(GET) + 4  # leading empty lines are allowed


def test_headers_arriving_one_byte_at_a_time_stay_incomplete_until_the_blank_line():
    pieces = [GET[i:i + 1] for i in range(len(GET))]
    assert frame(*pieces[:-1]).state is State.INCOMPLETE
    assert frame(*pieces).state is State.COMPLETE


def test_a_body_of_known_length_must_arrive_whole():
    head = b"POST /w HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
    assert frame(head, b"abc").state is State.INCOMPLETE
    complete = frame(head, b"abc", b"de", b"GET / HTTP/1.1\r\n")  # pipelined bytes after it
    assert (complete.state, complete.length) == (State.COMPLETE, len(head) + 5)


@pytest.mark.parametrize("head, status", [
    (b"POST /w HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413),
    (b"POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n", 413),
    (b"GET / HTTP/1.1\r\nCookie: " + b"c" * 1100, 431),
    (b"GET / HTTP/1.1\r\nCookie: " + b"c" * 1100 + b"\r\n\r\n", 431),
])
def test_oversized_requests_are_refused_before_they_are_read(head, status):
    framing = frame(head)
    assert (framing.state, framing.status) == (State.TOO_LARGE, status)


@pytest.mark.parametrize("length", [b"abc", b"-1", b"\xc2\xb2", b"1" * 19, b"5, 5"])
def test_a_content_length_that_is_not_one_number_goes_straight_to_the_parser(length):
    head = b"POST /w HTTP/1.1\r\nContent-Length: " + length + b"\r\n\r\n"
    assert frame(head).state is State.COMPLETE  # gunicorn's parser answers 400


def test_two_content_lengths_are_ambiguous_and_go_straight_to_the_parser():
    head = b"POST /w HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
    assert frame(head).state is State.COMPLETE


def test_a_chunked_body_is_complete_after_its_last_chunk_and_trailers():
    head = b"POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert frame(head, b"3\r\nabc\r\n").state is State.INCOMPLETE
    assert frame(head, b"3\r\nab").state is State.INCOMPLETE
    assert frame(head, b"3;ext=1\r\nabc\r\n0\r\n").state is State.INCOMPLETE
    assert frame(head, b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n").state is State.INCOMPLETE
    body = b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
    done = frame(head, b"3\r\nab", b"c\r\n0\r", b"\nX-Trailer: 1\r\n", b"\r\n")
    assert (done.state, done.length) == (State.COMPLETE, len(head + body))
    assert frame(head, b"0\r\n\r\n").length == len(head) + 5


@pytest.mark.parametrize("body", [b"zz\r\n", b"\xc2\xb2\r\n", b"\r\n", b"9" * 5000])
def test_a_malformed_chunk_line_goes_straight_to_the_parser(body):
    head = b"POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert frame(head, body, limits={"max_header_bytes": 1024, "max_body_bytes": 10**9}).state \
        is State.COMPLETE


def test_an_endless_trailer_line_goes_straight_to_the_parser():
    head = b"POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    assert frame(head, b"X" * 5000).state is State.COMPLETE


@pytest.mark.parametrize("encoding", [b"gzip", b"chunked, chunked"])
def test_unsupported_transfer_codings_go_straight_to_the_parser(encoding):
    head = b"POST /w HTTP/1.1\r\nTransfer-Encoding: " + encoding + b"\r\n\r\n"
    assert frame(head).state is State.COMPLETE


def test_chunked_with_a_content_length_is_ambiguous_and_goes_straight_to_the_parser():
    head = b"POST /w HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
    assert frame(head).state is State.COMPLETE


def test_expect_100_continue_is_signalled_only_before_any_of_the_body_arrived():
    head = b"POST /w HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    assert frame(head).expects_continue
    assert not frame(head, b"a").expects_continue
    chunked = b"POST /w HTTP/1.1\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert frame(chunked).expects_continue
    assert not frame(chunked, b"1").expects_continue
    assert not frame(b"POST /w HTTP/1.1\r\nContent-Length: 5\r\n\r\n").expects_continue


def test_reset_frames_the_next_request_on_the_same_connection():
    framer = Framer(**LIMITS)
    post = b"POST /w HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"
    assert framer.examine(post).state is State.COMPLETE
    framer.reset()
    assert framer.examine(b"GET / HTT").state is State.INCOMPLETE
    assert framer.examine(GET).length == len(GET)


def test_a_header_line_without_a_colon_is_left_to_the_parser():
    assert frame(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n").state is State.COMPLETE
