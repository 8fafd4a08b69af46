"""Lennard-Jones with per-pair epsilon, sigma and cutoff, as LAMMPS ``lj/cut``.

    E = sum_{i<j, r_ij < rc_ab} 4 eps_ab [(sigma_ab/r)^12 - (sigma_ab/r)^6] - shift_ab

with ``shift_ab`` the pair energy at rc_ab when ``shift`` is on (``pair_modify shift yes``),
else 0. Per-atom energies take half of each pair. Parameter file (TOML, ``*.lj.toml``)::
    style = "lj/cut"
    elements = ["Ar", "Kr"]
    cutoff = 8.5              # global cutoff, Angstrom
    shift = true
    mixing = "geometric"      # unlisted unlike pairs: "geometric" or "arithmetic" (sigma)
    [[pair]]
    elements = ["Ar", "Ar"]
    epsilon = 0.0104          # eV
    sigma = 3.40              # Angstrom
    cutoff = 8.5              # optional per-pair cutoff
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from ase.data import atomic_numbers

from hybridpot.empirical.base import EmpiricalPotential, LammpsPair
from hybridpot.errors import ConfigError, PotentialFileError
from hybridpot.io.toml import read_toml
from hybridpot.neighbors import PairGraph
from hybridpot.registry import BaselineType
from hybridpot.settings import Settings, option, required


class LennardJones(EmpiricalPotential):
    """Lennard-Jones ``lj/cut``; epsilon (eV) and sigma (Angstrom) per element pair are torch parameters.

    Args:
        elements: chemical symbols; type index = position.
        epsilon, sigma: per pair ``{(a, b): value}``; like pairs are required, unlike pairs are
            mixed (``mixing``) when absent.
        cutoff: global cutoff (Angstrom); ``cutoffs`` overrides it per pair.
        shift: subtract the pair energy at the cutoff.
    """

    def __init__(
        self,
        elements: Sequence[str],
        epsilon: Mapping[tuple[str, str], float],
        sigma: Mapping[tuple[str, str], float],
        cutoff: float,
        cutoffs: Mapping[tuple[str, str], float] | None = None,
        shift: bool = False,
        mixing: str = "geometric",
        source: str = "Lennard-Jones",
    ) -> None:
        if mixing not in ("geometric", "arithmetic"):
            raise PotentialFileError(f"{source}: mixing must be 'geometric' or 'arithmetic', got {mixing!r}")
        elements = list(elements)
        eps_t = _symmetric(epsilon, elements, source, "epsilon")
        sig_t = _symmetric(sigma, elements, source, "sigma")
        cut_t = _symmetric(cutoffs or {}, elements, source, "cutoff")
        pairs = list(itertools.combinations_with_replacement(range(len(elements)), 2))
        eps, sig, cut = [], [], []
        for a, b in pairs:
            for table, name in ((eps_t, "epsilon"), (sig_t, "sigma")):
                if (a, a) not in table or (b, b) not in table:
                    raise PotentialFileError(f"{source}: {name} missing for {elements[a]}-{elements[a]} or {elements[b]}-{elements[b]}")
            e = eps_t.get((a, b), math.sqrt(eps_t[(a, a)] * eps_t[(b, b)]))
            if mixing == "geometric":
                s = sig_t.get((a, b), math.sqrt(sig_t[(a, a)] * sig_t[(b, b)]))
            else:
                s = sig_t.get((a, b), 0.5 * (sig_t[(a, a)] + sig_t[(b, b)]))
            c = cut_t.get((a, b), cutoff)
            if not (s > 0 and e >= 0 and c > 0):
                raise PotentialFileError(f"{source}: need sigma > 0, epsilon >= 0, cutoff > 0 for {elements[a]}-{elements[b]}")
            eps.append(e)
            sig.append(s)
            cut.append(c)
        super().__init__(max(cut), elements, source)
        self.shift = bool(shift)
        self.mixing = mixing
        self.pairs = pairs
        self.epsilon = torch.nn.Parameter(torch.tensor(eps, dtype=torch.float64))
        self.sigma = torch.nn.Parameter(torch.tensor(sig, dtype=torch.float64))
        self.register_buffer("pair_cutoff", torch.tensor(cut, dtype=torch.float64))
        index = torch.zeros((len(elements), len(elements)), dtype=torch.int64)
        for k, (a, b) in enumerate(pairs):
            index[a, b] = index[b, a] = k
        self.register_buffer("pair_index", index)

    def forward(self, graph: PairGraph) -> torch.Tensor:
        t = self.types(graph.numbers)
        k = self.pair_index[t[graph.i], t[graph.j]]
        r = graph.distances
        rc = self.pair_cutoff[k]
        inside = r < rc
        eps, sig = self.epsilon[k], self.sigma[k]
        e = _lj(eps, sig, r)
        if self.shift:
            e = e - _lj(eps, sig, rc)
        e = torch.where(inside, e, torch.zeros_like(e))
        out = torch.zeros(graph.n_atoms, dtype=e.dtype, device=e.device)
        return out.index_add(0, graph.i, 0.5 * e)

    def lammps_pair(self, type_elements: Sequence[str]) -> LammpsPair:
        coeffs = []
        for ti, tj in itertools.combinations_with_replacement(range(len(type_elements)), 2):
            a, b = self.types(torch.tensor([atomic_numbers[type_elements[ti]], atomic_numbers[type_elements[tj]]])).tolist()
            k = int(self.pair_index[a, b])
            coeffs.append(
                (str(ti + 1), str(tj + 1), f"{self.epsilon[k].item()!r} {self.sigma[k].item()!r} {self.pair_cutoff[k].item()!r}")
            )
        return LammpsPair(style=f"lj/cut {self.cutoff!r}", coeffs=coeffs, modify=["shift yes"] if self.shift else [])

    def to_dict(self) -> dict[str, Any]:
        """Parameters in the TOML file layout (round trip with :meth:`from_dict`)."""
        pairs = []
        for k, (a, b) in enumerate(self.pairs):
            pairs.append(
                {
                    "elements": [self.elements[a], self.elements[b]],
                    "epsilon": self.epsilon[k].item(),
                    "sigma": self.sigma[k].item(),
                    "cutoff": self.pair_cutoff[k].item(),
                }
            )
        return {"style": "lj/cut", "elements": self.elements, "cutoff": self.cutoff, "shift": self.shift, "mixing": self.mixing, "pair": pairs}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "Lennard-Jones parameters") -> "LennardJones":
        known = {"style", "elements", "cutoff", "shift", "mixing", "pair"}
        unknown = set(d) - known
        if unknown:
            raise PotentialFileError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
        if d.get("style", "lj/cut") != "lj/cut":
            raise PotentialFileError(f"{source}: style must be 'lj/cut', got {d.get('style')!r}")
        for key in ("elements", "cutoff", "pair"):
            if key not in d:
                raise PotentialFileError(f"{source}: missing key {key!r}")
        eps, sig, cut = {}, {}, {}
        for n, p in enumerate(d["pair"]):
            try:
                a, b = p["elements"]
                eps[(a, b)] = float(p["epsilon"])
                sig[(a, b)] = float(p["sigma"])
                if "cutoff" in p:
                    cut[(a, b)] = float(p["cutoff"])
            except (KeyError, TypeError, ValueError) as exc:
                raise PotentialFileError(f"{source}: pair entry {n} needs elements=[a, b], epsilon, sigma ({exc})") from exc
        return cls(
            d["elements"], eps, sig, float(d["cutoff"]), cut, bool(d.get("shift", False)), d.get("mixing", "geometric"), source
        )

    @property
    def file_name(self) -> str:
        return self.path.name if self.path is not None else "baseline.lj.toml"

    def to_text(self) -> str:
        """The parameters as a ``*.lj.toml`` file."""
        d = self.to_dict()
        lines = [
            'style = "lj/cut"',
            "elements = [" + ", ".join(f'"{e}"' for e in d["elements"]) + "]",
            f"cutoff = {d['cutoff']!r}",
            f"shift = {str(d['shift']).lower()}",
            f'mixing = "{d["mixing"]}"',
        ]
        for p in d["pair"]:
            lines += [
                "",
                "[[pair]]",
                f'elements = ["{p["elements"][0]}", "{p["elements"][1]}"]',
                f"epsilon = {p['epsilon']!r}",
                f"sigma = {p['sigma']!r}",
                f"cutoff = {p['cutoff']!r}",
            ]
        return "\n".join(lines) + "\n"

    @classmethod
    def read(cls, path: str | Path) -> "LennardJones":
        """Read a ``*.lj.toml`` parameter file."""

        pot = cls.from_dict(read_toml(path), source=str(path))
        pot.path = Path(path)
        return pot


def _lj(eps: torch.Tensor, sig: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    x6 = (sig / r) ** 6
    return 4.0 * eps * (x6 * x6 - x6)


def _symmetric(table: Mapping[tuple[str, str], float], elements: list[str], source: str, name: str) -> dict[tuple[int, int], float]:
    out: dict[tuple[int, int], float] = {}
    for (a, b), v in table.items():
        if a not in elements or b not in elements:
            raise PotentialFileError(f"{source}: {name} given for {a}-{b}, but elements are {elements}")
        i, j = sorted((elements.index(a), elements.index(b)))
        out[(i, j)] = float(v)
    return out


@dataclass
class LJSettings(Settings):
    """``[baseline] type = "lj"``: a Lennard-Jones baseline defined in the configuration (the keys of a ``*.lj.toml`` file)."""

    elements: list[str] = required("chemical symbols (type order)")
    cutoff: float = required("global cutoff, Angstrom")
    pair: list[dict] = required("[[baseline.pair]] tables: elements = [a, b], epsilon (eV), sigma (A), optional cutoff (A)")
    shift: bool = option(False, "subtract the pair energy at the cutoff (pair_modify shift yes)")
    mixing: str = option("geometric", "unlisted unlike pairs: 'geometric' or 'arithmetic' (sigma)")

    def check_values(self, where: str) -> None:
        if self.mixing not in ("geometric", "arithmetic"):
            raise ConfigError(f"{where} mixing = {self.mixing!r}: expected 'geometric' or 'arithmetic'")
        if not self.cutoff > 0:
            raise ConfigError(f"{where} cutoff = {self.cutoff}: must be positive")


#: registry entry (:mod:`hybridpot.registry`): a ``*.lj.toml`` file or ``[baseline] type = "lj"`` with its keys
LJ = BaselineType("lj", (".lj.toml",), LennardJones.read, "lj/cut", settings=LJSettings,
                  build=lambda s, source: LennardJones.from_dict(dataclasses.asdict(s), source=source),
                  summary="Lennard-Jones lj/cut, per-pair epsilon and sigma; a file or inline")
