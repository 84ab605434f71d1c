"""Dashboards and alert rules against the running service and a real Prometheus.

Every PromQL expression must parse (promtool) and read only metrics that the service
exports (scraped from its /metrics here) or that a well-known exporter provides
(KNOWN_EXPORTER_METRICS, the one list of them). A live Prometheus then scrapes the
service under load and every dashboard panel's query must return data.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy_tools import OBSERVABILITY, PROJECT_NAME, executable

DASHBOARDS = sorted((OBSERVABILITY / "dashboards").glob("*.json"))
RULES = OBSERVABILITY / "alerts.rules.yml"
# Metrics that come from other exporters, never from the service itself.
KNOWN_EXPORTER_METRICS = {
    "up": "Prometheus, for every scrape target",
    "DCGM_FI_DEV_GPU_UTIL": "NVIDIA dcgm-exporter",
    "DCGM_FI_DEV_FB_USED": "NVIDIA dcgm-exporter",
    "DCGM_FI_DEV_FB_FREE": "NVIDIA dcgm-exporter",
    "DCGM_FI_DEV_POWER_USAGE": "NVIDIA dcgm-exporter",
    "DCGM_FI_DEV_GPU_TEMP": "NVIDIA dcgm-exporter",
}
# vLLM's own metrics (vllm:*) come from the vLLM server, never from the gateway: they are
# checked against the families a real vLLM 0.32 server exported (vllm_metrics.txt beside
# this file), so a vLLM release that renames one fails here, not on a blank panel; and,
# when VLLM_PYTHON names a Python with vLLM, against that live server's /metrics too.
VLLM_METRICS = Path(__file__).with_name("vllm_metrics.txt")
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "inf", "nan", "atan2",
}  # fmt: skip


def panel_queries(dashboard: Path) -> Iterator[tuple[str, str]]:
    """(panel title, expression) of every query target, rows' nested panels included."""
    panels = list(json.loads(dashboard.read_text())["panels"])
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def rule_queries() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def all_queries() -> list[tuple[str, str]]:
    found = [q for dashboard in DASHBOARDS for q in panel_queries(dashboard)]
    return found + list(rule_queries())


def concrete(expr: str, rate_interval: str = "1m") -> str:
    """A dashboard expression with Grafana's variables replaced, as Prometheus gets it."""
    return expr.replace("$__rate_interval", rate_interval)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (identifiers that are not functions,
    keywords, label names or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\()?", text):
        name, call = match.group(1), match.group(2)
        if not call and name not in PROMQL_WORDS:
            names.add(name)
    return names


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics page can carry, including families with no samples yet."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            suffixes = {
                "counter": ["_total", "_created"],
                "histogram": ["_bucket", "_sum", "_count", "_created"],
                "summary": ["_sum", "_count", "_created"],
            }.get(kind, [])
            names.add(family)
            names.update(family + suffix for suffix in suffixes)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def vllm_names() -> set[str]:
    return exported_names(VLLM_METRICS.read_text())


def unknown_metrics(
    queries: list[tuple[str, str]], exported: set[str], engine: set[str] | None = None
) -> dict[str, set[str]]:
    """Metric names a query reads that nobody exports: the gateway's against `exported`
    (its /metrics), vllm:* against `engine` (by default the captured vLLM families)."""
    known = exported | set(KNOWN_EXPORTER_METRICS)
    engine = vllm_names() if engine is None else engine
    found = {}
    for title, expr in queries:
        names = metric_names(concrete(expr))
        unknown = {name for name in names if not name.startswith("vllm:")} - known
        unknown |= {name for name in names if name.startswith("vllm:")} - engine
        if unknown:
            found[title] = unknown
    return found


# A small corpus of its own: the service under test (conftest's base_url) starts empty.
DOCUMENT = """# Lighthouses

The Bell Rock lighthouse stands off the coast of Angus in Scotland. It was completed
in 1810 and is the oldest surviving sea-washed lighthouse in the world.
"""
ANSWERED = "When was the Bell Rock lighthouse completed?"
UNRELATED = "How many moons does Jupiter have?"


def upload(client: httpx.Client, name: str, text: str) -> int:
    files = {"file": (name, text.encode(), "text/markdown")}
    return client.post("/v1/documents", files=files).status_code


def ask(client: httpx.Client, question: str, max_tokens: int = 8) -> int:
    """One streamed answer, read to its end; the status code."""
    body = {"question": question, "max_tokens": max_tokens, "stream": True}
    with client.stream("POST", "/v1/ask", json=body) as response:
        for _ in response.iter_lines():
            pass
        return response.status_code


@pytest.fixture(scope="module")
def exposition(base_url: str, auth_headers: dict[str, str]) -> str:
    """/metrics after an upload, a duplicate, a rejected file, an answered question and
    one the documents do not cover, so labelled series exist too."""
    with httpx.Client(base_url=base_url, timeout=120, headers=auth_headers) as client:
        assert upload(client, "lighthouses.md", DOCUMENT) == 201
        assert upload(client, "lighthouses.md", DOCUMENT) == 200  # the same text again
        refused = {"file": ("tool.exe", b"MZ", "application/octet-stream")}
        assert client.post("/v1/documents", files=refused).status_code == 415
        assert client.post("/v1/search", json={"query": ANSWERED}).status_code == 200
        assert ask(client, ANSWERED) == 200
        assert ask(client, UNRELATED) == 200
        return client.get("/metrics").text


def test_there_is_a_dashboard_and_every_query_is_found() -> None:
    assert DASHBOARDS
    titles = {title for dashboard in DASHBOARDS for title, _ in panel_queries(dashboard)}
    for word in (
        "Traffic",
        "Errors",
        "Time to first token",
        "Inter-token latency",
        "Active streams",
        "vLLM KV cache",
        "Ingestion: documents and chunks",
        "Ingestion duration",
        "Embedding latency",
        "Retrieval latency",
        "Top score",
        "No-answer rate",
    ):
        assert any(word in title for title in titles), f"no {word} panel"
    assert any(title.startswith("Saturation") for title in titles)


def test_the_metric_name_reader_understands_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, route) (rate(a_seconds_bucket{route=~"/v1/.*"}'
        "[$__rate_interval]))) / on (job) group_left () b_total offset 5m > 2 * 0.01 or vector(0)"
    )
    assert metric_names(concrete(expr)) == {"a_seconds_bucket", "b_total"}


def test_every_query_parses(tmp_path: Path) -> None:
    promtool = executable("promtool")
    rules = [
        {"record": f"query:{index}", "expr": concrete(expr)}
        for index, (_, expr) in enumerate(all_queries())
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    promtool = executable("promtool")
    result = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"],
        cwd=OBSERVABILITY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_queries_read_only_metrics_the_service_or_known_exporters_export(
    exposition: str,
) -> None:
    assert unknown_metrics(all_queries(), exported_names(exposition)) == {}


def test_a_query_for_a_metric_the_service_does_not_export_is_caught(exposition: str) -> None:
    queries = [
        *all_queries(),
        ("Made up", "sum(rate(rag_made_up_total[5m]))"),
        ("Made up engine", "max(vllm:made_up_perc)"),
    ]
    assert unknown_metrics(queries, exported_names(exposition)) == {
        "Made up": {"rag_made_up_total"},
        "Made up engine": {"vllm:made_up_perc"},
    }


# A real Prometheus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def prometheus(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus scraping the running service every second, with the alert rules loaded."""
    binary = executable("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    target = base_url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": PROJECT_NAME, "static_configs": [{"targets": [target]}]}],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    log = (work / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (work / "prometheus.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _load(client: httpx.Client, stop: threading.Event) -> None:
    """Questions back to back, some the documents do not cover, now and then a new
    document, a duplicate and a refused question (a 4xx)."""
    count = 0
    while not stop.is_set():
        count += 1
        if count % 4 == 0:
            note = f"{threading.get_ident()}-{count}"  # new text: a document, not a duplicate
            upload(client, f"note-{note}.md", f"# Note {note}\n\n{DOCUMENT}")
        elif count % 7 == 0:
            client.post("/v1/ask", json={"question": ""})
        else:
            ask(client, UNRELATED if count % 3 == 0 else ANSWERED, max_tokens=4 + count % 4)
        time.sleep(0.02)


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def drive(
    prometheus: str,
    clients: list[httpx.Client],
    load: Callable[[httpx.Client, threading.Event], None],
    ready: str,
    timeout_s: float = 60,
) -> str:
    """Runs `load` with each client on a thread of its own until Prometheus answers the
    `ready` query, then for several more scrapes, so every rate window sees steady
    traffic. Returns `prometheus`."""
    stop = threading.Event()
    workers = [threading.Thread(target=load, args=(client, stop)) for client in clients]
    for worker in workers:
        worker.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(2)
            if query(prometheus, ready):
                break
        time.sleep(8)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        for client in clients:
            client.close()
    return prometheus


def reads_the_gateway(expr: str) -> bool:
    """Whether a query reads the gateway's own metrics (not vLLM's or an exporter's)."""
    own = {n for n in metric_names(concrete(expr)) if not n.startswith("vllm:")}
    return bool(own - set(KNOWN_EXPORTER_METRICS))


def panels_without_data(prometheus: str, queries: list[tuple[str, str]]) -> list[str]:
    """Queries (that read the gateway's own metrics) which return no series."""
    return [
        f"{title}: {expr}"
        for title, expr in queries
        if reads_the_gateway(expr) and not query(prometheus, concrete(expr, "20s"))
    ]


@pytest.fixture(scope="module")
def loaded_prometheus(prometheus: str, base_url: str, auth_headers: dict[str, str]) -> str:
    """Prometheus after about ten seconds of uploads and questions."""
    clients = [httpx.Client(base_url=base_url, timeout=120, headers=auth_headers) for _ in range(2)]
    ready = (
        "sum(rate(llm_completion_tokens_total[20s])) > 0"
        " and sum(rate(rag_ingestion_duration_seconds_count[20s])) > 0"
    )
    return drive(prometheus, clients, _load, ready, timeout_s=90)


def test_every_dashboard_panel_returns_data_from_a_live_prometheus(loaded_prometheus: str) -> None:
    queries = [q for dashboard in DASHBOARDS for q in panel_queries(dashboard)]
    assert panels_without_data(loaded_prometheus, queries) == []


def test_a_panel_for_a_metric_the_service_does_not_export_shows_no_data(
    loaded_prometheus: str,
) -> None:
    made_up = [("Made up", "sum(rate(inference_made_up_total[$__rate_interval]))")]
    assert panels_without_data(loaded_prometheus, made_up) != []


def test_prometheus_loads_and_evaluates_every_alert_rule(loaded_prometheus: str) -> None:
    response = httpx.get(f"{loaded_prometheus}/api/v1/rules", timeout=10).json()
    rules = [rule for group in response["data"]["groups"] for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == {name for name, _ in rule_queries()}
    deadline = time.monotonic() + 10
    while any(rule.get("health") != "ok" for rule in rules) and time.monotonic() < deadline:
        time.sleep(1)
        response = httpx.get(f"{loaded_prometheus}/api/v1/rules", timeout=10).json()
        rules = [rule for group in response["data"]["groups"] for rule in group["rules"]]
    assert [r["name"] for r in rules if r.get("health") != "ok"] == []


def vllm_queries() -> list[tuple[str, str]]:
    return [(t, e) for t, e in all_queries() if "vllm:" in e]


def test_the_captured_vllm_families_hold_what_the_chart_and_dashboard_rely_on() -> None:
    names = vllm_names()
    for needed in (
        "vllm:num_requests_waiting",  # KEDA's trigger and the HPA's custom metric
        "vllm:num_requests_running",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:kv_cache_usage_perc",
        "vllm:generation_tokens_total",
    ):
        assert needed in names
    assert vllm_queries(), "no panel or rule reads vLLM's metrics"


def test_vllm_queries_read_only_what_a_real_vllm_server_exports() -> None:
    # No gateway needed: every vllm:* name against the families vLLM 0.32 exported.
    exported = vllm_names()
    for title, expr in vllm_queries():
        engine = {name for name in metric_names(concrete(expr)) if name.startswith("vllm:")}
        assert engine <= exported, f"{title}: {engine - exported}"


def test_a_vllm_metric_that_vllm_does_not_export_is_caught() -> None:
    made_up = [("Made up", "sum(vllm:num_requests_swapped)")]
    assert unknown_metrics(made_up, exported=set()) == {"Made up": {"vllm:num_requests_swapped"}}
