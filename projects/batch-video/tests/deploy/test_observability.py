"""Dashboards and alert rules against the running service and a real Prometheus.

Every PromQL expression must parse (promtool) and read only metrics that the service
exports (scraped from its /metrics here), that a well-known exporter provides
(KNOWN_EXPORTER_METRICS), or that another server the project runs exported when it was
captured (a <server>_metrics.txt beside this file: a release that renames one fails here,
not on a blank panel). A live Prometheus then scrapes the service under the traffic of the
`send_traffic` fixture (conftest.py) and every panel that reads the service must show data.
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

from tests.deploy.tools import OBSERVABILITY, PROJECT_NAME, executable

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

# Metric families of the other servers the project runs, as captured from a real one.
CAPTURED_METRICS = sorted(Path(__file__).parent.glob("*_metrics.txt"))
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


def captured_names() -> set[str]:
    """Every series name the captured servers' /metrics pages carry."""
    return {name for path in CAPTURED_METRICS for name in exported_names(path.read_text())}


def external(names: set[str]) -> bool:
    """Whether every name comes from an exporter or another server, none from the service."""
    return names <= set(KNOWN_EXPORTER_METRICS) | captured_names()


def unknown_metrics(
    queries: list[tuple[str, str]], exported: set[str], captured: set[str] | None = None
) -> dict[str, set[str]]:
    """Metric names a query reads that nobody exports: not the service (`exported`, its
    /metrics), not a known exporter, not a captured server (by default, the files here)."""
    known = exported | set(KNOWN_EXPORTER_METRICS)
    known |= captured_names() if captured is None else captured
    found = {}
    for title, expr in queries:
        if unknown := metric_names(concrete(expr)) - known:
            found[title] = unknown
    return found


@pytest.fixture(scope="module")
def exposition(
    base_url: str, auth_headers: dict[str, str], send_traffic: Callable[[httpx.Client], None]
) -> str:
    """/metrics after one round of traffic, so labelled series exist too."""
    with httpx.Client(base_url=base_url, timeout=120, headers=auth_headers) as client:
        send_traffic(client)
        return client.get("/metrics").text


def test_the_dashboard_has_panels_in_rows_with_unique_ids_and_places() -> None:
    assert DASHBOARDS
    for dashboard in DASHBOARDS:
        panels = json.loads(dashboard.read_text())["panels"]
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{dashboard.name}: ids repeat"
        taken: set[tuple[int, int]] = set()
        for panel in panels:
            place = panel["gridPos"]
            cells = {
                (x, y)
                for x in range(place["x"], place["x"] + place["w"])
                for y in range(place["y"], place["y"] + place["h"])
            }
            assert not cells & taken, f"{dashboard.name}: {panel['title']} overlaps another"
            assert max(x for x, _ in cells) < 24, f"{panel['title']} is wider than the grid"
            taken |= cells
            assert panel["type"] == "row" or panel["targets"], f"{panel['title']}: no query"
        assert panels[0]["type"] == "row"
    titles = {title for dashboard in DASHBOARDS for title, _ in panel_queries(dashboard)}
    assert any(title.startswith("Traffic") for title in titles)
    assert any(title.startswith("Saturation") for title in titles)
    # The GPU row (NVIDIA's dcgm-exporter) is there when the model runs on a GPU by default.
    assert not any(title.startswith("GPU") for title in titles)


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


def test_a_query_for_a_metric_nobody_exports_is_caught(exposition: str) -> None:
    queries = [*all_queries(), ("Made up", "sum(rate(service_made_up_total[5m]))")]
    assert unknown_metrics(queries, exported_names(exposition)) == {
        "Made up": {"service_made_up_total"}
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


def _load(
    client: httpx.Client, stop: threading.Event, send: Callable[[httpx.Client], None]
) -> None:
    """Round after round of the project's traffic until told to stop."""
    while not stop.is_set():
        send(client)
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


def panels_without_data(prometheus: str, queries: list[tuple[str, str]]) -> list[str]:
    """Queries that read the service's own metrics and return no series."""
    return [
        f"{title}: {expr}"
        for title, expr in queries
        if not external(metric_names(concrete(expr)))
        and not query(prometheus, concrete(expr, "20s"))
    ]


@pytest.fixture(scope="module")
def loaded_prometheus(
    prometheus: str,
    base_url: str,
    auth_headers: dict[str, str],
    send_traffic: Callable[[httpx.Client], None],
) -> str:
    """Prometheus after several seconds of the project's traffic from two clients."""
    clients = [httpx.Client(base_url=base_url, timeout=120, headers=auth_headers) for _ in range(2)]
    answered = 'sum(rate(http_requests_total{route=~"/v1/.*", status=~"2.."}[20s])) > 0'
    return drive(
        prometheus, clients, lambda client, stop: _load(client, stop, send_traffic), answered, 90
    )


def test_every_dashboard_panel_returns_data_from_a_live_prometheus(loaded_prometheus: str) -> None:
    queries = [q for dashboard in DASHBOARDS for q in panel_queries(dashboard)]
    assert panels_without_data(loaded_prometheus, queries) == []


def test_a_panel_for_a_metric_the_service_does_not_export_shows_no_data(
    loaded_prometheus: str,
) -> None:
    made_up = [("Made up", "sum(rate(service_made_up_total[$__rate_interval]))")]
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
