"""The fault proxy itself, spoken to with plain httpx: each fault does what it says, to exactly the requests named."""

from __future__ import annotations

import httpx
import pytest

from tests.faults.proxy import Fault, FaultProxy
from tests.servers import API

INFO = API + "/info"


def get(proxy: FaultProxy, *, timeout: float = 10.0) -> httpx.Response:
    with httpx.Client(base_url=proxy.url, timeout=timeout) as http:
        return http.get(INFO)


def test_rules_hit_the_requests_they_name_then_pass(proxy: FaultProxy) -> None:
    rule = proxy.inject(Fault.answer(503), method="GET", path="/info$", times=2)
    other = proxy.inject(Fault.reset(), method="PUT")
    assert [get(proxy).status_code for _ in range(3)] == [503, 503, 200]
    assert (rule.hits, other.hits) == (2, 0)
    assert proxy.count("GET", "/info$") == 3
    assert proxy.count("GET", "/info$", forwarded=True) == 1


def test_an_armed_rule_waits_for_the_rule_that_arms_it(proxy: FaultProxy) -> None:
    first = proxy.inject(Fault.passthrough(), path="/info$", times=1)
    proxy.inject(Fault.answer(502), path="/info$", armed_by=first)
    assert [get(proxy).status_code for _ in range(3)] == [200, 502, 502]


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.reset(), (httpx.RemoteProtocolError, httpx.ReadError)),
        (Fault.reset(after=True), (httpx.RemoteProtocolError, httpx.ReadError)),
        (Fault.garbage(), httpx.RemoteProtocolError),
        (Fault.truncate(), httpx.RemoteProtocolError),
        (Fault.drop(), httpx.ReadTimeout),
        (Fault.drop(after=True), httpx.ReadTimeout),
        (Fault.stall(), httpx.ReadTimeout),
        (Fault.delay(30), httpx.ReadTimeout),
        (Fault.delay(30, after=True), httpx.ReadTimeout),
    ],
    ids=["reset", "reset-after", "garbage", "truncate", "drop", "drop-after", "stall", "delay", "delay-after"],
)
def test_each_fault(proxy: FaultProxy, fault: Fault, error: type[Exception] | tuple[type[Exception], ...]) -> None:
    proxy.inject(fault, path="/info$", times=1)
    with pytest.raises(error):
        get(proxy, timeout=0.5)
    forwarded = proxy.count(path="/info$", forwarded=True)
    assert get(proxy).status_code == 200  # the next one passes
    assert proxy.count(path="/info$", forwarded=True) == forwarded + 1


def test_a_stopped_engine_behind_the_proxy_resets_each_connection() -> None:
    with FaultProxy(1) as proxy:  # nothing listens on port 1
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            get(proxy)
        assert proxy.upstream_refused == 1
