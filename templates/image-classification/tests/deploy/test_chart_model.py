"""Where the chart's pods get the checkpoint: the image, a PVC, or a verified download."""

from __future__ import annotations

import pytest

from tests.deploy.chart import VALUE_SETS, merged, pod_spec, render
from tests.deploy.tools import module


def test_the_model_comes_from_a_pvc_or_a_verifying_init_container() -> None:
    cached = pod_spec(render({}))
    mounts = {m["mountPath"]: m["name"] for m in cached["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in cached["volumes"]}
    assert "emptyDir" in volumes[mounts["/models"]]  # the model cache
    pvc = pod_spec(render(VALUE_SETS["model-from-pvc"]))
    models = next(v for v in pvc["volumes"] if v["name"] == "models")
    assert models["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    url = pod_spec(render(VALUE_SETS["model-from-url"]))
    sha256 = VALUE_SETS["model-from-url"]["model"]["sha256"]
    fetch = url["initContainers"][0]
    env = {e["name"]: e["value"] for e in fetch["env"]}
    assert env["MODEL_SHA256"] == sha256
    assert "hashlib.sha256" in fetch["args"][0]
    service_env = {e["name"]: e.get("value") for e in url["containers"][0]["env"]}
    assert service_env["APP_MODEL_SHA256"] == sha256  # checked again when the model loads
    model_file = merged(VALUE_SETS["model-from-url"])["model"]["file"]
    assert service_env["APP_MODEL_PATH"] == f"/models/{model_file}"


def test_a_model_from_a_url_needs_its_sha256() -> None:
    helm = module("helm_python")
    with pytest.raises(helm.HelmValuesError):
        render({"model": {"source": "url", "url": "https://example.com/m.pt"}})
