"""Any LAMMPS pair style as the baseline, computed by the LAMMPS library in-process: ``[baseline] type = "lammps"``.

ReaxFF (with its charge equilibration), COMB, MEAM, Stillinger-Weber, BOP, EDIP, tabulated pairs, sums of styles
under ``hybrid/overlay``: whatever the installed LAMMPS runs. The user gives the lines LAMMPS would read::

    [baseline]
    type = "lammps"
    pair_style = "reaxff NULL"
    pair_coeff = ["* * ffield.reax.cho C H O"]       # for the atom types of `elements`, in that order
    elements = ["C", "H", "O"]                       # element of LAMMPS atom type 1, 2, ...
    files = ["ffield.reax.cho"]                      # the files the lines name (relative to the configuration)
    commands = ["fix q all qeq/reaxff 1 0.0 10.0 1e-10 reaxff"]

The lines name each file as listed in ``files`` (or by its base name); hybridpot keeps the files' text
(which is what a model file stores and what refitting rewrites), writes it to a private folder and runs
the lines with those paths. :class:`LammpsBaseline` is an :attr:`~hybridpot.potential.Potential.external`
potential: :func:`hybridpot.potential.evaluate` adds its energies, per-atom energies (``compute pe/atom``),
forces and virial to the residual's, for every caller (the fit, predictions, the ASE calculator).

Each structure is evaluated with ``run 0`` in one LAMMPS instance reused across structures
(:class:`hybridpot.lammps_run.LammpsEngine`; ``commands`` are issued anew for each structure, so a
charge equilibration starts afresh every time). Units: ``units = "auto"`` runs LAMMPS in ``real`` units
where a file's first line says ``UNITS: real`` (ReaxFF force fields, whose parameters are in kcal/mol and
which LAMMPS does not convert) and in ``metal`` otherwise; results are converted to eV with LAMMPS's own
factor. ``atom_style = "auto"`` is ``charge`` for styles that carry charges (reaxff, comb, comb3, smtbq,
styles with ``coul``), ``atomic`` otherwise; charges start at 0 for every structure (``commands`` may set
them: ``set type 1 charge 0.5``).

Results are cached on disk (:mod:`hybridpot.cache`, folder ``$HYBRIDPOT_CACHE`` or ``~/.cache/hybridpot``,
sub-folder ``lammps``), keyed by the SHA-256 of the structure (atomic numbers, positions, cell, pbc) and of
the potential (lines, commands, elements, units, atom style, runs, the files' contents, the LAMMPS
version): a training set is run through LAMMPS once. Parameters being refitted are never cached.

Refitting (``[baseline] refit``): parameters are named ``FILE:PATH`` by a path into the file's structure
(:mod:`hybridpot.empirical.file_parameters`: ReaxFF general/atom/bond/... parameters, MEAM library and
parameter-file entries, Stillinger-Weber, Tersoff and COMB triplet entries), e.g.
``ffield.reax.cho:bond.C.H.1`` or ``library.meam:Li.b0``; ``FILE:`` may be left out where one file can
hold them. The file is rewritten for every trial (:meth:`LammpsBaseline.set_parameter_values`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers

from hybridpot.cache import ResultCache, digest
from hybridpot.empirical import file_parameters
from hybridpot.empirical.base import EmpiricalPotential, LammpsPair
from hybridpot.errors import ConfigError, HybridpotError, PotentialFileError, StructureError
from hybridpot.io.atomic import write_text_atomic
from hybridpot.io.toml import read_toml
from hybridpot.lammps_run import LammpsEngine, LammpsError, LammpsUnavailable, import_lammps
from hybridpot.potential import ExternalTerms
from hybridpot.registry import BaselineType
from hybridpot.settings import Settings, option, required
from hybridpot.system import AtomicSystem

#: version of what a cache entry holds (bump when the results change meaning)
CACHE_FORMAT = "hybridpot-lammps-baseline 1"
#: pair styles (without an accelerator suffix) whose atoms carry charges: atom_style "auto" is "charge" for them
CHARGE_STYLES = ("reaxff", "comb", "comb3", "smtbq")
#: the format of each potential file of a pair style, by its position among the style's files on a pair_coeff line
#: (:mod:`hybridpot.empirical.file_parameters`): what ``[baseline] refit`` can name
STYLE_FILE_FORMATS = {"reaxff": ("reaxff",), "meam": ("meam/library", "meam/parameters"), "sw": ("sw",), "tersoff": ("tersoff",),
                      "comb": ("comb",)}
#: accelerator suffixes of pair style names
_SUFFIXES = ("/omp", "/kk", "/opt", "/gpu", "/intel", "/c")
#: the largest |sum of per-atom energies - energy| LAMMPS may report, relative to max(1, |energy|) (eV)
PER_ATOM_SUM_TOLERANCE = 1e-9


def _base_style(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _strip(line: str, keyword: str) -> str:
    """``line`` without a leading ``keyword`` (users may write ``pair_coeff * * ...`` or ``* * ...``)."""
    words = line.split()
    return " ".join(words[1:]) if words and words[0] == keyword else " ".join(words)


@dataclass
class LammpsSettings(Settings):
    """The keys of ``[baseline] type = "lammps"`` (and of a ``*.lammps.toml`` file, which model files and exported decks
    hold)."""

    pair_style: str = required("the pair_style arguments, e.g. 'reaxff NULL', 'meam', 'sw', 'hybrid/overlay eam/alloy zbl 1.0 2.0'")
    pair_coeff: list[str] = required("the pair_coeff arguments, one line each, for the atom types in the order of "
                                     "elements; files named as in files (or by their base name)")
    elements: list[str] = required("the element of each LAMMPS atom type (type 1 first): the order of the pair_coeff lines")
    files: list[str] = option([], "the potential files the lines name (paths relative to the "
                                  "configuration file); their text is kept in model files")
    commands: list[str] = option([],
        "further LAMMPS commands issued for each structure after its atoms exist, e.g. 'fix q all qeq/reaxff 1 0.0 10.0 "
        "1e-10 reaxff' (a fix or compute is deleted and defined anew for each structure)")
    units: str = option("auto", "'metal', 'real' (files in kcal/mol: ReaxFF), or 'auto': real where a "
                                "file's first line says UNITS: real, else metal; results are in eV")
    atom_style: str = option("auto", "'atomic', 'charge', or 'auto': charge for reaxff, comb, comb3, "
                                     "smtbq and styles with coul, else atomic (charges start at 0)")
    runs: int = option(1, "'run 0' commands per structure, results of the last: 2 for a charge "
                          "equilibration that acts after the forces (fix qeq/comb)")
    cache: bool = option(True, "keep the results of each structure on disk ($HYBRIDPOT_CACHE or "
                               "~/.cache/hybridpot), keyed by SHA-256 of structure and potential")
    contents: dict = option({}, "file name -> text of that file (written by hybridpot into "
                                "model files; such a file is not read from disk)")

    def check_values(self, where: str) -> None:
        if not self.pair_style.split():
            raise ConfigError(f"{where}: pair_style is empty")
        if not self.pair_coeff:
            raise ConfigError(f"{where}: pair_coeff needs at least one line, e.g. '* * FILE {' '.join(self.elements or ['El'])}'")
        bad = [e for e in self.elements if e not in atomic_numbers or e == "X"]
        if bad or not self.elements:
            raise ConfigError(f"{where}: elements = {self.elements!r}: expected chemical symbols, one per LAMMPS atom type")
        if len(set(self.elements)) != len(self.elements):
            raise ConfigError(f"{where}: elements = {self.elements!r} names an element twice (one atom type per element)")
        if self.units not in ("auto", "metal", "real"):
            raise ConfigError(f"{where}: units = {self.units!r}: expected 'auto', 'metal' or 'real'")
        if self.atom_style not in ("auto", "atomic", "charge"):
            raise ConfigError(f"{where}: atom_style = {self.atom_style!r}: expected 'auto', 'atomic' or 'charge'")
        if self.runs < 1:
            raise ConfigError(f"{where}: runs = {self.runs}: must be >= 1")
        names = [Path(f).name for f in self.files]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: files = {self.files!r}: two files with the same name (the lines name files by it)")
        spaced = [f for f in self.files if any(c.isspace() for c in Path(f).name)]
        if spaced:
            raise ConfigError(f"{where}: files {spaced}: LAMMPS cannot take file names with spaces; rename them")
        odd = {k: type(v).__name__ for k, v in self.contents.items() if not isinstance(v, str)}
        if odd or set(self.contents) - set(names):
            raise ConfigError(f"{where}: contents must map names of files to their text ({odd or sorted(set(self.contents) - set(names))})")

    def resolve(self, base: Path, where: str) -> None:
        resolved = []
        for f in self.files:
            if Path(f).name in self.contents:
                resolved.append(f)
                continue
            p = (base / f).resolve()
            if not p.is_file():
                raise ConfigError(f"{where}: files: {p} not found (paths are relative to {base})")
            resolved.append(str(p))
        self.files = resolved

    def build(self, source: str) -> "LammpsBaseline":
        """The baseline, reading every file not in ``contents``.

        Raises:
            PotentialFileError: a file that cannot be read.
        """
        texts = {}
        for f in self.files:
            name = Path(f).name
            if name in self.contents:
                texts[name] = self.contents[name]
                continue
            try:
                texts[name] = Path(f).read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise PotentialFileError(f"{source}: cannot read the potential file {f} ({exc})") from exc
        return LammpsBaseline(self, texts, source)


class LammpsBaseline(EmpiricalPotential):
    """A baseline computed by LAMMPS (module docstring): an :attr:`external` potential.

    Args:
        settings: the definition (paths of ``settings.files`` are only used for their names here).
        texts: file name -> the file's text (current parameters), for every file of ``settings.files``.
        source: what to call it in messages.

    Attributes:
        texts: file name -> text, the current parameters (refitting rewrites them).
        cache: keep results on disk (:mod:`hybridpot.cache`).
    """

    external = True

    def __init__(self, settings: LammpsSettings, texts: dict[str, str], source: str = "lammps baseline") -> None:
        super().__init__(0.0, settings.elements, source)
        self.style = " ".join(_strip(settings.pair_style, "pair_style").split())
        names = [Path(f).name for f in settings.files]
        aliases = {f: Path(f).name for f in settings.files} | {n: n for n in names}
        self.coeffs = [self._placeholders(_strip(line, "pair_coeff"), aliases) for line in settings.pair_coeff]
        self.commands = [self._placeholders(line, aliases) for line in settings.commands]
        self.texts = {n: texts[n] for n in names}
        self._read_texts = dict(self.texts)  # the parameters as read: the cache holds results of these only
        self.units = settings.units if settings.units != "auto" else self._file_units()
        self.atom_style = settings.atom_style if settings.atom_style != "auto" else self._needs_charges()
        self.runs = settings.runs
        self.cache = settings.cache
        self.type_order = list(settings.elements)
        self._runtime: dict[str, Any] = {}
        lines = self.coeffs + self.commands
        unused = [n for n in names if not any(f"{{{n}}}" in line for line in lines)]
        if unused:
            raise ConfigError(f"{source}: files {unused} are not named in the pair_coeff lines or commands (name them by their "
                              "path as listed in files or by their base name)")

    @staticmethod
    def _placeholders(line: str, aliases: dict[str, str]) -> str:
        """``line`` with every word that names a file (its path as listed, its base name, or any path ending in that name)
        replaced by the ``{name}`` placeholder of :class:`LammpsPair`."""
        names = set(aliases.values())

        def named(word: str) -> str | None:
            if word in aliases:
                return aliases[word]
            return Path(word).name if "/" in word and Path(word).name in names else None

        return " ".join(f"{{{named(w)}}}" if named(w) else w for w in line.split())

    def _file_units(self) -> str:
        """``real`` where a file's first line carries LAMMPS's ``UNITS: real`` tag, else ``metal``."""
        for text in self.texts.values():
            first = text.split("\n", 1)[0].split()
            if "UNITS:" in first and first.index("UNITS:") + 1 < len(first) and first[first.index("UNITS:") + 1] == "real":
                return "real"
        return "metal"

    def _styles(self) -> list[str]:
        """The pair style names (the sub-styles of a hybrid), accelerator suffixes removed."""
        words = self.style.split()
        if not words[0].startswith("hybrid"):
            return [_base_style(words[0])]
        return [_base_style(c.split()[2]) for c in self.coeffs if len(c.split()) > 2]

    def _needs_charges(self) -> str:
        return "charge" if any(s in CHARGE_STYLES or "coul" in s for s in self._styles()) else "atomic"

    # ------------------------------------------------------------------ runtime state (not copied, not pickled)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        state["_runtime"] = {}
        return state

    def _stage(self) -> Path:
        """The private folder holding the current texts (written when they change)."""
        rt = self._runtime
        if "dir" not in rt:
            rt["dir"] = Path(tempfile.mkdtemp(prefix="hybridpot-lammps-"))
            rt["cleanup"] = weakref.finalize(self, shutil.rmtree, rt["dir"], True)
        if rt.get("staged") != self.texts:
            for name, text in self.texts.items():
                (rt["dir"] / name).write_text(text)
            rt["staged"] = dict(self.texts)
            if "engine" in rt:
                rt.pop("engine").close()
        return rt["dir"]

    def _pair(self, directory: Path | None) -> LammpsPair:
        files = [(directory / n) if directory is not None else (self.path.parent / n if self.path is not None else Path(n))
                 for n in self.texts]
        return LammpsPair(style=self.style, coeffs=[tuple(c.split(maxsplit=2)) for c in self.coeffs], files=files,
                          commands=list(self.commands), units=self.units, atom_style=self.atom_style)

    def engine(self) -> LammpsEngine:
        """The LAMMPS instance evaluating this baseline (one, reused; a new one after the parameters change).

        Raises:
            PotentialFileError: the lammps package cannot be imported.
        """
        directory = self._stage()
        rt = self._runtime
        if "engine" not in rt:
            try:
                import_lammps()
            except LammpsUnavailable as exc:
                raise PotentialFileError(f"{self.source}: a baseline of type 'lammps' needs LAMMPS: {exc}") from exc
            pair = self._pair(directory)
            rt["engine"] = LammpsEngine([f"pair_style {pair.style}"] + pair.coeff_lines(substyle=False, directory=directory),
                                        self.type_order, units=self.units, atom_style=self.atom_style,
                                        commands=pair.command_lines(directory), runs=self.runs, source=self.source)
        return rt["engine"]

    def close(self) -> None:
        """Close the LAMMPS instance (the next evaluation opens another)."""
        if "engine" in self._runtime:
            self._runtime.pop("engine").close()

    # ------------------------------------------------------------------ evaluation

    def forward(self, graph) -> torch.Tensor:
        """Zeros: the baseline has no pair-vector part (see :meth:`external_terms`)."""
        return torch.zeros(graph.n_atoms, dtype=graph.vectors.dtype, device=graph.vectors.device)

    def potential_digest(self) -> str:
        """SHA-256 of everything the results depend on besides the structure (the cache key's potential part)."""
        rt = self._runtime
        if rt.get("digest_of") != self.texts:
            rt["digest"], rt["digest_of"] = self._potential_digest(), dict(self.texts)
        return rt["digest"]

    def _potential_digest(self) -> str:
        try:
            version = metadata.version("lammps")
        except metadata.PackageNotFoundError:
            version = "?"
        record = {"format": CACHE_FORMAT, "lammps": version, "style": self.style, "coeffs": self.coeffs, "commands": self.commands,
                  "types": self.type_order, "units": self.units, "atom_style": self.atom_style, "runs": self.runs,
                  "files": {n: digest(t) for n, t in self.texts.items()}}
        return digest(json.dumps(record, sort_keys=True))

    @staticmethod
    def structure_digest(atoms: Atoms) -> str:
        """SHA-256 of what a LAMMPS evaluation of ``atoms`` reads: atomic numbers, positions, cell, pbc."""
        return digest(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes(),
                      np.ascontiguousarray(atoms.positions, dtype=np.float64).tobytes(),
                      np.ascontiguousarray(atoms.cell.array, dtype=np.float64).tobytes(),
                      np.ascontiguousarray(atoms.pbc, dtype=bool).tobytes())

    @property
    def refitting(self) -> bool:
        """The texts differ from those read (parameters set by :meth:`set_parameter_values`): results are not cached."""
        return self.texts != self._read_texts

    def evaluate_atoms(self, atoms: Atoms, index: int = 0) -> dict[str, np.ndarray]:
        """``energies`` (N,) eV, ``forces`` (N, 3) eV/A and ``virial`` (3, 3) eV (W, as LAMMPS) of one structure, from
        the cache or from LAMMPS.

        Raises:
            StructureError: an element without an atom type, or a structure LAMMPS refused (its message); the
                exception's ``structure`` attribute is ``index``.
            PotentialFileError: LAMMPS refused the pair lines, files or commands (its message).
        """
        n = len(atoms)
        shapes = {"energies": (n,), "forces": (n, 3), "virial": (3, 3)}
        use_cache = self.cache and not self.refitting
        key = digest(self.potential_digest(), self.structure_digest(atoms)) if use_cache else ""
        cache = ResultCache(namespace="lammps") if use_cache else None
        if cache is not None:
            hit = cache.get(key, shapes)
            if hit is not None:
                return hit
        missing = sorted(set(atoms.get_chemical_symbols()) - set(self.type_order))
        if missing:
            raise self._structure_error(index, atoms, f"element(s) {missing} have no LAMMPS atom type (elements {self.type_order}); "
                                                      "add them to elements and to the pair_coeff lines, or remove such structures")
        engine = self.engine()
        try:
            res = engine.evaluate(atoms)
        except LammpsError as exc:
            self.close()
            if exc.stage == "run":
                raise self._structure_error(index, atoms, f"LAMMPS failed ({n} atoms): {exc}") from exc
            raise PotentialFileError(f"{self.source}: LAMMPS refused the potential ({exc}); check pair_style, pair_coeff, commands "
                                     f"and files (files: {', '.join(self.texts) or 'none'})") from exc
        except ValueError as exc:
            self.close()
            raise self._structure_error(index, atoms, str(exc)) from exc
        out = {name: np.asarray(res[name], dtype=np.float64) for name in shapes}
        bad = [name for name, a in out.items() if not np.isfinite(a).all()]
        if bad:
            raise self._structure_error(index, atoms, f"LAMMPS gave non-finite {', '.join(bad)}: atoms too close, or outside the "
                                                      "potential's range")
        gap = abs(float(res["energies"].sum()) - float(res["energy"]))
        if not gap <= PER_ATOM_SUM_TOLERANCE * max(1.0, abs(float(res["energy"]))):
            raise PotentialFileError(f"{self.source}: LAMMPS's per-atom energies (compute pe/atom) of pair style {self.style} sum to "
                                     f"{float(res['energies'].sum())!r} eV but its energy is {float(res['energy'])!r} eV for structure "
                                     f"{index}: this style does not tally per-atom energies, which hybridpot needs")
        if cache is not None:
            cache.put(key, out)
        return out

    def _structure_error(self, index: int, atoms: Atoms, detail: str) -> StructureError:
        """A StructureError naming the baseline and structure ``index`` of the batch; ``structure`` and ``detail`` (the message
        without them) let :func:`hybridpot.prediction.baseline_predictions` name the structure in its data set instead."""
        exc = StructureError(f"{self.source}: structure {index} ({atoms.get_chemical_formula()}): {detail}")
        exc.structure, exc.detail = index, f"{self.source}: {detail}"
        return exc

    def external_terms(self, system: AtomicSystem) -> ExternalTerms:
        """The energies, forces and virials of every structure of ``system`` (see :meth:`evaluate_atoms`)."""
        parts = [self.evaluate_atoms(atoms, s) for s, atoms in enumerate(system.to_atoms())]
        dtype, device = system.dtype, system.device

        def joined(name: str) -> torch.Tensor:
            return torch.as_tensor(np.concatenate([p[name] for p in parts]) if name != "virial" else np.stack([p[name] for p in parts]),
                                   dtype=dtype, device=device)

        return ExternalTerms(joined("energies"), joined("forces"), joined("virial"))

    # ------------------------------------------------------------------ files, deployment

    def lammps_pair(self, type_elements: Sequence[str]) -> LammpsPair:
        """The user's lines (file placeholders resolved to the file beside :attr:`path` once written, else to bare names).

        Raises:
            HybridpotError: ``type_elements`` other than :attr:`type_order` (the pair_coeff lines are written for it).
        """
        if list(type_elements) != self.type_order:
            raise HybridpotError(f"{self.source}: its pair_coeff lines are written for the atom types {self.type_order} (elements), "
                                 f"not {list(type_elements)}: use that type order")
        return self._pair(None)

    @property
    def file_name(self) -> str:
        return self.path.name if self.path is not None else "baseline.lammps.toml"

    def _toml(self, embed: bool) -> str:
        """The definition as a ``*.lammps.toml`` file: the files by name, with their text (``embed``) or beside it."""
        def value(v) -> str:
            return json.dumps(v, ensure_ascii=False)  # JSON strings and lists of strings are TOML (no \u escapes of surrogates)

        names = list(self.texts)
        restore = {f"{{{n}}}": n for n in names}

        def plain(line: str) -> str:
            for k, v in restore.items():
                line = line.replace(k, v)
            return line

        lines = ["# a LAMMPS baseline of hybridpot ([baseline] type = \"lammps\"); units of the results: eV, Angstrom",
                 f"pair_style = {value(self.style)}",
                 f"pair_coeff = {value([plain(c) for c in self.coeffs])}",
                 f"elements = {value(self.type_order)}",
                 f"files = {value(names)}",
                 f"commands = {value([plain(c) for c in self.commands])}",
                 f"units = {value(self.units)}",
                 f"atom_style = {value(self.atom_style)}",
                 f"runs = {self.runs}",
                 f"cache = {'true' if self.cache else 'false'}"]
        if embed:
            lines += ["", "[contents]"] + [f"{value(n)} = {value(t)}" for n, t in self.texts.items()]
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """The definition with the files' current text embedded (self-contained: what a model file stores)."""
        return self._toml(embed=True)

    def write(self, path: Path | str) -> Path:
        """Write the potential files (current parameters) into the folder of ``path`` and the definition, naming them, as
        ``path`` (a ``*.lammps.toml``); ``path`` becomes :attr:`path` and the files are what :meth:`lammps_pair` names."""
        path = Path(path)
        for name, text in self.texts.items():
            if name == path.name:
                raise HybridpotError(f"{self.source}: the definition {path} would overwrite the potential file {name}")
            write_text_atomic(path.parent / name, text)
        write_text_atomic(path, self._toml(embed=False))
        self.path = path
        return path

    def written_files(self) -> list[Path]:
        """The potential files beside :attr:`path` (after :meth:`write`)."""
        if self.path is None:
            raise HybridpotError(f"{self.source}: not written yet")
        return [self.path.parent / n for n in self.texts]

    @classmethod
    def read(cls, path: str | Path) -> "LammpsBaseline":
        """Read a ``*.lammps.toml`` definition (keys as :class:`LammpsSettings`; files relative to it).

        Raises:
            PotentialFileError: a missing or malformed definition, or a file that cannot be read.
        """
        path = Path(path)
        if not path.is_file():
            raise PotentialFileError(f"{path}: potential file not found")
        try:
            settings = LammpsSettings.from_table(read_toml(path), str(path), base=path.resolve().parent)
            pot = settings.build(str(path))
        except ConfigError as exc:
            raise PotentialFileError(str(exc)) from exc
        except HybridpotError as exc:
            raise PotentialFileError(f"{path}: {exc}") from exc
        if not settings.contents:
            pot.path = path
        return pot

    # ------------------------------------------------------------------ parameters to refit

    def refit_formats(self) -> dict[str, str]:
        """File name -> its format (:data:`file_parameters.FORMATS`) for the files whose parameters can be named."""
        out: dict[str, str] = {}
        hybrid = self.style.split()[0].startswith("hybrid")
        for line in self.coeffs:
            words = line.split()
            style = _base_style(words[2]) if hybrid and len(words) > 2 else _base_style(self.style.split()[0])
            formats = STYLE_FILE_FORMATS.get(style, ())
            placed = [w[1:-1] for w in words if w.startswith("{") and w.endswith("}") and w[1:-1] in self.texts]
            for k, name in enumerate(placed[: len(formats)]):
                out[name] = formats[k]
        return out

    def _locate(self, name: str, where: str) -> tuple[str, str, file_parameters.Span]:
        """(file, path, span) of a parameter name ``FILE:PATH`` (or ``PATH`` where one file can hold it)."""
        formats = self.refit_formats()
        if not formats:
            raise ConfigError(f"{where}: [baseline] refit: hybridpot cannot name parameters of the files of pair_style {self.style} "
                              f"(it can for {', '.join(sorted(STYLE_FILE_FORMATS))} files)")
        file, sep, path = name.partition(":")
        if not sep:
            if len(formats) > 1:
                raise ConfigError(f"{where}: [baseline] refit = {name!r}: name the file, as 'FILE:{name}' (one of {', '.join(formats)})")
            file, path = next(iter(formats)), name
        file = Path(file).name
        if file not in formats:
            raise ConfigError(f"{where}: [baseline] refit = {name!r}: {file!r} is not a file whose parameters can be named "
                              f"(files: {', '.join(formats)})")
        span = file_parameters.locate(self.texts[file], formats[file], path, f"{where}: [baseline] refit = {name!r}: {file}")
        return file, path, span

    def parameter_labels(self, names: Sequence[str], where: str = "") -> list[str]:
        return list(names)

    def parameter_values(self, names: Sequence[str], where: str = "") -> np.ndarray:
        """The current values of the named file parameters (module docstring), in the file's units.

        Raises:
            ConfigError: a name that does not name a parameter (with examples of those that do).
        """
        return np.array([self._locate(n, where)[2].value for n in names], dtype=np.float64)

    def set_parameter_values(self, names: Sequence[str], values: np.ndarray, where: str = "") -> None:
        """Rewrite the named numbers of the files (full precision); the next evaluation runs LAMMPS with them (uncached)."""
        edits: dict[str, list] = {}
        for name, value in zip(names, np.asarray(values, dtype=np.float64)):
            file, _, span = self._locate(name, where)
            edits.setdefault(file, []).append((span, float(value)))
        for file, spans in edits.items():
            self.texts[file] = file_parameters.rewrite(self.texts[file], spans)
        if edits:
            self.path = None  # the written files hold other values now




#: registry entry (:mod:`hybridpot.registry`): ``[baseline] type = "lammps"`` with its keys, or a ``*.lammps.toml`` file
LAMMPS = BaselineType("lammps", (".lammps.toml",), LammpsBaseline.read, "any (the configured pair_style)", settings=LammpsSettings,
                      build=lambda s, source: s.build(source), differentiable=False, external=True,
                      summary="any LAMMPS pair style (ReaxFF, COMB, MEAM, SW, ...) computed by the LAMMPS library; inline or a file")
