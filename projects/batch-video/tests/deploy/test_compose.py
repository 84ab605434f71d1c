"""deploy/compose.yaml: every file it mounts exists and every port it wires up matches."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from batch_video.settings import Settings
from tests.deploy.test_dockerfile import arguments
from tests.deploy.tools import OBSERVABILITY, PROJECT_NAME, ROOT

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
# The service and its observability; a project may add services of its own.
STACK = {PROJECT_NAME, "prometheus", "grafana", "loki", "tempo", "otel-collector"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts from the project."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = (DEPLOY / source).resolve()
    return found


def config_of(compose: dict[str, Any], name: str, target: str) -> Any:
    return yaml.safe_load(mounts(compose["services"][name])[target].read_text())


def published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    pairs = (str(port).rsplit(":", 2)[-2:] for port in service.get("ports", []))
    return {int(container): int(host) for host, container in pairs}


def test_the_stack_has_the_service_and_its_observability(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= STACK
    for name, service in compose["services"].items():
        if "image" in service and name != PROJECT_NAME:
            image = service["image"]
            assert ":" in image, f"{name}: no tag"
            assert not image.endswith(":latest"), f"{name}: {image}"


def test_every_mounted_file_and_the_build_context_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for target, source in mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
    build = compose["services"][PROJECT_NAME]["build"]
    context = (DEPLOY / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).is_file()


def test_the_service_port_is_the_images_and_the_apps(compose: dict[str, Any]) -> None:
    service = compose["services"][PROJECT_NAME]
    port = Settings.model_fields["port"].default
    assert arguments(ROOT / "Dockerfile", "EXPOSE") == [str(port)]
    assert port in published(service)
    assert service["environment"]["APP_PORT"] == str(port)


def test_prometheus_scrapes_the_service_and_loads_the_alert_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    config_flag = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    config = config_of(compose, "prometheus", config_path)
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    port = Settings.model_fields["port"].default
    assert targets == [f"{PROJECT_NAME}:{port}"]
    rules = {str(path) for path in mounts(prometheus)}
    assert set(config["rule_files"]) <= rules
    assert mounts(prometheus)[config["rule_files"][0]] == OBSERVABILITY / "alerts.rules.yml"
    assert 9090 in published(prometheus)


def _reaches(compose: dict[str, Any], url: str, listening: dict[str, set[int]]) -> None:
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    assert parts.hostname in compose["services"], f"{url}: no such service"
    assert parts.port in listening[parts.hostname], f"{url}: {parts.hostname} does not listen there"


def test_every_url_between_services_reaches_a_listening_port(compose: dict[str, Any]) -> None:
    tempo = config_of(compose, "tempo", "/etc/tempo/tempo.yaml")
    loki = config_of(compose, "loki", "/etc/loki/loki.yaml")
    collector = config_of(compose, "otel-collector", "/etc/otelcol/config.yaml")
    protocols = collector["receivers"]["otlp"]["protocols"]
    tempo_grpc = tempo["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    listening = {
        PROJECT_NAME: {Settings.model_fields["port"].default},
        "prometheus": {9090},
        "grafana": {3000},
        "loki": {loki["server"]["http_listen_port"]},
        "tempo": {tempo["server"]["http_listen_port"], int(tempo_grpc.rsplit(":", 1)[1])},
        "otel-collector": {int(p["endpoint"].rsplit(":", 1)[1]) for p in protocols.values()},
    }
    for name, service in compose["services"].items():  # the project's own services
        listening.setdefault(name, set(published(service)))
    for name, ports in listening.items():
        assert set(published(compose["services"][name])) <= ports, name
    for exporter in collector["exporters"].values():
        _reaches(compose, exporter["endpoint"], listening)
    datasources = config_of(
        compose, "grafana", "/etc/grafana/provisioning/datasources/datasources.yaml"
    )
    for source in datasources["datasources"]:
        _reaches(compose, source["url"], listening)
    # Every URL the service is given (OTLP, a vector store, ...) names a service that listens.
    for value in compose["services"][PROJECT_NAME]["environment"].values():
        if str(value).startswith(("http://", "https://", "redis://")):
            _reaches(compose, str(value), listening)


def test_grafana_provisions_the_dashboards_it_mounts(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    providers = config_of(
        compose, "grafana", "/etc/grafana/provisioning/dashboards/dashboards.yaml"
    )
    folder = mounts(grafana)[providers["providers"][0]["options"]["path"]]
    assert folder == OBSERVABILITY / "dashboards"
    assert list(folder.glob("*.json"))
    datasources = config_of(
        compose, "grafana", "/etc/grafana/provisioning/datasources/datasources.yaml"
    )
    assert "prometheus" in {source["uid"] for source in datasources["datasources"]}
