"""Reading Prometheus text exposition in tests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def metric_samples(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called `name` whose labels include `labels`.

    The parser names counter samples `<name>_total` even where an exporter did not, so both
    spellings match.
    """
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in (name, f"{name}_total")
        and all(sample.labels.get(key) == value for key, value in labels.items())
    ]


def metric_value(text: str, name: str, **labels: str) -> float:
    """The one sample called `name` with `labels`; fails when there is none or several."""
    found = metric_samples(text, name, **labels)
    assert len(found) == 1, f"expected one {name} sample with {labels}, found {found}"
    return found[0][1]
