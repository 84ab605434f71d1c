"""The texts and vectors the rag-qa suite measures with: real sentences, real embeddings.

Passages are the paragraphs of the docstrings in Python's own standard library (read
with `ast`, nothing imported, nothing downloaded): some 8,000 distinct passages of 60-700
characters on one machine's Python 3.11, technical prose like the documents a RAG service
holds. They are shuffled with a fixed seed; 1,000 are held out as queries, the rest are
the real chunks.

Embedding 100k texts would take over ten minutes on 2 cores, so the large sets are grown
from the real vectors: each synthetic vector is normalize(a + 0.3 b) of two distinct
random real vectors (cosine about 0.96 to a), so every real passage gets a cluster of
near-paraphrases leaning towards another topic, and the set keeps the real vectors'
uneven, topical layout instead of the uniform spread of random vectors. The real vectors
come first: the 10k set is every real vector plus the first synthetic ones, and is the
start of the 100k set. Queries stay real held-out passages, never members of the set.

The embeddings are the project's own Embedder at its defaults (int8 on CPU), computed
once and cached under .nox/ (never committed), keyed by the texts and the embedder.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parents[2] / ".nox" / "bench-cache" / "rag-qa"
QUERIES = 1_000
SEED = 0
MIX = 0.3  # weight of the second real vector in a synthetic one


@dataclass(frozen=True)
class Corpus:
    texts: list[str]  # the real chunks' passages
    queries: list[str]  # held out: never in any set
    vectors: np.ndarray  # (len(texts), dimension), unit length
    query_vectors: np.ndarray
    embed_seconds: float  # 0 when the vectors came from the cache


def stdlib_passages(minimum: int = 60, maximum: int = 700) -> list[str]:
    """Distinct docstring paragraphs of the standard library, whitespace collapsed, in
    file order (tests and IDLE left out)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idlelib", "site-packages", "dist-packages"}
    seen: set[str] = set()
    passages = []
    for path in sorted(root.rglob("*.py")):
        if skip & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ):
                continue
            docstring = ast.get_docstring(node)
            for paragraph in re.split(r"\n\s*\n", docstring or ""):
                text = " ".join(paragraph.split())
                if minimum <= len(text) <= maximum and text not in seen:
                    seen.add(text)
                    passages.append(text)
    return passages


def load(embed: Callable[[Sequence[str]], np.ndarray], embedder_key: str) -> Corpus:
    """The real passages and queries with their vectors, from the cache when it has them."""
    passages = stdlib_passages()
    random.Random(SEED).shuffle(passages)
    queries, texts = passages[:QUERIES], passages[QUERIES:]
    digest = hashlib.sha256("\n".join([embedder_key, *passages]).encode()).hexdigest()[:16]
    cached = CACHE / f"vectors-{digest}.npy"
    if cached.is_file():
        everything = np.load(cached)
        seconds = 0.0
    else:
        print(f"embedding {len(passages)} passages once (cached in {CACHE})", flush=True)
        started = time.perf_counter()
        everything = embed(passages)
        seconds = time.perf_counter() - started
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cached, everything)
    return Corpus(texts, queries, everything[QUERIES:], everything[:QUERIES], seconds)


def grow(real: np.ndarray, size: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """`size` unit vectors: every real one, then normalize(a + MIX b) of random distinct
    real pairs. Also returns, per vector, the index of the real passage it stands for."""
    rng = np.random.default_rng(seed)
    extra = size - len(real)
    if extra <= 0:
        return real[:size].copy(), np.arange(size)
    a = rng.integers(0, len(real), extra)
    b = (a + rng.integers(1, len(real), extra)) % len(real)  # never a itself
    synthetic = real[a] + MIX * real[b]
    synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
    vectors = np.concatenate([real, synthetic.astype(np.float32)])
    return vectors, np.concatenate([np.arange(len(real)), a])
