import ipaddress

import pytest

from console.ingress.verify import (
    RateLimiter,
    Source,
    SourceRejected,
    check_source,
    peer_address,
    resolve_source,
)
from tests.ingress.helpers import ingress_settings

PROXIES = (ipaddress.ip_network("10.0.0.0/24"),)


def test_the_peer_is_the_client_when_no_proxy_is_trusted():
    assert resolve_source("192.0.2.1", "10.0.0.1", ()) == Source("192.0.2.1", "192.0.2.1", False)


def test_an_ipv4_mapped_peer_is_its_ipv4_address():
    assert resolve_source("::ffff:192.0.2.1", None, ()).client_ip == "192.0.2.1"


def test_no_peer_means_no_client():
    assert resolve_source(None, None, PROXIES) == Source(None, None, False)
    assert resolve_source("unix-socket", None, PROXIES).client_ip is None


def test_all_trusted_hops_leave_the_left_most_as_client():
    assert resolve_source("10.0.0.1", "10.0.0.3, 10.0.0.2", PROXIES).client_ip == "10.0.0.3"


def test_peer_address_ignores_the_app_wide_proxy_fix():
    environ = {"REMOTE_ADDR": "203.0.113.9",
               "werkzeug.proxy_fix.orig": {"REMOTE_ADDR": "192.0.2.1"}}
    assert peer_address(environ) == "192.0.2.1"
    assert peer_address({"REMOTE_ADDR": "192.0.2.1"}) == "192.0.2.1"


def test_an_allowlist_refuses_an_unknown_client():
    settings = ingress_settings(allow_cidrs=PROXIES)
    with pytest.raises(SourceRejected) as refused:
        check_source(settings, Source(None, None, False), lambda name: None)
    assert refused.value.reason == "source_not_allowed"
    check_source(settings, Source("10.0.0.9", "10.0.0.9", False), lambda name: None)


def test_ipv6_clients_are_matched_only_against_ipv6_blocks():
    settings = ingress_settings(allow_cidrs=(ipaddress.ip_network("2001:db8::/32"),))
    check_source(settings, Source("2001:db8::1", "2001:db8::1", False), lambda name: None)
    with pytest.raises(SourceRejected):
        check_source(settings, Source("10.0.0.1", "10.0.0.1", False), lambda name: None)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_rate_limiter_refills_over_time_per_key():
    clock = FakeClock()
    limiter = RateLimiter(2.0, 2, clock=clock)
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b")
    clock.now = 0.5
    assert limiter.allow("a")
    assert not limiter.allow("a")


def test_the_rate_limiter_forgets_old_keys_beyond_its_bound():
    limiter = RateLimiter(0.0001, 1, clock=FakeClock(), max_keys=2)
    assert limiter.allow("a")
    assert not limiter.allow("a")
    limiter.allow("b")
    limiter.allow("c")  # "a" is forgotten
    assert limiter.allow("a")
