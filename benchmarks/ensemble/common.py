"""What the limit and the sequential peer share with the service: its members file and the
code that loads each member.

Both load the members through the rendered project's own `ensemble.config.load_ensemble`
and `ensemble.members.load_model`, so they run the same files in the same runtimes, with
the same ONNX Runtime session options and checksum checks, as the service does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ensemble.config import EnsembleSpec
    from ensemble.members import Model


def load_members(
    members_path: Path, threads: int, device: str = "cpu"
) -> tuple[EnsembleSpec, list[Model]]:
    """The members file and each member's model, in the file's order, with torch set to
    `threads` intra-op threads as the service sets it (APP_TORCH_THREADS)."""
    import torch
    from ensemble.config import load_ensemble
    from ensemble.members import load_model
    from ensemble.settings import Settings

    spec = load_ensemble(members_path)
    settings = Settings.model_construct(device=device, torch_threads=threads)
    models = [
        load_model(member, settings, spec.input.size, len(spec.labels)) for member in spec.members
    ]
    torch.set_num_threads(threads)
    return spec, models
