"""Classification through the real HTTP service, with the real demo model."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import httpx
from PIL import Image

from tests.images import encode


def test_one_uploaded_image_gets_its_top_k_labels(
    client: httpx.Client, samples: dict[str, bytes]
) -> None:
    response = client.post(
        "/v1/classify",
        params={"top_k": 3},
        files={"files": ("seven.png", samples["7"], "image/png")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "digits-cnn"
    [prediction] = body["predictions"]
    assert prediction["index"] == 0
    assert prediction["filename"] == "seven.png"
    labels = prediction["labels"]
    assert len(labels) == 3
    assert labels[0]["label"] == "7"
    scores = [label["score"] for label in labels]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= score <= 1.0 for score in scores)


def test_held_out_digits_are_classified_correctly(
    client: httpx.Client, samples: dict[str, bytes]
) -> None:
    files = [("files", (f"{label}.png", data, "image/png")) for label, data in samples.items()]
    response = client.post("/v1/classify", params={"top_k": 1}, files=files)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["filename"] for p in predictions] == [f"{label}.png" for label in samples]
    top = [p["labels"][0]["label"] for p in predictions]
    correct = sum(label == expected for label, expected in zip(top, samples, strict=True))
    assert correct >= 9, predictions


def test_json_accepts_base64_and_data_urls(client: httpx.Client, samples: dict[str, bytes]) -> None:
    plain = base64.b64encode(samples["3"]).decode()
    data_url = "data:image/png;base64," + base64.b64encode(samples["5"]).decode()
    response = client.post("/v1/classify", json={"images": [plain, data_url], "top_k": 2})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["labels"][0]["label"] for p in predictions] == ["3", "5"]
    assert all(len(p["labels"]) == 2 and p["filename"] is None for p in predictions)


def test_any_size_and_colour_mode_is_resized_to_the_model_input(
    client: httpx.Client, samples: dict[str, bytes]
) -> None:
    digit = Image.open(io.BytesIO(samples["0"])).convert("RGB").resize((200, 120))
    files = [
        ("files", ("big.jpg", encode(digit, "JPEG"), "image/jpeg")),
        ("files", ("rgba.png", encode(digit.convert("RGBA")), "image/png")),
    ]
    response = client.post("/v1/classify", files=files)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2


def test_top_k_defaults_and_is_capped_at_the_number_of_labels(
    client: httpx.Client, samples: dict[str, bytes]
) -> None:
    files = {"files": ("1.png", samples["1"], "image/png")}
    default = client.post("/v1/classify", files=files).json()["predictions"][0]["labels"]
    capped = client.post("/v1/classify", params={"top_k": 50}, files=files).json()
    assert len(default) == 5
    assert len(capped["predictions"][0]["labels"]) == 10


def test_model_endpoint_describes_the_checkpoint(client: httpx.Client, model_dir: Path) -> None:
    response = client.get("/v1/model")
    assert response.status_code == 200
    info = response.json()
    assert info["name"] == "digits-cnn"
    assert info["labels"] == [str(d) for d in range(10)]
    assert info["input_size"] == [32, 32]
    assert info["channels"] == 1
    served = model_dir / "model.pt"
    assert info["checksum"] == hashlib.sha256(served.read_bytes()).hexdigest()
    assert info["device"].startswith(("cpu", "cuda"))
    assert info["backend"] == "torch"
    assert info["precision"] is None  # a torch checkpoint records none


def test_openapi_documents_both_request_forms_with_examples(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/classify"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert body["application/json"]["examples"]
    response_schema = schema["components"]["schemas"]["ClassifyResponse"]
    assert response_schema["examples"]
    assert {"413", "415", "422", "503", "504"} <= set(
        schema["paths"]["/v1/classify"]["post"]["responses"]
    )
