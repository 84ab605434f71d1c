"""Bad requests of every shape get a 4xx with a stable code, never a 500."""

from __future__ import annotations

import httpx
import pytest

Inputs = dict[str, list[float]]


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


@pytest.mark.parametrize(
    ("inputs", "code"),
    [
        ([[1.0] * 63], "wrong_input_size"),
        ([[1.0] * 65], "wrong_input_size"),
        ([[1.0] * 64, [1.0] * 10], "wrong_input_size"),
        ([[17.0] + [0.0] * 63], "value_out_of_range"),
        ([[-0.5] + [0.0] * 63], "value_out_of_range"),
        ([[1e308] * 64], "value_out_of_range"),
        ([[0.0] * 64] * 65, "too_many_inputs"),
        ([], "invalid_request"),
        ([[]], "wrong_input_size"),
        ([["a"] * 64], "invalid_request"),
        ("not a list", "invalid_request"),
    ],
)
def test_a_bad_input_gets_422_with_its_code(
    client: httpx.Client, inputs: object, code: str
) -> None:
    response = client.post("/v1/classify", json={"inputs": inputs})
    assert response.status_code == 422, response.text
    assert error_code(response) == code


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_a_value_that_is_not_finite_gets_422(client: httpx.Client, literal: str) -> None:
    body = '{"inputs": [[' + ", ".join([literal] + ["0"] * 63) + "]]}"
    response = client.post(
        "/v1/classify", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert error_code(response) == "value_out_of_range"


@pytest.mark.parametrize(
    "body", [b"{", b"[1, 2", b"\xff\xfe", b"", b"[" * 100_000 + b"]" * 100_000]
)
def test_a_body_that_is_not_json_gets_malformed_json(client: httpx.Client, body: bytes) -> None:
    response = client.post(
        "/v1/classify", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert error_code(response) == "malformed_json"


def test_an_unknown_aggregation_or_field_gets_invalid_request(
    client: httpx.Client, digit_inputs: Inputs
) -> None:
    for body in (
        {"inputs": [digit_inputs["1"]], "aggregation": "median"},
        {"inputs": [digit_inputs["1"]], "extra": 1},
        {"input": [digit_inputs["1"]]},
    ):
        response = client.post("/v1/classify", json=body)
        assert response.status_code == 422
        assert error_code(response) == "invalid_request"


def test_a_body_that_is_not_json_gets_415(client: httpx.Client) -> None:
    response = client.post("/v1/classify", content=b"1,2,3", headers={"Content-Type": "text/csv"})
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"
