"""The order cells run in: contenders interleaved, so machine drift hits all alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    repetition: int
    concurrency: int
    contender: str


def interleaved(
    contenders: Sequence[str],
    concurrencies: Sequence[int],
    repetitions: int,
    levels: Mapping[str, Sequence[int]] | None = None,
) -> list[Cell]:
    """Each repetition sweeps every concurrency, running all contenders back to back (A B C,
    then A B C at the next level, ...). The contenders' order rotates by one each repetition,
    so no contender always runs first, right after a change of load. `levels` limits a
    contender to some concurrency levels (a contender not in it runs at all)."""
    if not contenders or not concurrencies or repetitions < 1:
        return []
    cells = []
    for repetition in range(repetitions):
        shift = repetition % len(contenders)
        order = [*contenders[shift:], *contenders[:shift]]
        for concurrency in concurrencies:
            cells += [
                Cell(repetition, concurrency, name)
                for name in order
                if levels is None or name not in levels or concurrency in levels[name]
            ]
    return cells
