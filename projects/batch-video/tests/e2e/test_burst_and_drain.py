"""Overload and shutdown, against the kind's real service (its `workload` fixture says what
one request doing real work is, and how many the service takes at once).

- A burst of ten times that, all at once: every answer is a 200 or a refusal (429/503 with
  Retry-After and an error code), refusals come before the work, /healthz keeps answering,
  and memory stays inside the admission budget.
- SIGTERM with requests in flight: they all finish with 200, new connections are refused,
  and the process ends.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import generate_latest

from tests.live_server import LiveServer, live_server
from tests.metrics import metric_samples, metric_value
from tests.workload import PeakRSS, Workload

BURST = 10  # times the service's capacity
REFUSED = {429, 503}
# How a request the server never read fails: refused, or reset from the listen backlog.
NOT_CONNECTED = {"ConnectError", "ReadError", "RemoteProtocolError"}


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no HTTP answer (the connection failed)
    began: float  # when the client began the request (connecting, writing)
    sent: float  # when the request was sent whole (unsent: when it began)
    ended: float  # when the answer was read whole, or the connection failed
    code: str = ""  # the error body's code
    retry_after: str = ""
    failure: str = ""  # the transport error, when there was no answer

    @property
    def seconds(self) -> float:
        """The service's time: from the request's last byte written to its answer read,
        leaving out the client's own work of building and writing the request (on a small
        machine, most of a refusal's time as the client sees it)."""
        return self.ended - self.sent


async def _send(http: httpx.AsyncClient, request: httpx.Request) -> Answer:
    """Sends a request built beforehand, noting when it was sent whole."""
    began = sent = time.perf_counter()

    async def trace(event: str, info: dict[str, Any]) -> None:
        nonlocal sent
        if event == "http11.send_request_body.complete":
            sent = time.perf_counter()

    request.extensions["trace"] = trace
    try:
        response = await http.send(request)
    except httpx.TransportError as exc:
        return Answer(0, began, sent, time.perf_counter(), failure=type(exc).__name__)
    ended = time.perf_counter()
    code = response.json()["error"]["code"] if response.status_code >= 400 else ""
    retry_after = response.headers.get("Retry-After", "")
    return Answer(response.status_code, began, sent, ended, code, retry_after)


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def _burst(
    url: str, request: dict[str, Any], requests: int, headers: dict[str, str]
) -> tuple[list[Answer], list[float]]:
    """Every request of the burst at once, and /healthz probed every 50 ms meanwhile.
    It runs in a process of its own, as clients do: in the server's process, the client's
    own work would count in the service's latency."""
    return asyncio.run(_burst_at_once(url, request, requests, headers))


async def _burst_at_once(
    url: str, request: dict[str, Any], requests: int, headers: dict[str, str]
) -> tuple[list[Answer], list[float]]:
    limits = httpx.Limits(max_connections=requests + 1, max_keepalive_connections=requests + 1)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as http:
        # Connections opened beforehand, so the burst's latencies are the service's, not
        # the time to connect.
        await asyncio.gather(*(http.get("/healthz") for _ in range(requests + 1)))
        probes: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not done.is_set():
                started = time.perf_counter()
                response = await http.get("/healthz")
                assert response.status_code == 200, response.text
                probes.append(time.perf_counter() - started)
                await asyncio.sleep(0.05)

        prober = asyncio.create_task(probe())
        built = [http.build_request(**request) for _ in range(requests)]
        answers = await asyncio.gather(*(_send(http, one) for one in built))
        done.set()
        await prober
    return list(answers), probes


def test_a_burst_at_ten_times_capacity_is_served_or_refused_at_once(
    workload: Workload, auth_headers: dict[str, str]
) -> None:
    with live_server(workload.app()) as running:
        workload.prepare(running.url)
        with httpx.Client(base_url=running.url, headers=auth_headers, timeout=120) as http:
            assert http.request(**workload.request).status_code == 200  # warm
            budget = metric_value(http.get("/metrics").text, "admission_memory_budget_bytes")
        requests = BURST * workload.capacity
        gc.collect()
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as client:
            client.submit(time.sleep, 0).result()  # the client process is up
            with PeakRSS() as rss:
                burst = client.submit(_burst, running.url, workload.request, requests, auth_headers)
                answers, probes = burst.result(timeout=300)
        metrics = httpx.get(running.url + "/metrics").text
    reserved = metric_value(metrics, "admission_memory_reserved_bytes")
    statuses = collections.Counter(answer.status for answer in answers)
    served = [answer.seconds for answer in answers if answer.status == 200]
    refused = [answer for answer in answers if answer.status in REFUSED]
    figures = {
        "statuses": dict(statuses),
        "refused_p50_ms": round(statistics.median(a.seconds for a in refused) * 1000, 1)
        if refused
        else None,
        "refused_p95_ms": round(_p95([a.seconds for a in refused]) * 1000, 1) if refused else None,
        "served_p50_ms": round(statistics.median(served) * 1000, 1) if served else None,
        "healthz_max_ms": round(max(probes) * 1000, 1) if probes else None,
        "peak_rss_over_baseline_mb": round((rss.peak - rss.baseline) / 2**20, 1),
        "budget_mb": round(budget / 2**20, 1),
    }
    print(f"burst of {len(answers)} against capacity {workload.capacity}: {figures}")
    assert set(statuses) <= {200, *REFUSED}, figures
    assert served, figures
    if workload.refuses:
        assert refused, f"a burst of {BURST}x capacity was never refused: {figures}"
    for answer in refused:
        assert answer.code, answer
        assert int(answer.retry_after) >= 1, answer
    # Refused before the work: a refusal takes a fraction of what an answer takes, or,
    # where answers themselves are quick, no longer than the burst takes to arrive.
    if refused:
        refused_p95 = _p95([a.seconds for a in refused])
        assert refused_p95 < max(statistics.median(served) / 2, 0.25), figures
    assert probes, figures
    assert max(probes) < 1.0, figures
    assert rss.peak - rss.baseline <= budget, figures
    assert reserved == 0


async def _clients_through_shutdown(
    running: LiveServer, workload: Workload, headers: dict[str, str]
) -> tuple[list[Answer], float]:
    """`capacity` clients send requests back to back, each on a new connection, until one
    cannot connect; SIGTERM arrives once every client has had an answer and the server has
    begun a request (answers that come together, as a batch's do, would otherwise leave
    every client connecting, none in flight, when the signal lands)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=running.url, headers=headers, timeout=120, limits=limits
    ) as http:
        answers: list[Answer] = []
        answered = asyncio.Semaphore(0)

        async def client() -> None:
            first = True
            while True:
                answer = await _send(http, http.build_request(**workload.request))
                answers.append(answer)
                if first:
                    answered.release()
                    first = False
                if answer.status == 0:
                    return

        clients = [asyncio.create_task(client()) for _ in range(workload.capacity)]
        for _ in clients:
            await answered.acquire()
        registry = running.server.config.app.state.metrics.registry
        # Polled: the server's gauge is the only sign that it has begun a request.
        while not registry.get_sample_value("http_requests_in_flight"):  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        terminated = time.perf_counter()
        running.terminate()
        await asyncio.wait_for(asyncio.gather(*clients), timeout=120)
    return answers, terminated


def test_sigterm_finishes_the_requests_in_flight_and_refuses_new_ones(
    workload: Workload, auth_headers: dict[str, str]
) -> None:
    app = workload.app()
    with live_server(app) as running:
        workload.prepare(running.url)
        answers, terminated = asyncio.run(
            _clients_through_shutdown(running, workload, auth_headers)
        )
        running.thread.join(timeout=60)
        assert not running.thread.is_alive(), "the server did not exit after SIGTERM"
    in_flight = [a for a in answers if a.began < terminated < a.ended]
    answered = [a for a in answers if a.status != 0]
    failed = [a for a in answers if a.status == 0]
    # What the server counted on the route: every request it began.
    served = metric_samples(
        generate_latest(app.state.metrics.registry).decode(),
        "http_requests_total",
        route=workload.request["url"],
    )
    began = sum(value for _, value in served)
    print(
        f"SIGTERM with {len(in_flight)} requests in flight: "
        f"{collections.Counter(a.status for a in answered)} answered, "
        f"{collections.Counter(a.failure for a in failed)} not connected"
    )
    assert in_flight, "no request was in flight when SIGTERM arrived"
    # Every request is served or, where the clients fill the service, refused as any
    # overload is; none is failed by the shutdown (`not_ready`), in flight or not.
    outcomes = [(a.status, a.code) for a in answered]
    assert all(status == 200 or status in REFUSED for status, _ in outcomes), outcomes
    assert all(code != "not_ready" for _, code in outcomes), outcomes
    assert any(a.status == 200 for a in in_flight), [a.status for a in in_flight]
    # Every request the server began was answered: none was cut off. Each client stops at
    # its first failed connection, refused or closed before the server read a byte of it
    # (what a load balancer retries), and none waits on a server that is going away.
    assert began == len(answered), (began, len(answered))
    assert len(failed) == workload.capacity
    assert {a.failure for a in failed} <= NOT_CONNECTED, [a.failure for a in failed]
