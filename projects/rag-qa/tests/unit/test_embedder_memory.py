"""What the embedder sets aside from the memory budget holds what its largest batch takes."""

from __future__ import annotations

import gc

import pytest

from rag_qa.admission import PeakRSS, release_free_memory
from rag_qa.embeddings import Embedder
from rag_qa.observability import Metrics
from rag_qa.settings import Settings
from tests.api_keys import SETTINGS

# Texts past the model's window, so every batch is as long as a batch can be.
LONG_TEXTS = [f"{i} " + " ".join(["the keeper trimmed the lamp at dusk"] * 60) for i in range(64)]


def peak_of_full_batches(embedder: Embedder) -> int:
    """RSS above the loaded model while embedding two full batches of full windows."""
    embedder.embed(LONG_TEXTS[:2])  # lazy set-up before the measurement
    gc.collect()
    release_free_memory()
    with PeakRSS(interval_s=0.001) as rss:
        embedder.embed(LONG_TEXTS[: 2 * embedder.settings.embedding_batch_size])
    return rss.over_baseline


@pytest.mark.parametrize("batch_size", [8, 32])
def test_the_working_memory_holds_a_full_batch_on_torch(batch_size: int) -> None:
    values = {**SETTINGS, "device": "cpu", "embedding_batch_size": batch_size}
    settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
    embedder = Embedder(settings, Metrics())
    assert embedder.working_bytes == 0  # nothing to set aside before it loads
    embedder.load()
    peak = peak_of_full_batches(embedder)
    set_aside = embedder.working_bytes
    print(f"batch {batch_size}: peak {peak / 2**20:.0f} MB, set aside {set_aside / 2**20:.0f} MB")
    assert peak <= set_aside
    # An estimate, not a blanket: within a small factor of what it measures.
    assert set_aside <= 4 * peak
