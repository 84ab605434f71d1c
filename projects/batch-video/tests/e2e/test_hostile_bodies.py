"""Bodies no schema describes, sent to every route that takes one: never a 5xx.

The schema fuzz run (test_schema_fuzz.py) stays inside JSON that Python can write. These
bodies go beyond it, built as raw bytes: nesting deeper than any parser recurses, integers
past the parser's 4,300 digits, 1e999 and NaN, lone surrogates, invalid UTF-8, a truncated
document, and a value of the wrong type at every level of an otherwise valid body. Each
is answered with a 4xx and a JSON error with a stable code, or, where it happens to be
valid, served; and the service stays up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api_keys import HEADERS

# Raw JSON text a value can be replaced with: each is hostile to some parser or model.
HOSTILE_VALUES = [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    "9" * 5000,
    "-" + "9" * 5000,
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    '"\\ud800"',
    '"\\udfff tail"',
    '"a\\u0000b"',
    '"' + "x" * 200_000 + '"',
    "true",
    "null",
    "{}",
    "[]",
    '""',
    "0",
    "-1",
    "0.5",
    '[1, "a", null, {}]',
]
# Documents that are not JSON at all: always a 4xx.
MALFORMED_DOCUMENTS = [
    b"{",
    b'{"a": 1',
    b"\xff\xfe{}",
    b'{"text": "\xc3\x28"}',
    b"{'a': 1}",
    b'{"a": 1} trailing',
]
# JSON, but odd: a 4xx, or served where the route takes it (an optional body may be empty).
ODD_DOCUMENTS = [
    b"",
    b"\xef\xbb\xbf{}",
    b"[]",
    b"null",
    b'"just a string"',
    b"1e999",
    b'{"a": 1, "a": 2}',
]


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def valid_example(spec: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> object:
    """A small value the schema accepts: required fields only, the first choice of each."""
    schema = _resolve(spec, schema)
    for choice in ("anyOf", "oneOf"):
        if choice in schema:
            options = [o for o in schema[choice] if _resolve(spec, o).get("type") != "null"]
            return valid_example(spec, (options or schema[choice])[0], depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if kind == "object":
        properties = schema.get("properties", {})
        return {
            name: valid_example(spec, properties[name], depth + 1)
            for name in schema.get("required", [])
        }
    if kind == "array":
        count = schema.get("minItems", 0)
        return [valid_example(spec, schema.get("items", {}), depth + 1) for _ in range(count)]
    if kind == "string":
        return "a" * max(1, schema.get("minLength", 1))
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    return None


def _paths(value: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    """Every place in a JSON value a hostile value can go: the root, each member, each
    item, and a new member of each object."""
    yield path
    if isinstance(value, dict):
        yield (*path, "unexpected")
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


MARKER = "@@hostile@@"


def with_raw_value(body: object, path: tuple[object, ...], raw: str) -> bytes:
    """`body` as JSON with the value at `path` replaced by the raw JSON text `raw`."""
    if not path:
        return raw.encode("utf-8", "surrogatepass")
    copy = json.loads(json.dumps(body))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = MARKER
    text = json.dumps(copy).replace(json.dumps(MARKER), raw, 1)
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def json_routes(fuzz_url: str) -> list[tuple[str, str, object]]:
    """(method, path, a valid body) of every route that reads a JSON body."""
    spec = httpx.get(fuzz_url + "/openapi.json").json()
    routes = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body = valid_example(spec, content["application/json"]["schema"])
                # A path parameter gets a value no resource has: the body is read first.
                routes.append((method.upper(), path.replace("{", "").replace("}", ""), body))
    assert routes, "no route reads a JSON body"
    return routes


def assert_answered_well(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str), response.text[:500]
        assert error["code"], response.text[:500]


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_hostile_value_anywhere_in_a_body_gets_a_4xx(
    fuzz_url: str, json_routes: list[tuple[str, str, object]], data: st.DataObject
) -> None:
    method, path, body = data.draw(st.sampled_from(json_routes), label="route")
    where = data.draw(st.sampled_from(list(_paths(body))), label="where")
    raw = data.draw(st.sampled_from(HOSTILE_VALUES), label="value")
    response = httpx.request(
        method,
        fuzz_url + path,
        content=with_raw_value(body, where, raw),
        headers={**HEADERS, "Content-Type": "application/json"},
        timeout=60,
    )
    assert_answered_well(response)


@pytest.mark.parametrize("document", MALFORMED_DOCUMENTS + ODD_DOCUMENTS, ids=repr)
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_a_document_that_is_not_the_json_asked_for_gets_a_4xx(
    fuzz_url: str, json_routes: list[tuple[str, str, object]], document: bytes, content_type: str
) -> None:
    for method, path, _ in json_routes:
        response = httpx.request(
            method,
            fuzz_url + path,
            content=document,
            headers={**HEADERS, "Content-Type": content_type},
            timeout=60,
        )
        assert_answered_well(response)
        if document in MALFORMED_DOCUMENTS:
            assert response.status_code >= 400, (path, document, response.text[:300])
    assert httpx.get(fuzz_url + "/healthz").status_code == 200
