"""The order cells run in: contenders interleaved, so machine drift hits all alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Cell:
    repetition: int
    concurrency: int
    contender: str


def interleaved(
    contenders: Sequence[str], concurrencies: Sequence[int], repetitions: int
) -> list[Cell]:
    """Each repetition sweeps every concurrency, running all contenders back to back (A B C,
    then A B C at the next level, ...). The contenders' order rotates by one each repetition,
    so no contender always runs first, right after a change of load."""
    if not contenders or not concurrencies or repetitions < 1:
        return []
    cells = []
    for repetition in range(repetitions):
        shift = repetition % len(contenders)
        order = [*contenders[shift:], *contenders[:shift]]
        for concurrency in concurrencies:
            cells += [Cell(repetition, concurrency, name) for name in order]
    return cells
