"""The torch backend's checkpoint loading: both formats, digests, labels, architectures,
devices."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from image_classification.architectures import DigitsCNN, build_model
from image_classification.checksums import sha256_of
from image_classification.model import ModelLoadError
from image_classification.settings import Settings
from image_classification.torch_backend import TorchClassifier, resolve_device


@pytest.fixture(scope="module")
def torch_settings(
    make_settings: Callable[..., Settings], model_dir: Path
) -> Callable[..., Settings]:
    """Settings for the TorchScript checkpoint, whatever model the service runs by default."""

    def make(**overrides: object) -> Settings:
        return make_settings(**{"model_path": model_dir / "model.pt", **overrides})

    return make


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(4, 1, 32, 32)).astype(np.float32)


def test_torchscript_and_safetensors_give_the_same_predictions(
    torch_settings: Callable[..., Settings], model_dir: Path, batch: np.ndarray
) -> None:
    scripted = TorchClassifier.load(torch_settings())
    weights = TorchClassifier.load(torch_settings(model_path=model_dir / "model.safetensors"))
    assert weights.metadata.architecture == "digits_cnn"
    assert weights.metadata.preprocessing == scripted.metadata.preprocessing
    np.testing.assert_allclose(scripted.predict(batch), weights.predict(batch), atol=1e-5)
    probabilities = scripted.predict(batch)
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_the_recorded_preprocessing_wins_over_settings(
    torch_settings: Callable[..., Settings],
) -> None:
    classifier = TorchClassifier.load(torch_settings(input_size=(224, 224), input_channels=3))
    assert classifier.metadata.preprocessing.input_size == (32, 32)
    assert classifier.metadata.preprocessing.channels == 1


def test_a_plain_torchscript_export_uses_the_settings_preprocessing(
    torch_settings: Callable[..., Settings], model_dir: Path, tmp_path: Path
) -> None:
    model = DigitsCNN(num_classes=10, in_channels=3).eval()
    path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    shutil.copy(model_dir / "labels.txt", tmp_path / "labels.txt")
    settings = torch_settings(model_path=path, input_size=(48, 40), input_channels=3)
    classifier = TorchClassifier.load(settings)
    spec = classifier.metadata.preprocessing
    assert spec.shape == (3, 48, 40)
    assert spec.mean == (0.485, 0.456, 0.406)
    assert classifier.predict(np.zeros((2, *spec.shape), np.float32)).shape == (2, 10)


def test_a_digest_mismatch_is_refused(torch_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ModelLoadError, match="sha256"):
        TorchClassifier.load(torch_settings(model_sha256="ab" * 32))


def test_the_digest_is_reported(torch_settings: Callable[..., Settings], model_dir: Path) -> None:
    assert TorchClassifier.load(torch_settings()).metadata.sha256 == sha256_of(
        model_dir / "model.pt"
    )


def test_labels_must_match_the_model_outputs(
    torch_settings: Callable[..., Settings], model_dir: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    with pytest.raises(ModelLoadError, match="10 outputs but the labels file has 2"):
        TorchClassifier.load(torch_settings(labels_path=labels))
    labels.write_text("a\na\n")
    with pytest.raises(ModelLoadError, match="repeats"):
        TorchClassifier.load(torch_settings(labels_path=labels))


def test_missing_and_corrupt_checkpoints_are_refused(
    torch_settings: Callable[..., Settings], model_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        TorchClassifier.load(torch_settings(model_path=tmp_path / "absent.pt"))
    corrupt = tmp_path / "model.pt"
    corrupt.write_bytes(b"not a zip archive")
    shutil.copy(model_dir / "labels.txt", tmp_path / "labels.txt")
    with pytest.raises(ModelLoadError, match="cannot load"):
        TorchClassifier.load(torch_settings(model_path=corrupt))
    pickle = tmp_path / "model.pkl"
    pickle.write_bytes(b"\x80\x04")
    with pytest.raises(ModelLoadError, match="unsupported checkpoint"):
        TorchClassifier.load(torch_settings(model_path=pickle))


def test_safetensors_needs_an_architecture(
    torch_settings: Callable[..., Settings], model_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file(DigitsCNN().state_dict(), str(bare))
    shutil.copy(model_dir / "labels.txt", tmp_path / "labels.txt")
    with pytest.raises(ModelLoadError, match="APP_MODEL_ARCHITECTURE"):
        TorchClassifier.load(torch_settings(model_path=bare))
    loaded = TorchClassifier.load(
        torch_settings(
            model_path=bare,
            model_architecture="digits_cnn",
            input_channels=1,
            input_size=(32, 32),
            input_mean=(0.5,),
            input_std=(0.5,),
        )
    )
    assert loaded.metadata.architecture == "digits_cnn"


def test_architectures_resolve_by_name_or_import_path() -> None:
    assert isinstance(build_model("digits_cnn", num_classes=3, in_channels=1), DigitsCNN)
    imported = build_model(
        "image_classification.architectures:DigitsCNN", num_classes=4, in_channels=1
    )
    assert imported.classifier[-1].out_features == 4
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("resnet9000", num_classes=2, in_channels=3)


def test_device_selection() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="no CUDA device"):
            resolve_device("cuda")


def test_the_model_runs_on_the_test_device(
    torch_settings: Callable[..., Settings], device: str
) -> None:
    assert TorchClassifier.load(torch_settings()).device.type == device
