"""LAMMPS potential files of element-triplet entries (``.tersoff``, ``.sw``): parsing and selecting entries, and
:class:`TripletFilePotential`, what the potentials read from them share.

As LAMMPS reads them: ``#`` starts a comment, blank lines are skipped, and each entry is three element
names followed by a fixed number of values, possibly over several lines.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Sequence

import torch
from ase.data import atomic_numbers

from hybridpot.empirical.base import EmpiricalPotential, LammpsPair
from hybridpot.errors import PotentialFileError

Triplet = tuple[str, str, str]


class TripletFilePotential(EmpiricalPotential):
    """A potential with one row of parameters per ordered element triplet, read from (and written as) a LAMMPS file.

    Subclasses set :attr:`style` (the LAMMPS pair style, also the file suffix) and implement :meth:`_values`; they
    call :meth:`_remember_file` once their parameters exist.
    """

    style: str

    def _values(self) -> torch.Tensor:  # pragma: no cover - abstract
        """(n_elements**3, n_fields) current parameters in file order, a detached CPU copy."""
        raise NotImplementedError

    def _remember_file(self, path: Path | None) -> None:
        """Record that ``path`` (or no file) holds the current parameters."""
        self.path = Path(path) if path is not None else None
        self._file_values = self._values()

    def _now_in_file(self, path: Path) -> None:
        self._remember_file(path)

    def element_triplets(self) -> list[Triplet]:
        """The element triplets in row order (row ``(a n + b) n + c``)."""
        return [(a, b, c) for a in self.elements for b in self.elements for c in self.elements]

    def entries(self) -> dict[Triplet, list[float]]:
        """Current parameters as ``{(el1, el2, el3): values in file order}``."""
        return dict(zip(self.element_triplets(), self._values().tolist()))

    def lammps_pair(self, type_elements: Sequence[str]) -> LammpsPair:
        """``pair_style STYLE`` with ``pair_coeff * * {file} El1 El2 ...``.

        Raises:
            StructureError: an element this potential does not cover.
            ValueError: no file holds the current parameters (never read or written, or changed since): call
                :meth:`write` first.
        """
        self.types(torch.tensor([atomic_numbers[e] for e in type_elements], dtype=torch.int64))
        if self.path is None or not torch.equal(self._values(), self._file_values):
            raise ValueError(f"{self.source}: the parameters are not those of a file (changed since read, or never "
                             "written); call write(path) first")
        return LammpsPair(style=self.style, coeffs=[("*", "*", f"{{{self.path.name}}} {' '.join(type_elements)}")],
                          files=[self.path])

    @property
    def file_name(self) -> str:
        return self.path.name if self.path is not None else f"potential.{self.style}"


#: a word of a file: (start, end) character offsets in the text and the word itself
Word = tuple[int, int, str]


def entry_words(text: str, per_entry: int, where: str | Path, names: str) -> list[tuple[list[Word], int]]:
    """The file's words (``#`` comments and blank lines skipped) in entries of ``per_entry`` words, with the line
    number where each entry starts; the character offsets let :mod:`hybridpot.empirical.file_parameters` rewrite
    one value in place.

    Raises:
        PotentialFileError: an entry with too many values by the end of a line, or a truncated last entry
            (``names``: the entry's fields, for the message).
    """
    out: list[tuple[list[Word], int]] = []
    words: list[Word] = []
    start = 0
    offset = 0
    for number, line in enumerate(text.split("\n"), start=1):
        body = line.split("#", 1)[0]
        found = [(offset + m.start(), offset + m.end(), m.group()) for m in re.finditer(r"\S+", body)]
        offset += len(line) + 1
        if not found:
            continue
        if not words:
            start = number
        words += found
        if len(words) > per_entry:
            raise PotentialFileError(f"{where}: entry starting at line {start} has {len(words)} values by line {number}, "
                                     f"expected {per_entry} ({names})")
        if len(words) == per_entry:
            out.append((words, start))
            words = []
    if words:
        raise PotentialFileError(f"{where}: truncated entry starting at line {start}: {len(words)} of {per_entry} values ({names})")
    return out


def parse_entries(path: Path, fields: Sequence[str]) -> list[tuple[Triplet, list[float], int]]:
    """Entries of the file as ``(elements, values in ``fields`` order, first line number)``.

    Raises:
        PotentialFileError: an entry with too many or too few values, or a value that is not a finite number.
    """
    names = f"element1 element2 element3 {' '.join(fields)}"
    out = []
    for words, start in entry_words(Path(path).read_text(), 3 + len(fields), path, names):
        texts = [w for _, _, w in words]
        out.append((tuple(texts[:3]), _numbers(texts[3:], fields, path, start), start))
    return out


def read_entries(path: Path, fields: Sequence[str], elements: Sequence[str] | None = None
                 ) -> tuple[list[str], dict[Triplet, list[float]], dict[Triplet, int]]:
    """The entries of ``path`` among ``elements`` (default: every element of the file, in order of first appearance).

    Like LAMMPS, only entries whose three elements are all among ``elements`` are used.

    Returns:
        (elements, {triplet: values}, {triplet: line number}).

    Raises:
        PotentialFileError: what :func:`parse_entries` raises, an element that is not a chemical symbol or has no
            entries, or a duplicate entry.
    """
    parsed = parse_entries(path, fields)
    names = list(dict.fromkeys(name for key, _, _ in parsed for name in key))
    elements = list(names if elements is None else elements)
    for e in elements:
        if e not in atomic_numbers:
            raise PotentialFileError(f"{path}: element {e!r} is not a chemical symbol; pass elements=[...] to use the "
                                     "entries of other elements only")
        if e not in names:
            raise PotentialFileError(f"{path}: no entries for element {e} (the file has {', '.join(names)})")
    entries: dict[Triplet, list[float]] = {}
    lines: dict[Triplet, int] = {}
    for key, values, line in parsed:
        if not set(key) <= set(elements):
            continue
        if key in entries:
            raise PotentialFileError(f"{path}: duplicate entry for {' '.join(key)} (lines {lines[key]} and {line})")
        entries[key] = values
        lines[key] = line
    return elements, entries, lines


def _numbers(words: list[str], fields: Sequence[str], path: Path, line: int) -> list[float]:
    values = []
    for name, word in zip(fields, words):
        try:
            v = float(word)
        except ValueError:
            v = math.nan
        if not math.isfinite(v):
            raise PotentialFileError(f"{path}: entry at line {line}: {name} = {word!r} is not a finite number")
        values.append(v)
    return values
