"""Request and response bodies of the classification API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ClassifyJSONRequest(BaseModel):
    """The JSON form of a classification request: images as base64 strings."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "images": [
                        "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAAAAADhZOFXAAAAHUlEQVR4nGNgQAP/0QUYGBj+M6ELMWAIwQEDAwMDADzJAv5ZVWBOAAAAAElFTkSuQmCC"
                    ],
                    "top_k": 3,
                }
            ]
        },
    )

    images: list[str] = Field(
        min_length=1,
        description="Base64-encoded image files (PNG, JPEG, WebP, ...); data: URLs work too.",
    )
    top_k: int | None = Field(
        default=None, ge=1, description="How many labels to return per image."
    )


class LabelScore(BaseModel):
    label: str
    score: float = Field(description="Probability in [0, 1].")


class ImagePrediction(BaseModel):
    index: int = Field(description="Position of the image in the request.")
    filename: str | None = Field(default=None, description="Name of the uploaded file, if any.")
    labels: list[LabelScore] = Field(description="Top-k labels, most likely first.")


class ClassifyResponse(BaseModel):
    model_config = ConfigDict(
        protected_namespaces=(),
        json_schema_extra={
            "examples": [
                {
                    "model": "digits-cnn",
                    "model_version": "1",
                    "predictions": [
                        {
                            "index": 0,
                            "filename": "digit-7.png",
                            "labels": [
                                {"label": "7", "score": 0.97},
                                {"label": "9", "score": 0.02},
                                {"label": "1", "score": 0.01},
                            ],
                        }
                    ],
                }
            ]
        },
    )

    model: str
    model_version: str
    predictions: list[ImagePrediction]


class ModelInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    labels: list[str]
    input_size: list[int] = Field(
        min_length=2, max_length=2, description="[height, width] the images are resized to."
    )
    channels: int
    mean: list[float]
    std: list[float]
    checksum: str | None = Field(description="sha256 of the checkpoint file.")
    architecture: str | None
    precision: str | None = Field(
        description="fp32, or int8 for a quantised model; null where the file records none."
    )
    device: str = Field(description="Where inference runs: cpu, cuda:0, or a Triton URL.")
    backend: str
    max_batch_size: int
    max_images_per_request: int
