"""Numbers of LAMMPS potential files named by a path into the file's structure, read and rewritten in place.

A baseline run by LAMMPS (:mod:`hybridpot.empirical.lammps`) keeps its potential files as text; refitting
one of its parameters (``[baseline] refit``) rewrites that one number of the text (``repr`` of the float,
full precision) and leaves every other character as it was. Which number a path names depends on the
file's format (:data:`FORMATS`), as LAMMPS reads it:

``reaxff`` (ReaxFF force field, ``pair_style reaxff``): line 1 a comment; a count line and that many
general parameters (first number of each line); a count line, 3 header lines and 4 lines per atom type
(the symbol and 8 numbers, then 3 x 8: 32 parameters); a count line, 1 header line and 2 lines per bond
(two atom indices, 8 + 8 numbers); a count line and one line per off-diagonal term (2 indices, 6 numbers),
angle (3, 7), torsion (4, 7; index 0 is the wildcard) and hydrogen bond (3, 4); ``!`` starts a comment::

    general.N                   N = 1 .. number of general parameters
    atom.C.N                    N = 1 .. 32
    bond.C.H.N                  N = 1 .. 16     (either order of the two elements)
    offdiagonal.C.H.N           N = 1 .. 6      (either order)
    angle.C.C.H.N               N = 1 .. 7      (centre in the middle; either direction)
    torsion.X.C.C.X.N           N = 1 .. 7      (X: the wildcard index 0; either direction)
    hbond.O.H.O.N               N = 1 .. 4      (as written)

``meam/library`` (the library file of ``pair_style meam``): per element, 19 words ``elt lat z ielement atwt
alpha b0 b1 b2 b3 alat esub asub t0 t1 t2 t3 rozero ibar``; a path is ``Li.b0`` (the element's name as in
the file, without quotes). ``elt``, ``lat``, ``ielement`` and ``ibar`` are not continuous parameters.

``meam/parameters`` (the parameter file of ``pair_style meam``): lines ``key = value`` or ``key(i,j) = value``;
a path is the key as written, without spaces: ``rc``, ``alpha(1,1)``, ``Cmin(1,1,2)``.

``sw``, ``tersoff``: element-triplet files (:mod:`hybridpot.empirical.triplet_file`); a path is
``Si.Si.Si.epsilon`` (the field names of :mod:`hybridpot.empirical.sw` and :mod:`hybridpot.empirical.tersoff`).
``comb``: the triplet file of ``pair_style comb`` (46 numbers per entry); a path is ``Si.Si.Si.N``, N = 1 .. 46.

Units are the file's own (ReaxFF: kcal/mol; the others: LAMMPS ``metal``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from hybridpot.empirical import sw, tersoff
from hybridpot.empirical.triplet_file import entry_words
from hybridpot.errors import ConfigError, PotentialFileError


@dataclass(frozen=True)
class Span:
    """One number of a file: its characters ``text[start:end]``."""

    start: int
    end: int
    text: str

    @property
    def value(self) -> float:
        return float(self.text)


def _words(line: str, offset: int, comment: str) -> list[tuple[int, int, str]]:
    """(start, end, word) of the words of ``line`` before ``comment``, offsets into the whole text."""
    body = line.split(comment, 1)[0] if comment else line
    return [(offset + m.start(), offset + m.end(), m.group()) for m in re.finditer(r"\S+", body)]


def _number(word: tuple[int, int, str], where: str, what: str) -> Span:
    start, end, text = word
    try:
        float(text)
    except ValueError:
        raise PotentialFileError(f"{where}: {what} is {text!r}, not a number") from None
    return Span(start, end, text)


# ------------------------------------------------------------------------------ ReaxFF

#: numbers per entry of each ReaxFF section after the general parameters, and the atom indices that start an entry
REAXFF_SECTIONS = (("atom", 0, 32, 4, 3), ("bond", 2, 16, 2, 1), ("offdiagonal", 2, 6, 1, 0), ("angle", 3, 7, 1, 0),
                   ("torsion", 4, 7, 1, 0), ("hbond", 3, 4, 1, 0))  # (name, indices, numbers, lines per entry, header lines)


def _reaxff(text: str, where: str) -> dict[str, Span]:
    lines = []  # (line number, words) of the non-blank lines, "!" comments removed
    offset = 0
    for number, line in enumerate(text.split("\n"), start=1):
        lines.append((number, line, offset))
        offset += len(line) + 1
    body = [(n, ln, off) for n, ln, off in lines if ln.strip()]
    cursor = 1  # line 1 is a comment

    def take() -> tuple[int, list[tuple[int, int, str]], str]:
        nonlocal cursor
        if cursor >= len(body):
            raise PotentialFileError(f"{where}: the ReaxFF force field ends early (after line {body[-1][0] if body else 0})")
        n, ln, off = body[cursor]
        cursor += 1
        return n, _words(ln, off, "!"), ln

    def count(what: str) -> int:
        n, words, ln = take()
        try:
            return int(words[0][2])
        except (IndexError, ValueError):
            raise PotentialFileError(f"{where}: line {n}: expected the number of {what}, got {ln.strip()!r}") from None

    out: dict[str, Span] = {}
    for k in range(count("general parameters")):
        n, words, ln = take()
        if not words:
            raise PotentialFileError(f"{where}: line {n}: general parameter {k + 1} missing")
        out[f"general.{k + 1}"] = _number(words[0], where, f"line {n}: general parameter {k + 1}")
    symbols: list[str] = []
    for name, n_index, n_numbers, n_lines, n_header in REAXFF_SECTIONS:
        entries = count(f"{name} entries")
        for _ in range(n_header):
            take()
        for _ in range(entries):
            words: list[tuple[int, int, str]] = []
            first = None
            for _ in range(n_lines):
                n, w, _ln = take()
                first = first or n
                words += w
            lead = 1 if name == "atom" else n_index
            if len(words) < lead + n_numbers:
                raise PotentialFileError(f"{where}: line {first}: {name} entry with {len(words)} words, expected {lead + n_numbers}")
            if name == "atom":
                symbols.append(words[0][2])
                key = words[0][2]
            else:
                try:
                    index = [int(w[2]) for w in words[:n_index]]
                except ValueError:
                    raise PotentialFileError(f"{where}: line {first}: {name} entry starts with "
                                             f"{' '.join(w[2] for w in words[:n_index])}, not atom indices") from None
                if max(index) > len(symbols) or min(index) < 0:
                    continue  # an entry of atom types the file does not define: LAMMPS skips it too
                key = ".".join("X" if i == 0 else symbols[i - 1] for i in index)
            for k in range(n_numbers):
                out[f"{name}.{key}.{k + 1}"] = _number(words[lead + k], where, f"line {first}: {name} {key} parameter {k + 1}")
    return out


def _reaxff_aliases(path: str) -> list[str]:
    """The same entry written in the other direction (bond, off-diagonal, angle, torsion)."""
    parts = path.split(".")
    if len(parts) >= 4 and parts[0] in ("bond", "offdiagonal", "angle", "torsion"):
        return [".".join([parts[0]] + parts[1:-1][::-1] + [parts[-1]])]
    return []


# ------------------------------------------------------------------------------ MEAM

MEAM_LIBRARY_FIELDS = ("elt", "lat", "z", "ielement", "atwt", "alpha", "b0", "b1", "b2", "b3", "alat", "esub", "asub",
                       "t0", "t1", "t2", "t3", "rozero", "ibar")
#: library fields that are not continuous parameters
MEAM_FIXED = ("elt", "lat", "ielement", "ibar")


def _meam_library(text: str, where: str) -> dict[str, Span]:
    out: dict[str, Span] = {}
    for words, line in entry_words(text, len(MEAM_LIBRARY_FIELDS), where, " ".join(MEAM_LIBRARY_FIELDS)):
        element = words[0][2].strip("'\"")
        for field, word in zip(MEAM_LIBRARY_FIELDS, words):
            if field not in MEAM_FIXED:
                out[f"{element}.{field}"] = _number(word, where, f"entry {element} (line {line}): {field}")
    return out


_MEAM_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(\(\s*\d+\s*(?:,\s*\d+\s*)*\))?\s*=\s*(\S+)\s*$")


def _meam_parameters(text: str, where: str) -> dict[str, Span]:
    out: dict[str, Span] = {}
    offset = 0
    for number, line in enumerate(text.split("\n"), start=1):
        body = line.split("#", 1)[0]
        if body.strip():
            m = _MEAM_ASSIGNMENT.match(body)
            if m is None:
                raise PotentialFileError(f"{where}: line {number}: expected 'keyword = value' or 'keyword(i,j) = value', got {body.strip()!r}")
            key = m.group(1) + re.sub(r"\s", "", m.group(2) or "")
            try:
                float(m.group(3))
            except ValueError:
                pass  # a string value (lattce): not a parameter
            else:
                out[key] = Span(offset + m.start(3), offset + m.end(3), m.group(3))
        offset += len(line) + 1
    return out


# ------------------------------------------------------------------------------ triplet files


def _triplets(fields: tuple[str, ...]) -> Callable[[str, str], dict[str, Span]]:
    def read(text: str, where: str) -> dict[str, Span]:
        out: dict[str, Span] = {}
        for words, line in entry_words(text, 3 + len(fields), where, f"element1 element2 element3 {' '.join(fields)}"):
            key = ".".join(w[2] for w in words[:3])
            for field, word in zip(fields, words[3:]):
                out[f"{key}.{field}"] = _number(word, where, f"entry {key.replace('.', ' ')} (line {line}): {field}")
        return out

    return read


#: format name -> reader of every parameter path of a file's text
FORMATS: dict[str, Callable[[str, str], dict[str, Span]]] = {
    "reaxff": _reaxff,
    "meam/library": _meam_library,
    "meam/parameters": _meam_parameters,
    "sw": _triplets(sw.FIELDS),
    "tersoff": _triplets(tersoff.FIELDS),
    "comb": _triplets(tuple(str(k) for k in range(1, 47))),
}


def parameters(text: str, format: str, where: str) -> dict[str, Span]:
    """Every parameter path of a file's ``text`` in ``format`` (:data:`FORMATS`) and where its number is.

    Raises:
        PotentialFileError: a file that does not have the format's structure (``where`` names it).
    """
    return FORMATS[format](text, where)


def locate(text: str, format: str, path: str, where: str) -> Span:
    """The number that ``path`` names in ``text`` (module docstring).

    Raises:
        ConfigError: no such parameter (the message gives examples of the paths the file has).
        PotentialFileError: a malformed file.
    """
    found = parameters(text, format, where)
    for candidate in [path] + (_reaxff_aliases(path) if format == "reaxff" else []):
        if candidate in found:
            return found[candidate]
    examples = list(found)
    shown = ", ".join(examples[:8]) + (f", ... ({len(examples)} in all)" if len(examples) > 8 else "")
    raise ConfigError(f"{where}: no parameter {path!r} in this {format} file; its parameters are named like {shown}")


def rewrite(text: str, values: list[tuple[Span, float]]) -> str:
    """``text`` with each span's number replaced by ``repr`` of its new value (full precision)."""
    out = text
    for span, value in sorted(values, key=lambda sv: sv[0].start, reverse=True):
        if out[span.start:span.end] != span.text:
            raise ValueError(f"the text changed at characters {span.start}..{span.end}: expected {span.text!r}")
        out = out[:span.start] + repr(float(value)) + out[span.end:]
    return out
