"""Ziegler-Biersack-Littmark universal screened nuclear repulsion, as LAMMPS ``pair_style zbl inner outer``.

For a pair of atomic numbers Z_i, Z_j at distance r (Angstrom):

    e(r)  = k_e Z_i Z_j / r * phi(r / a),    a = 0.46850 / (Z_i^0.23 + Z_j^0.23)  (Angstrom)
    phi(x) = 0.18175 e^(-3.19980 x) + 0.50986 e^(-0.94229 x) + 0.28022 e^(-0.40290 x) + 0.02817 e^(-0.20162 x)

with k_e = 14.399645 eV Angstrom (LAMMPS ``metal`` qqr2e, elementary charge 1). Between ``inner`` and
``outer`` a polynomial switch S(r) = C + [r > inner] (r - inner)^3 (A / 3 + B (r - inner) / 4) takes the
energy, force and curvature to 0 at ``outer``, with t_c = outer - inner and e, e', e'' at ``outer``:

    A = (-3 e' + t_c e'') / t_c^2,   B = (2 e' - t_c e'') / t_c^3,   C = -e + t_c e' / 2 - t_c^2 e'' / 12

so E(r) = e(r) + S(r) for r < outer (C shifts the whole inner range) and 0 beyond. Each pair's energy is
split equally between its two atoms (``compute pe/atom``).

Parameter file (TOML, ``*.zbl.toml``; or inline, ``[baseline] type = "zbl"`` with the same keys)::

    elements = ["Cu"]
    inner = 1.0      # Angstrom, the switch starts
    outer = 2.0      # Angstrom, the cutoff
    [z]              # optional: nuclear charges other than the atomic numbers
    Cu = 29.0
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch
from ase.data import atomic_numbers

from hybridpot.empirical.base import EmpiricalPotential, LammpsPair
from hybridpot.errors import ConfigError, HybridpotError, PotentialFileError
from hybridpot.io.toml import read_toml
from hybridpot.neighbors import PairGraph
from hybridpot.registry import BaselineType
from hybridpot.settings import Settings, option, required

#: Coulomb constant in LAMMPS metal units (qqr2e), eV Angstrom
COULOMB = 14.399645
#: the universal screening function: coefficients and exponents (times 1/a), and the screening length parameters
SCREEN_C = (0.18175, 0.50986, 0.28022, 0.02817)
SCREEN_D = (3.19980, 0.94229, 0.40290, 0.20162)
A0, POWER = 0.46850, 0.23


class ZBL(EmpiricalPotential):
    """ZBL repulsion ``pair_style zbl inner outer`` between every pair of ``elements``.

    Args:
        elements: chemical symbols; type index = position.
        inner, outer: the switch starts at ``inner`` and reaches zero at ``outer`` (the cutoff), Angstrom.
        z: nuclear charge per element (default: the atomic number).
        source: file or description, for error messages.

    Raises:
        PotentialFileError: an unknown element, 0 < inner < outer violated, or a charge <= 0.
    """

    def __init__(self, elements: Sequence[str], inner: float, outer: float, z: Mapping[str, float] | None = None,
                 source: str = "ZBL") -> None:
        elements = list(elements)
        z = dict(z or {})
        unknown = [e for e in list(elements) + list(z) if e not in atomic_numbers]
        if unknown or sorted(set(z) - set(elements)):
            raise PotentialFileError(f"{source}: unknown element(s) {sorted(set(unknown) | (set(z) - set(elements)))} "
                                     f"(elements {elements})")
        if not 0 < inner < outer:
            raise PotentialFileError(f"{source}: need 0 < inner < outer, got inner = {inner!r}, outer = {outer!r} (Angstrom)")
        charges = [float(z.get(e, atomic_numbers[e])) for e in elements]
        if min(charges) <= 0:
            raise PotentialFileError(f"{source}: nuclear charges must be positive, got {dict(zip(elements, charges))}")
        super().__init__(float(outer), elements, source)
        self.inner, self.outer, self.z_given = float(inner), float(outer), z
        self.register_buffer("z", torch.tensor(charges, dtype=torch.float64), persistent=False)
        # the switch depends on the element pair only: (T, T, 3) once, not per pair and call
        self.register_buffer("switch", self.switch_coefficients(self.z[:, None].expand(-1, len(charges)),
                                                                self.z[None, :].expand(len(charges), -1)), persistent=False)

    def _screened(self, r: torch.Tensor, zi: torch.Tensor, zj: torch.Tensor, order: int) -> torch.Tensor:
        """The ``order``-th r-derivative (0, 1, 2) of e(r) for pairs of charges zi, zj (r, zi, zj of one shape)."""
        b = torch.stack([d * (zi**POWER + zj**POWER) / A0 for d in SCREEN_D])  # (4, ...) 1/Angstrom
        c = torch.tensor(SCREEN_C, dtype=r.dtype, device=r.device).reshape((4,) + (1,) * r.dim())
        ex = c * torch.exp(-b * r)
        phi, dphi, d2phi = ex.sum(0), -(b * ex).sum(0), (b * b * ex).sum(0)
        k = COULOMB * zi * zj
        if order == 0:
            return k * phi / r
        if order == 1:
            return k * (dphi / r - phi / r**2)
        return k * (d2phi / r - 2 * dphi / r**2 + 2 * phi / r**3)

    def switch_coefficients(self, zi: torch.Tensor, zj: torch.Tensor) -> torch.Tensor:
        """(..., 3) the switch's A, B, C (module docstring) for pairs of charges zi, zj (any matching shape)."""
        rc = torch.full_like(zi, self.outer)
        tc = self.outer - self.inner
        e, de, d2e = (self._screened(rc, zi, zj, k) for k in range(3))
        return torch.stack([(-3.0 * de + tc * d2e) / tc**2, (2.0 * de - tc * d2e) / tc**3,
                            -e + tc * de / 2.0 - tc**2 * d2e / 12.0], dim=-1)

    def pair_energy(self, r: torch.Tensor, zi: torch.Tensor, zj: torch.Tensor, switch: torch.Tensor | None = None) -> torch.Tensor:
        """(P,) the switched pair energy E(r) (eV) for pairs at r < outer with charges zi, zj (switch: their
        :meth:`switch_coefficients`, computed when not given)."""
        swa, swb, swc = (self.switch_coefficients(zi, zj) if switch is None else switch).unbind(-1)
        t = (r - self.inner).clamp_min(0.0)
        return self._screened(r, zi, zj, 0) + swc + t**3 * (swa / 3.0 + swb * t / 4.0)

    def forward(self, graph: PairGraph) -> torch.Tensor:
        """(N,) per-atom energies in eV: half of every pair energy to each of its atoms."""
        types = self.types(graph.numbers)
        inside = torch.nonzero(graph.distances < self.outer).squeeze(1)
        i = graph.i[inside]
        ti, tj = types[i], types[graph.j[inside]]
        e = self.pair_energy(graph.distances[inside], self.z[ti], self.z[tj], self.switch[ti, tj])
        out = torch.zeros(graph.n_atoms, dtype=graph.vectors.dtype, device=graph.vectors.device)
        return out.index_add(0, i, 0.5 * e.to(out.dtype))  # directed pairs i -> j and j -> i: half each

    def lammps_pair(self, type_elements: Sequence[str]) -> LammpsPair:
        """``pair_style zbl inner outer`` with ``pair_coeff I J Z_I Z_J`` for every pair of atom types."""
        t = self.types(torch.tensor([atomic_numbers[e] for e in type_elements], dtype=torch.int64)).tolist()
        coeffs = [(str(a + 1), str(b + 1), f"{self.z[t[a]].item()!r} {self.z[t[b]].item()!r}")
                  for a, b in itertools.combinations_with_replacement(range(len(type_elements)), 2)]
        return LammpsPair(style=f"zbl {self.inner!r} {self.outer!r}", coeffs=coeffs)

    @property
    def file_name(self) -> str:
        return self.path.name if self.path is not None else "baseline.zbl.toml"

    def to_text(self) -> str:
        """The parameters as a ``*.zbl.toml`` file."""
        lines = ["elements = [" + ", ".join(f'"{e}"' for e in self.elements) + "]", f"inner = {self.inner!r}", f"outer = {self.outer!r}"]
        if self.z_given:
            lines += ["", "[z]"] + [f"{e} = {float(v)!r}" for e, v in self.z_given.items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> "ZBL":
        """Read a ``*.zbl.toml`` file (keys as :class:`ZBLSettings`)."""
        path = Path(path)
        try:
            settings = ZBLSettings.from_table(read_toml(path), str(path))
        except ConfigError as exc:
            raise PotentialFileError(str(exc)) from exc
        except HybridpotError as exc:
            raise PotentialFileError(f"{path}: {exc}") from exc
        pot = settings.build(str(path))
        pot.path = path
        return pot


@dataclass
class ZBLSettings(Settings):
    """The keys of a ``*.zbl.toml`` file and of ``[baseline] type = "zbl"``."""

    elements: list[str] = required("chemical symbols (type order)")
    inner: float = required("distance where the switch to zero starts, Angstrom")
    outer: float = required("cutoff: energy, force and curvature reach zero, Angstrom")
    z: dict = option({}, "nuclear charge per element (default: the atomic number)")

    def check_values(self, where: str) -> None:
        if not 0 < self.inner < self.outer:
            raise ConfigError(f"{where}: need 0 < inner < outer, got inner = {self.inner}, outer = {self.outer}")
        bad = {e: v for e, v in self.z.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0}
        if bad:
            raise ConfigError(f"{where}: z = {bad}: nuclear charges must be positive numbers")

    def build(self, source: str) -> ZBL:
        return ZBL(self.elements, self.inner, self.outer, self.z, source)


#: registry entry (:mod:`hybridpot.registry`): a ``*.zbl.toml`` file or ``[baseline] type = "zbl"`` with its keys
ZBL_TYPE = BaselineType("zbl", (".zbl.toml",), ZBL.read, "zbl", settings=ZBLSettings,
                        build=lambda s, source: s.build(source),
                        summary="ZBL screened nuclear repulsion, switched off between inner and outer; a file or inline")
