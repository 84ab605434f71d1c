"""A closed-loop load generator: N clients, each sending its next request when the last
one is answered, for a fixed time. Only 127.0.0.1 is ever targeted.

The clients share one aiohttp session with a connection per client. On 2 cores an httpx
client was the bottleneck: against a FastAPI endpoint answering a fixed body it reached
231 requests/s at 32 clients (p50 83 ms) where aiohttp reached 1,754 (p50 16 ms), and at one
client 568 against 1,063. The load generator shares the machine with the services it
measures, so its cost per request is kept as low as it can be.

The first `warmup_s` seconds are not counted; a request counts in the window when it
finishes inside it. When the window closes, clients stop sending and the requests still
in flight are awaited (bounded by the request timeout), so the next cell starts on an
idle server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

# Bounds every client loop by count as well as by time.
MAX_REQUESTS_PER_CLIENT = 100_000


@dataclass(frozen=True)
class RequestSpec:
    """One prepared request; bodies are built once, before any clock starts."""

    path: str
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"


class RequestFailed(Exception):
    """Raised by an exchange for an answer that does not count: its kind is recorded."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# One request and its whole answer. Returns what the suite measures beside the latency
# (time.perf_counter() values and counts, e.g. when the first token came); raises
# RequestFailed, aiohttp.ClientError or TimeoutError for a failure.
Exchange = Callable[[aiohttp.ClientSession, RequestSpec], Awaitable[Mapping[str, Any]]]


async def plain_exchange(client: aiohttp.ClientSession, spec: RequestSpec) -> Mapping[str, Any]:
    """Send, read the whole body, expect 200: what a request/response service does."""
    async with client.request(
        spec.method, spec.path, data=spec.content, headers=spec.headers
    ) as response:
        await response.read()
        if response.status != 200:
            raise RequestFailed(f"http_{response.status}")
    return {}


@dataclass(frozen=True)
class Record:
    """One request: when it was sent and finished, what went wrong, what else was measured."""

    sent: float
    finished: float
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class LoadResult:
    window_start: float  # time.perf_counter() values
    window_end: float
    latencies_s: list[float]
    errors: int
    error_kinds: dict[str, int]
    # Every successful request, inside the window or not (a stream may straddle it).
    successes: list[Record] = field(default_factory=list)

    @property
    def window_s(self) -> float:
        return self.window_end - self.window_start


def check_local(base_url: str) -> None:
    host = urlsplit(base_url).hostname
    if host != "127.0.0.1":
        raise ValueError(f"the load generator only targets 127.0.0.1, not {host!r}")


async def closed_loop(
    base_url: str,
    requests: Sequence[RequestSpec],
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    timeout_s: float = 60.0,
    on_window: Callable[[float, float], None] | None = None,
    exchange: Exchange = plain_exchange,
    ramp_s: float = 0.0,
) -> LoadResult:
    """Runs `concurrency` clients for warmup_s + duration_s; client i starts at payload i,
    `ramp_s * i / concurrency` seconds in (within the warm-up), so that clients whose
    requests all take as long (streams of a fixed length) do not stay in lock-step."""
    if ramp_s < 0 or (ramp_s > 0 and ramp_s >= warmup_s):
        raise ValueError("the ramp must end inside the warm-up")
    check_local(base_url)
    if concurrency < 1 or not requests:
        raise ValueError("need at least one client and one request")
    started = time.perf_counter()
    window_start = started + warmup_s
    window_end = window_start + duration_s
    if on_window is not None:
        on_window(window_start, window_end)
    records: list[Record] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as client:

        async def one_client(index: int) -> None:
            await asyncio.sleep(ramp_s * index / concurrency)
            for n in range(MAX_REQUESTS_PER_CLIENT):
                if time.perf_counter() >= window_end:
                    return
                spec = requests[(index + n * concurrency) % len(requests)]
                sent = time.perf_counter()
                error: str | None = None
                extra: Mapping[str, Any] = {}
                try:
                    extra = await exchange(client, spec)
                except RequestFailed as exc:
                    error = exc.kind
                except (aiohttp.ClientError, TimeoutError) as exc:
                    error = type(exc).__name__
                    if isinstance(exc, aiohttp.ClientConnectionError):
                        await asyncio.sleep(0.05)  # a refused connection must not spin
                records.append(Record(sent, time.perf_counter(), error, extra))

        clients = [asyncio.create_task(one_client(i)) for i in range(concurrency)]
        budget = warmup_s + duration_s + timeout_s + 5
        done, pending = await asyncio.wait(clients, timeout=budget)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    result = summarise(
        [(r.finished, r.finished - r.sent, r.error) for r in records], window_start, window_end
    )
    result.successes = [record for record in records if record.error is None]
    return result


def summarise(
    records: Sequence[tuple[float, float, str | None]], window_start: float, window_end: float
) -> LoadResult:
    """Keeps what finished inside the window: latencies of successes, a count of errors.
    Each record is (finished, latency, error)."""
    latencies: list[float] = []
    kinds: dict[str, int] = {}
    for finished, latency, error in records:
        if not window_start <= finished <= window_end:
            continue
        if error is None:
            latencies.append(latency)
        else:
            kinds[error] = kinds.get(error, 0) + 1
    return LoadResult(window_start, window_end, latencies, sum(kinds.values()), kinds)
