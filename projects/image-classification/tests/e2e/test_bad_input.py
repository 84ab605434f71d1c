"""Every kind of bad input gets a 4xx JSON error with a stable code, never a 500."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator

import httpx
import pytest
from PIL import Image

from image_classification.app import create_app
from image_classification.settings import Settings
from tests.images import encode, png_bomb
from tests.live_server import serve

MAX_BODY = 256 * 1024
MAX_IMAGES = 4


@pytest.fixture(scope="module")
def base_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    settings = make_settings(max_body_bytes=MAX_BODY, max_images_per_request=MAX_IMAGES)
    with serve(create_app(settings)) as url:
        yield url


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def upload(data: bytes, name: str = "x.png") -> dict:
    return {"files": (name, data, "image/png")}


@pytest.fixture(scope="module")
def good_png() -> bytes:
    return encode(Image.new("L", (8, 8), 128))


def test_bytes_that_are_not_an_image_are_422_invalid_image(client: httpx.Client) -> None:
    error = assert_error(
        client.post("/v1/classify", files=upload(b"plain text, not pixels", "notes.png")),
        422,
        "invalid_image",
    )
    assert "notes.png" in error["message"]


def test_a_truncated_image_is_422_truncated_image(client: httpx.Client) -> None:
    photo = encode(Image.effect_noise((256, 256), 64).convert("RGB"), "JPEG")
    assert_error(
        client.post("/v1/classify", files=upload(photo[: len(photo) // 2], "cut.jpg")),
        422,
        "truncated_image",
    )


def test_a_truncated_png_is_rejected(client: httpx.Client) -> None:
    png = encode(Image.effect_noise((128, 128), 64))
    response = client.post("/v1/classify", files=upload(png[: len(png) // 2]))
    assert response.status_code == 422
    assert response.json()["error"]["code"] in {"truncated_image", "invalid_image"}


def test_zero_bytes_are_422_empty_image(client: httpx.Client) -> None:
    assert_error(client.post("/v1/classify", files=upload(b"")), 422, "empty_image")


def test_a_decompression_bomb_is_refused_before_decoding(client: httpx.Client) -> None:
    bomb = png_bomb()
    assert len(bomb) < MAX_BODY
    error = assert_error(
        client.post("/v1/classify", files=upload(bomb, "bomb.png")), 422, "image_too_large"
    )
    assert "60000x60000" in error["message"]


def test_a_body_over_the_limit_is_413(client: httpx.Client, good_png: bytes) -> None:
    big = good_png + bytes(MAX_BODY)
    assert_error(client.post("/v1/classify", files=upload(big)), 413, "payload_too_large")


def test_a_streamed_body_over_the_limit_is_413_without_content_length(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 16 * 1024

    response = client.post(
        "/v1/classify", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


def test_an_unsupported_content_type_is_415(client: httpx.Client, good_png: bytes) -> None:
    response = client.post("/v1/classify", content=good_png, headers={"Content-Type": "image/png"})
    assert_error(response, 415, "unsupported_media_type")
    assert_error(client.post("/v1/classify", content=b"{}"), 415, "unsupported_media_type")


def test_too_many_uploaded_images_are_422(client: httpx.Client, good_png: bytes) -> None:
    files = [("files", (f"{i}.png", good_png, "image/png")) for i in range(MAX_IMAGES + 1)]
    assert_error(client.post("/v1/classify", files=files), 422, "too_many_images")


def test_too_many_json_images_are_422(client: httpx.Client, good_png: bytes) -> None:
    images = [base64.b64encode(good_png).decode()] * (MAX_IMAGES + 1)
    assert_error(client.post("/v1/classify", json={"images": images}), 422, "too_many_images")


def test_malformed_json_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/v1/classify", content=b'{"images": [', headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "malformed_json")


def test_json_nested_past_the_parsers_depth_is_422_not_500(client: httpx.Client) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    headers = {"Content-Type": "application/json"}
    response = client.post("/v1/classify", content=deep, headers=headers)
    assert_error(response, 422, "malformed_json")
    assert "nests too deeply" in response.json()["error"]["message"]


def test_invalid_base64_is_422(client: httpx.Client, good_png: bytes) -> None:
    images = [base64.b64encode(good_png).decode(), "not*base64!"]
    error = assert_error(
        client.post("/v1/classify", json={"images": images}), 422, "invalid_base64"
    )
    assert "images[1]" in error["message"]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"images": []},
        {"images": "abc"},
        {"images": ["aGk="], "top_k": 0},
        {"images": ["aGk="], "x": 1},
    ],
)
def test_json_that_breaks_the_schema_is_422_invalid_request(
    client: httpx.Client, payload: dict
) -> None:
    error = assert_error(client.post("/v1/classify", json=payload), 422, "invalid_request")
    assert error["details"]


def test_top_k_below_one_is_422(client: httpx.Client, good_png: bytes) -> None:
    assert_error(
        client.post("/v1/classify", params={"top_k": 0}, files=upload(good_png)),
        422,
        "invalid_request",
    )


def test_multipart_without_files_is_422_no_images(client: httpx.Client) -> None:
    assert_error(client.post("/v1/classify", files={"note": (None, "no files")}), 422, "no_images")


def test_a_broken_multipart_body_is_422(client: httpx.Client) -> None:
    response = client.post(
        "/v1/classify",
        content=b'--b\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n\r\nabc',
        headers={"Content-Type": "multipart/form-data"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in {"malformed_multipart", "no_images"}


def test_unknown_routes_and_methods_get_json_errors(client: httpx.Client) -> None:
    assert_error(client.get("/v1/nothing-here"), 404, "not_found")
    assert_error(client.get("/v1/classify"), 405, "method_not_allowed")


def test_one_bad_image_fails_the_request_and_names_it(
    client: httpx.Client, good_png: bytes
) -> None:
    files = [
        ("files", ("good.png", good_png, "image/png")),
        ("files", ("bad.png", b"junk", "image/png")),
    ]
    error = assert_error(client.post("/v1/classify", files=files), 422, "invalid_image")
    assert "image 1 (bad.png)" in error["message"]


def test_the_service_still_serves_after_bad_input(
    client: httpx.Client, samples: dict[str, bytes]
) -> None:
    for data in (b"", b"junk", png_bomb()):
        assert client.post("/v1/classify", files=upload(data)).status_code == 422
    response = client.post("/v1/classify", files=upload(samples["4"]))
    assert response.status_code == 200
    assert response.json()["predictions"][0]["labels"][0]["label"] == "4"
    assert client.get("/readyz").status_code == 200
