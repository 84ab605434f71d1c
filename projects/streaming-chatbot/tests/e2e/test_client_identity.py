"""Whom a rate limit counts when API keys are off: the client's address, taken from
X-Forwarded-For only when the connection comes from a trusted proxy."""

from __future__ import annotations

import httpx

from tests.api_keys import HEADERS
from tests.live_server import serve
from tests.workload import Workload

# Two requests, then one every five seconds: the third of a quick three is refused.
LIMITED = {"rate_limit_rps": 0.2, "rate_limit_burst": 2}


def _statuses(url: str, workload: Workload, forwarded_for: list[str]) -> list[int]:
    statuses = []
    for address in forwarded_for:
        headers = {**HEADERS, "X-Forwarded-For": address}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            statuses.append(http.request(**workload.request).status_code)
    return statuses


def test_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(workload: Workload) -> None:
    # A client that names a new address on each request still has one bucket.
    with serve(workload.app(**LIMITED)) as url:
        assert _statuses(url, workload, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) == [
            200,
            200,
            429,
        ]


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(
    workload: Workload,
) -> None:
    with serve(workload.app(**LIMITED, trusted_proxies="127.0.0.1")) as url:
        assert _statuses(url, workload, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) == [
            200,
            200,
            200,
        ]
        # The proxy appends the address it saw: what the client wrote before it is not
        # trusted, so a client cannot pick its bucket by prepending one.
        assert _statuses(
            url, workload, ["198.51.100.7, 203.0.113.9", "198.51.100.8, 203.0.113.9"]
        ) == [200, 200]
        assert _statuses(url, workload, ["198.51.100.9, 203.0.113.9"]) == [429]
