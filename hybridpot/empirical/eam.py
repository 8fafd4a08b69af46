"""Embedded-atom method (EAM) from DYNAMO/LAMMPS tables: ``eam/alloy`` (setfl) and ``eam`` (funcfl).

Per-atom energy (the LAMMPS convention for ``compute pe/atom``)::

    E_i = F_{a_i}(rho_i) + 1/2 sum_j phi_{a_i a_j}(r_ij),     rho_i = sum_j f_{a_j}(r_ij)

with F the embedding energy (eV) of element a at host electron density rho, f the density
contributed by an atom of element b at distance r, and phi the pair energy (eV), tabulated as
z(r) = r * phi(r) (eV Angstrom). Sums run over neighbours with r_ij < cutoff.

Tables and interpolation are those of LAMMPS ``pair_style eam`` and ``eam/alloy``, so energies and
forces agree with LAMMPS to rounding:

* Each table f_1..f_n on a uniform grid (x_k = (k-1) dx) is interpolated by the piecewise cubic
  whose value at knot k is f_k and whose slope (per grid step) is a finite difference: one-sided
  at the ends, central 3-point next to them, 5-point ((f_{k-2} - f_{k+2}) + 8 (f_{k+1} - f_{k-1})) / 12
  inside. On interval k with p = x/dx + 1 - k in [0, 1]:
  value = ((c3 p + c4) p + c5) p + c6 with c6 = f_k, c5 = s_k, c4 = 3 (f_{k+1} - f_k) - 2 s_k - s_{k+1},
  c3 = s_k + s_{k+1} - 2 (f_{k+1} - f_k).
* The interval is k = trunc(x/dx + 1) clamped to [1, n - 1] and p is clamped to p <= 1: beyond the
  last knot the value is held at f_n but LAMMPS keeps using the end slope for the force; we do the
  same (a term that is zero in value and carries that slope), so forces agree with LAMMPS there too.
* Above ``rhomax`` the embedding energy is extended linearly with the end slope:
  F(rho) = F(rho_end) + F'(rho_end) (rho - rhomax). ``rhomax = (nrho - 1) drho`` for setfl files; for
  funcfl files LAMMPS drops the last table point when it regrids (below) but keeps the file's
  ``rhomax``, so there the value is held over the last grid step before the linear extension.
* funcfl files (one element each; possibly several, as LAMMPS accepts) are put on one common grid:
  dr, drho = the largest spacings, nr = round(max_f (nr_f - 1) dr_f / dr), likewise nrho, each table
  resampled by 4-point Lagrange interpolation of the file values; the pair table is
  z_ab(r) = 27.2 * 0.529 * Z_a(r) Z_b(r) (Hartree Bohr -> eV Angstrom), Z the file's effective charge.

The tables are ``torch.nn.Parameter`` (float64) and the spline coefficients are rebuilt from them on
every call, so energies, forces and stresses are differentiable with respect to the table values
(for refitting). Units: eV, Angstrom; the density is in the file's arbitrary units.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from ase.data import atomic_masses, atomic_numbers, chemical_symbols

from hybridpot.empirical.base import EmpiricalPotential, LammpsPair
from hybridpot.errors import HybridpotError, PotentialFileError, StructureError
from hybridpot.io.atomic import write_text_atomic
from hybridpot.neighbors import PairGraph
from hybridpot.registry import BaselineType

#: Hartree * Bohr in eV * Angstrom, as LAMMPS uses it to turn funcfl effective charges into r * phi.
HARTREE_BOHR = 27.2 * 0.529

#: Smallest table length the spline construction is defined for.
MIN_POINTS = 5

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class ElementInfo:
    """Per-element header data of an EAM file (kept to write the file back).

    Attributes:
        number: atomic number as given in the file.
        mass: atomic mass, g/mol.
        lattice_constant: reference lattice constant, Angstrom (informative only).
        lattice: reference lattice name, e.g. ``"fcc"`` (informative only).
    """

    number: int
    mass: float
    lattice_constant: float = 0.0
    lattice: str = ""


class EAM(EmpiricalPotential):
    """Tabulated EAM potential, evaluated exactly as LAMMPS ``eam``/``eam/alloy`` (see module docstring).

    Args:
        elements: chemical symbols, E of them; type index = position.
        frho: (E, nrho) embedding energy F_a at rho = k * drho, k = 0..nrho-1, eV.
        rhor: (E, nr) density function f_a at r = k * dr, k = 0..nr-1 (density units of the file).
        z2r: (E (E + 1) / 2, nr) r * phi_ab at r = k * dr, eV Angstrom, for pairs a >= b in the
            order (0,0), (1,0), (1,1), (2,0), ... (row a (a + 1) / 2 + b).
        drho: density grid spacing.
        dr: distance grid spacing, Angstrom.
        cutoff: interaction cutoff, Angstrom (pairs with r < cutoff interact).
        rhomax: density above which F is extended linearly; default (nrho - 1) * drho.
        info: per-element header data (default: ASE masses, no lattice).
        energy_scale: factor multiplying every energy (a fit parameter; 1 reproduces the tables).
        style: ``"eam/alloy"`` or ``"eam"``, the LAMMPS style of ``files``.
        files: the file(s) exactly these tables were read from (one setfl file, or one funcfl file
            per element); ``lammps_pair`` refers to them while the parameters are unchanged.
        source: name used in error messages.

    Attributes:
        frho, rhor, z2r: the tables as float64 ``torch.nn.Parameter`` (shapes as above).
        energy_scale: scalar float64 ``torch.nn.Parameter``.
        path: the setfl file, or the first funcfl file; None if built from arrays.
    """

    def __init__(
        self,
        elements: Sequence[str],
        frho: np.ndarray | torch.Tensor,
        rhor: np.ndarray | torch.Tensor,
        z2r: np.ndarray | torch.Tensor,
        drho: float,
        dr: float,
        cutoff: float,
        rhomax: float | None = None,
        info: Sequence[ElementInfo] | None = None,
        energy_scale: float = 1.0,
        style: str = "eam/alloy",
        files: Sequence[str | Path] = (),
        source: str = "EAM",
    ) -> None:
        elements = list(elements)
        n_el = len(elements)
        frho_t = torch.as_tensor(frho, dtype=torch.float64).detach().clone()
        rhor_t = torch.as_tensor(rhor, dtype=torch.float64).detach().clone()
        z2r_t = torch.as_tensor(z2r, dtype=torch.float64).detach().clone()
        if n_el == 0 or len(set(elements)) != n_el:
            raise PotentialFileError(f"{source}: need distinct element symbols, got {elements}")
        for symbol in elements:
            if symbol not in atomic_numbers:
                raise PotentialFileError(f"{source}: unknown chemical symbol {symbol!r}")
        if frho_t.ndim != 2 or frho_t.shape[0] != n_el:
            raise PotentialFileError(f"{source}: frho must have shape ({n_el}, nrho), got {tuple(frho_t.shape)}")
        if rhor_t.ndim != 2 or rhor_t.shape[0] != n_el:
            raise PotentialFileError(f"{source}: rhor must have shape ({n_el}, nr), got {tuple(rhor_t.shape)}")
        n_pairs = n_el * (n_el + 1) // 2
        if z2r_t.shape != (n_pairs, rhor_t.shape[1]):
            raise PotentialFileError(
                f"{source}: z2r must have shape ({n_pairs}, {rhor_t.shape[1]}), got {tuple(z2r_t.shape)}"
            )
        if min(frho_t.shape[1], rhor_t.shape[1]) < MIN_POINTS:
            raise PotentialFileError(f"{source}: tables need at least {MIN_POINTS} points (nrho, nr)")
        for name, table in (("frho", frho_t), ("rhor", rhor_t), ("z2r", z2r_t)):
            if not bool(torch.isfinite(table).all()):
                raise PotentialFileError(f"{source}: {name} has non-finite values")
        if not all(math.isfinite(v) and v > 0 for v in (drho, dr, cutoff)):
            raise PotentialFileError(f"{source}: drho, dr and cutoff must be positive, got {drho}, {dr}, {cutoff}")
        if style not in ("eam/alloy", "eam"):
            raise PotentialFileError(f"{source}: style must be 'eam/alloy' or 'eam', got {style!r}")
        if files and len(files) != (1 if style == "eam/alloy" else n_el):
            raise PotentialFileError(f"{source}: style {style} needs one setfl file or one funcfl file per element, got {len(files)}")
        super().__init__(cutoff, elements, source)
        self.nrho = int(frho_t.shape[1])
        self.nr = int(rhor_t.shape[1])
        self.drho = float(drho)
        self.dr = float(dr)
        self.rhomax = float(rhomax) if rhomax is not None else (self.nrho - 1) * self.drho
        self.info = list(info) if info is not None else [
            ElementInfo(atomic_numbers[s], float(atomic_masses[atomic_numbers[s]])) for s in elements
        ]
        if len(self.info) != n_el:
            raise PotentialFileError(f"{source}: {len(self.info)} element headers for {n_el} elements")
        self.style = style
        self.files = [Path(f) for f in files]
        self.path = self.files[0] if self.files else None
        self.frho = torch.nn.Parameter(frho_t)
        self.rhor = torch.nn.Parameter(rhor_t)
        self.z2r = torch.nn.Parameter(z2r_t)
        self.energy_scale = torch.nn.Parameter(torch.tensor(float(energy_scale), dtype=torch.float64))
        index = torch.zeros((n_el, n_el), dtype=torch.int64)
        for a in range(n_el):
            for b in range(a + 1):
                index[a, b] = index[b, a] = a * (a + 1) // 2 + b
        self.register_buffer("pair_index", index)
        # the values as read, to tell whether ``files`` still describe this potential
        self._as_read = [p.detach().clone() for p in (self.frho, self.rhor, self.z2r, self.energy_scale)]
        # the files' text, so that an unchanged potential is written back byte for byte
        self._texts = [f.read_text() for f in self.files if f.is_file()]

    # ------------------------------------------------------------------ evaluation

    def forward(self, graph: PairGraph) -> torch.Tensor:
        """(N,) per-atom energies, eV."""
        graph = graph.within(self.cutoff)
        t = self.types(graph.numbers)
        r = graph.distances
        rho = self._densities(graph, t)
        z = _along_table(spline_coefficients(self.z2r), self.pair_index[t[graph.i], t[graph.j]], r, self.dr)
        pair = torch.zeros_like(rho).index_add(0, graph.i, 0.5 * (z / r))
        embedding = _embedding(spline_coefficients(self.frho), t, rho, self.drho, self.rhomax)
        return self.energy_scale * (embedding + pair)

    def densities(self, graph: PairGraph) -> torch.Tensor:
        """(N,) host electron density rho_i at each atom (file density units)."""
        graph = graph.within(self.cutoff)
        return self._densities(graph, self.types(graph.numbers))

    def _densities(self, graph: PairGraph, types: torch.Tensor) -> torch.Tensor:
        density = _along_table(spline_coefficients(self.rhor), types[graph.j], graph.distances, self.dr)
        return torch.zeros(graph.n_atoms, dtype=density.dtype, device=density.device).index_add(0, graph.i, density)

    # ------------------------------------------------------------------ LAMMPS and files

    @property
    def unchanged(self) -> bool:
        """Whether the parameters are still those read from ``files`` (so LAMMPS can use the files)."""
        current = (self.frho, self.rhor, self.z2r, self.energy_scale)
        return bool(self.files) and all(torch.equal(p.detach().cpu(), q) for p, q in zip(current, self._as_read))

    def lammps_pair(self, type_elements: Sequence[str]) -> LammpsPair:
        """``eam/alloy`` (``pair_coeff * * {file} El1 El2 ...``) or ``eam`` (``pair_coeff t t {file}``).

        Raises:
            StructureError: an element of ``type_elements`` the potential does not cover.
            HybridpotError: the parameters differ from the file(s) (refit, or built from arrays):
                write them with :meth:`write_setfl` and read that file back.
        """
        unknown = [s for s in type_elements if s not in atomic_numbers]
        if unknown:
            raise StructureError(f"unknown chemical symbol(s) {unknown} in type_elements")
        types = self.types(torch.tensor([atomic_numbers[s] for s in type_elements])).tolist()
        if not self.unchanged:
            raise HybridpotError(
                f"{self.source}: the EAM parameters differ from the file(s) they came from "
                f"({', '.join(map(str, self.files)) or 'none'}); write them with write_setfl(path) and use that file"
            )
        if self.style == "eam/alloy":
            setfl = self.files[0]
            return LammpsPair(style="eam/alloy", coeffs=[("*", "*", f"{{{setfl.name}}} " + " ".join(type_elements))], files=[setfl])
        coeffs = [(str(k + 1), str(k + 1), f"{{{self.files[t].name}}}") for k, t in enumerate(types)]
        return LammpsPair(style="eam", coeffs=coeffs, files=sorted({self.files[t] for t in types}))

    def to_dict(self) -> dict[str, Any]:
        """Current parameters (tables as nested lists); round trip with :meth:`from_dict`."""
        return {
            "style": self.style,
            "elements": list(self.elements or []),
            "info": [vars(i).copy() for i in self.info],
            "drho": self.drho,
            "dr": self.dr,
            "cutoff": self.cutoff,
            "rhomax": self.rhomax,
            "energy_scale": self.energy_scale.item(),
            "frho": self.frho.detach().cpu().tolist(),
            "rhor": self.rhor.detach().cpu().tolist(),
            "z2r": self.z2r.detach().cpu().tolist(),
            "files": [str(f) for f in self.files] if self.unchanged else [],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "EAM parameters") -> "EAM":
        """Rebuild from :meth:`to_dict` output (which lists ``files`` only while the tables equal them)."""
        known = {"style", "elements", "info", "drho", "dr", "cutoff", "rhomax", "energy_scale", "frho", "rhor", "z2r", "files"}
        unknown = set(d) - known
        if unknown:
            raise PotentialFileError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
        missing = known - set(d)
        if missing:
            raise PotentialFileError(f"{source}: missing key(s) {sorted(missing)}")
        return cls(
            d["elements"], np.asarray(d["frho"]), np.asarray(d["rhor"]), np.asarray(d["z2r"]),
            float(d["drho"]), float(d["dr"]), float(d["cutoff"]), float(d["rhomax"]),
            [ElementInfo(**i) for i in d["info"]], float(d["energy_scale"]), d["style"], d["files"], source,
        )

    @property
    def file_name(self) -> str:
        """The source file's name while the parameters are unchanged (one file), else a setfl name."""
        if self.unchanged and len(self.files) == 1:
            return self.files[0].name
        stem = self.files[0].name.split(".")[0] if self.files else "-".join(self.elements or [])
        return f"{stem}_hybridpot.eam.alloy"

    def to_text(self) -> str:
        """The source file's text while the parameters are unchanged (one file); otherwise the
        current tables as a setfl file (see :meth:`setfl_text`)."""
        if self.unchanged and len(self.files) == 1 and self._texts:
            return self._texts[0]
        return self.setfl_text()

    def write_setfl(self, path: str | Path, comments: Sequence[str] = ()) -> Path:
        """Write :meth:`setfl_text` to ``path`` (atomically); ``path`` becomes the potential's file."""

        path = Path(path)
        write_text_atomic(path, self.setfl_text(comments))
        self._now_in_file(path)
        return path

    def _now_in_file(self, path: Path) -> None:
        text = path.read_text()
        if not (self.style == "eam" and self._texts and text == self._texts[0]):
            # now a setfl file: LAMMPS takes rhomax = (nrho - 1) drho for it, so does this potential
            self.style = "eam/alloy"
            self.rhomax = (self.nrho - 1) * self.drho
        self.files = [path]
        self.path = path
        self._texts = [text]
        self._as_read = [p.detach().clone() for p in (self.frho, self.rhor, self.z2r, self.energy_scale)]

    def setfl_text(self, comments: Sequence[str] = ()) -> str:
        """The current tables as a LAMMPS ``eam/alloy`` (setfl) file.

        ``energy_scale`` is folded into F and r * phi (the spline is linear in the table values, so
        energies change only by rounding). Values are written with 17 significant digits, so
        reading the file back gives the same float64 tables. A funcfl-derived potential is written on
        its common grid; setfl has ``rhomax = (nrho - 1) drho``, so the result differs from the funcfl
        original only for densities above the last grid point.

        Args:
            comments: up to 3 comment lines for the header.
        """
        scale = self.energy_scale.detach().cpu()
        frho = (self.frho.detach().cpu() * scale).numpy()
        rhor = self.rhor.detach().cpu().numpy()
        z2r = (self.z2r.detach().cpu() * scale).numpy()
        for name, table in (("frho", frho), ("rhor", rhor), ("z2r", z2r)):
            if not np.all(np.isfinite(table)):
                raise HybridpotError(f"{self.source}: cannot write a setfl file: {name} has non-finite values")
        header = list(comments)[:3]
        header += [f"written by hybridpot from {self.source}", "energy_scale folded into F and r*phi", ""][len(header):]
        lines = [c.replace("\n", " ") for c in header]
        lines.append(f"{len(self.info)} " + " ".join(self.elements or []))
        lines.append(f"{self.nrho} {self.drho!r} {self.nr} {self.dr!r} {self.cutoff!r}")
        for k, info in enumerate(self.info):
            lines.append(f"{info.number} {info.mass!r} {info.lattice_constant!r} {info.lattice}".rstrip())
            lines += _value_lines(frho[k]) + _value_lines(rhor[k])
        lines += [line for row in z2r for line in _value_lines(row)]
        return "\n".join(lines) + "\n"

    @classmethod
    def read_setfl(cls, path: str | Path) -> "EAM":
        """Read a LAMMPS ``eam/alloy`` (DYNAMO setfl) file.

        Layout: 3 comment lines; ``N El1 .. ElN``; ``nrho drho nr dr cutoff``; per element a line
        ``Z mass [alat lattice]`` then F (nrho values) and f (nr values); then r * phi for each pair
        a >= b (nr values each). Values may be spread over lines freely within a block.

        Raises:
            PotentialFileError: missing, truncated or corrupt file, or a bad header (naming the file
                and line).
        """
        path = Path(path)
        reader = _Reader(path)
        reader.skip(3)
        line_no, words = reader.words("element line")
        n_el = reader.integer(words[0], line_no, "number of elements")
        if n_el < 1:
            raise PotentialFileError(f"{path}, line {line_no}: number of elements must be positive, got {n_el}")
        elements = words[1:]
        if len(elements) != n_el:
            raise PotentialFileError(
                f"{path}, line {line_no}: element line declares {n_el} element(s) but names {len(elements)}: {elements}"
            )
        for symbol in elements:
            if symbol not in atomic_numbers:
                raise PotentialFileError(f"{path}, line {line_no}: unknown element {symbol!r}")
        if len(set(elements)) != n_el:
            raise PotentialFileError(f"{path}, line {line_no}: repeated element in {elements}")
        nrho, drho, nr, dr, cutoff = reader.grid()
        info, frho, rhor = [], [], []
        for symbol in elements:
            info.append(reader.element_info(f"header of element {symbol}"))
            frho.append(reader.numbers(nrho, f"F(rho) of {symbol}"))
            rhor.append(reader.numbers(nr, f"rho(r) of {symbol}"))
        z2r = [reader.numbers(nr, f"r*phi(r) of {elements[a]}-{elements[b]}") for a in range(n_el) for b in range(a + 1)]
        return cls(
            elements, np.array(frho), np.array(rhor), np.array(z2r), drho, dr, cutoff,
            info=info, style="eam/alloy", files=[path], source=str(path),
        )

    @classmethod
    def read_funcfl(cls, path: str | Path, *more_paths: str | Path) -> "EAM":
        """Read one or more LAMMPS ``eam`` (DYNAMO funcfl, one element each) files.

        Layout: 1 comment line; ``Z mass alat lattice``; ``nrho drho nr dr cutoff``; then F (nrho
        values), Z(r) (nr values, effective charge, sqrt(Hartree Bohr)) and f (nr values). The files
        are put on a common grid and crossed as LAMMPS does (module docstring). The element is
        ``Z``'s symbol. LAMMPS builds the common grid from the files mapped to atom types, so with
        several files, LAMMPS parity needs every element present among the LAMMPS types.

        Raises:
            PotentialFileError: missing, truncated or corrupt file, bad header, repeated element.
        """
        paths = [Path(p) for p in (path, *more_paths)]
        funcs = []
        for p in paths:
            reader = _Reader(p)
            reader.skip(1)
            info = reader.element_info("element line")
            nrho, drho, nr, dr, cutoff = reader.grid()
            frho = reader.numbers(nrho, "F(rho)")
            zr = reader.numbers(nr, "Z(r)")
            rhor = reader.numbers(nr, "rho(r)")
            if not 1 <= info.number < len(chemical_symbols):
                raise PotentialFileError(f"{p}: atomic number {info.number} in the element line is not an element")
            funcs.append((info, drho, dr, cutoff, frho, zr, rhor))
        elements = [chemical_symbols[f[0].number] for f in funcs]
        if len(set(elements)) != len(elements):
            raise PotentialFileError(f"{', '.join(map(str, paths))}: repeated element in {elements}")
        if len({p.name for p in paths}) != len(paths):
            raise PotentialFileError(f"{', '.join(map(str, paths))}: funcfl files need distinct file names")
        # the common grid: largest spacings and ranges over the files (LAMMPS PairEAM::file2array)
        drho = max(f[1] for f in funcs)
        dr = max(f[2] for f in funcs)
        rhomax = max((len(f[4]) - 1) * f[1] for f in funcs)
        rmax = max((len(f[5]) - 1) * f[2] for f in funcs)
        nrho = int(rhomax / drho + 0.5)
        nr = int(rmax / dr + 0.5)
        frho = [_regrid(f[4], f[1], nrho, drho) for f in funcs]
        rhor = [_regrid(f[6], f[2], nr, dr) for f in funcs]
        zr = [_regrid(f[5], f[2], nr, dr) for f in funcs]
        z2r = [HARTREE_BOHR * zr[a] * zr[b] for a in range(len(funcs)) for b in range(a + 1)]
        return cls(
            elements, np.array(frho), np.array(rhor), np.array(z2r), drho, dr, max(f[3] for f in funcs),
            rhomax=rhomax, info=[f[0] for f in funcs], style="eam", files=paths, source=", ".join(map(str, paths)),
        )


# ---------------------------------------------------------------------- spline


def spline_coefficients(values: torch.Tensor) -> torch.Tensor:
    """Cubic coefficients of each interval of uniformly tabulated functions (LAMMPS ``eam`` spline).

    Args:
        values: (T, n) function values at the knots, n >= 5.

    Returns:
        (T, n - 1, 4) coefficients (c3, c4, c5, c6) of interval k: value = ((c3 p + c4) p + c5) p + c6
        for p in [0, 1] (p in grid steps from knot k).
    """
    f = values
    step = f[:, 1:] - f[:, :-1]
    slope = torch.cat(
        [
            step[:, :1],
            0.5 * (f[:, 2:3] - f[:, 0:1]),
            ((f[:, :-4] - f[:, 4:]) + 8.0 * (f[:, 3:-1] - f[:, 1:-3])) / 12.0,
            0.5 * (f[:, -1:] - f[:, -3:-2]),
            step[:, -1:],
        ],
        dim=1,
    )
    c4 = 3.0 * step - 2.0 * slope[:, :-1] - slope[:, 1:]
    c3 = slope[:, :-1] + slope[:, 1:] - 2.0 * step
    return torch.stack([c3, c4, slope[:, :-1], f[:, :-1]], dim=-1)


def spline_lookup(
    coefficients: torch.Tensor, rows: torch.Tensor, x: torch.Tensor, delta: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Evaluate tabulated functions as LAMMPS does.

    Args:
        coefficients: (T, n - 1, 4) from :func:`spline_coefficients`.
        rows: (K,) which table each point uses.
        x: (K,) arguments (distance in Angstrom or density); knot k (from 0) sits at k * delta.
        delta: grid spacing.

    Returns:
        (value, slope, beyond), each (K,): the cubic at p = min(p, 1) (differentiable in x and the
        coefficients), its derivative d value / dx there (LAMMPS's force coefficient, also where p
        was clamped), and whether p was clamped (x past the last knot).
    """
    n = coefficients.shape[1] + 1
    p = x * (1.0 / delta) + 1.0
    m = torch.clamp(torch.trunc(p.detach()), 1, n - 1)
    p = p - m
    c3, c4, c5, c6 = coefficients[rows, m.long() - 1].unbind(-1)
    beyond = p > 1.0
    p = torch.clamp(p, max=1.0)
    value = ((c3 * p + c4) * p + c5) * p + c6
    slope = (3.0 * c3 / delta * p + 2.0 * c4 / delta) * p + c5 / delta
    return value, slope, beyond


def _along_table(coefficients: torch.Tensor, rows: torch.Tensor, r: torch.Tensor, delta: float) -> torch.Tensor:
    """(K,) radial table values at distances r; past the last knot the value is held and the
    gradient is the end slope (zero-valued term), as in LAMMPS forces."""
    value, slope, beyond = spline_lookup(coefficients, rows, r, delta)
    return value + torch.where(beyond, slope * (r - r.detach()), torch.zeros_like(value))


def _embedding(coefficients: torch.Tensor, types: torch.Tensor, rho: torch.Tensor, drho: float, rhomax: float) -> torch.Tensor:
    """(N,) F(rho) with LAMMPS's linear extension above rhomax (gradient = LAMMPS's F')."""
    value, slope, beyond = spline_lookup(coefficients, types, rho, drho)
    zero = torch.zeros_like(value)
    held = torch.where(beyond, slope * (rho - rho.detach()), zero)
    return value + torch.where(rho > rhomax, slope * (rho - rhomax), held)


# ---------------------------------------------------------------------- files


class _Reader:
    """Line-by-line reader of an EAM file with errors naming the file and line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise PotentialFileError(f"{path}: potential file not found")
        try:
            self.lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise PotentialFileError(f"{path}: cannot read the file ({exc})") from exc
        self.pos = 0

    def skip(self, n: int) -> None:
        if len(self.lines) < n:
            raise PotentialFileError(f"{self.path}: truncated file: expected {n} comment line(s), found {len(self.lines)}")
        self.pos = n

    def _content(self) -> Iterator[tuple[int, list[str]]]:
        """Next non-blank lines (1-based number, words), comments after '#' removed."""
        while self.pos < len(self.lines):
            self.pos += 1
            words = self.lines[self.pos - 1].split("#", 1)[0].split()
            if words:
                yield self.pos, words

    def words(self, what: str) -> tuple[int, list[str]]:
        for line_no, words in self._content():
            return line_no, words
        raise PotentialFileError(f"{self.path}: truncated file: {what} missing after line {len(self.lines)}")

    def integer(self, token: str, line_no: int, what: str) -> int:
        if not _INTEGER.fullmatch(token):
            raise PotentialFileError(f"{self.path}, line {line_no}: {what} must be an integer, got {token!r}")
        return int(token)

    def real(self, token: str, line_no: int, what: str) -> float:
        if not _NUMBER.fullmatch(token):
            raise PotentialFileError(f"{self.path}, line {line_no}: cannot read {token!r} as a number ({what})")
        return float(token)

    def grid(self) -> tuple[int, float, int, float, float]:
        """The ``nrho drho nr dr cutoff`` line, checked."""
        line_no, words = self.words("grid line 'nrho drho nr dr cutoff'")
        if len(words) < 5:
            raise PotentialFileError(f"{self.path}, line {line_no}: expected 'nrho drho nr dr cutoff', got {' '.join(words)!r}")
        nrho = self.integer(words[0], line_no, "nrho")
        nr = self.integer(words[2], line_no, "nr")
        drho, dr, cutoff = (self.real(words[k], line_no, name) for k, name in ((1, "drho"), (3, "dr"), (4, "cutoff")))
        if nrho < MIN_POINTS or nr < MIN_POINTS:
            raise PotentialFileError(f"{self.path}, line {line_no}: nrho and nr must be at least {MIN_POINTS}, got {nrho}, {nr}")
        if not (drho > 0 and dr > 0 and cutoff > 0):
            raise PotentialFileError(f"{self.path}, line {line_no}: drho, dr and cutoff must be positive, got {drho}, {dr}, {cutoff}")
        return nrho, drho, nr, dr, cutoff

    def element_info(self, what: str) -> ElementInfo:
        """A ``Z mass [alat lattice]`` line."""
        line_no, words = self.words(what)
        if len(words) < 2:
            raise PotentialFileError(f"{self.path}, line {line_no}: {what}: expected 'Z mass [alat lattice]', got {' '.join(words)!r}")
        number = self.integer(words[0], line_no, f"{what}: atomic number")
        mass = self.real(words[1], line_no, f"{what}: mass")
        alat = self.real(words[2], line_no, f"{what}: lattice constant") if len(words) > 2 else 0.0
        return ElementInfo(number, mass, alat, " ".join(words[3:]))

    def numbers(self, count: int, what: str) -> np.ndarray:
        """The next ``count`` values, which may span lines; a block ends at a line end."""
        out: list[float] = []
        first = None
        for line_no, words in self._content():
            first = first or line_no
            for token in words:
                if not _NUMBER.fullmatch(token):
                    kind = "non-finite value" if token.lower().lstrip("+-") in ("nan", "inf", "infinity") else "cannot read"
                    raise PotentialFileError(f"{self.path}, line {line_no}: {kind} {token!r} in {what}")
            out += map(float, words)
            if len(out) >= count:
                if len(out) > count:
                    raise PotentialFileError(
                        f"{self.path}, line {line_no}: {len(out) - count} value(s) more than the {count} of {what} "
                        "(a block must end at a line end)"
                    )
                values = np.array(out)
                if not np.all(np.isfinite(values)):
                    raise PotentialFileError(f"{self.path}, lines {first}-{line_no}: value out of range in {what}")
                return values
        raise PotentialFileError(
            f"{self.path}: truncated file: expected {count} values for {what}, found {len(out)} before the end of the file"
        )


def _regrid(values: np.ndarray, delta: float, n: int, new_delta: float) -> np.ndarray:
    """Resample a funcfl table (knot k at (k-1) delta, k = 1..len) onto n knots spaced new_delta
    by 4-point Lagrange interpolation, with LAMMPS's choice of stencil and its rounding."""
    f = np.concatenate([[0.0], values])  # 1-based like the file's numbering
    x = np.arange(n, dtype=np.float64) * new_delta
    p = x / delta + 1.0
    k = np.maximum(np.minimum(np.trunc(p).astype(np.int64), len(values) - 2), 2)
    p = np.minimum(p - k, 2.0)
    sixth = 1.0 / 6.0
    w1 = -sixth * p * (p - 1.0) * (p - 2.0)
    w2 = 0.5 * (p * p - 1.0) * (p - 2.0)
    w3 = -0.5 * p * (p + 1.0) * (p - 2.0)
    w4 = sixth * p * (p * p - 1.0)
    return w1 * f[k - 1] + w2 * f[k] + w3 * f[k + 1] + w4 * f[k + 2]


def _value_lines(values: np.ndarray, per_line: int = 5) -> list[str]:
    return [" ".join(repr(float(v)) for v in values[k : k + per_line]) for k in range(0, len(values), per_line)]


#: registry entries (:mod:`hybridpot.registry`): setfl files (``*.eam.alloy``) and single-element funcfl files (``*.eam``)
SETFL = BaselineType("eam/alloy", (".eam.alloy",), EAM.read_setfl, "eam/alloy",
                     summary="embedded-atom method, LAMMPS setfl file")
FUNCFL = BaselineType("eam", (".eam",), EAM.read_funcfl, "eam", summary="embedded-atom method, LAMMPS funcfl file (one element)")
