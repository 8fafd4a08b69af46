"""The corpus of bad inputs of issue 18: each case writes its files (small, from the bundled Cu data)
into a folder and names the exact error class and a fragment of the message it must raise.

A case is ``Case(id, build, error, fragment)``; ``build(folder) -> config path`` writes a fit
configuration (TOML) and whatever bad data or potential files it needs. The output folder of every
configuration is ``folder / "out"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from hybridpot.dataset import bundled
from hybridpot.errors import ConfigError, DataError, OutlierError, UnitsError

EAM = bundled("Cu_mishin1.eam.alloy")
HARTREE, HARTREE_BOHR, KCAL_MOL, GPA = 27.211386, 51.422067, 23.060548, 160.21766  # eV, eV/A, per eV, per eV/A^3


def toml_value(v: Any) -> str:
    """A TOML literal (floats keep nan and inf, which TOML has)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def write_config(folder: Path, sections: dict[str, dict[str, Any]]) -> Path:
    path = folder / "fit.toml"
    path.write_text("".join(f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items()) for name, keys in sections.items()))
    return path


def small_config(folder: Path, train: Path | None = None, test: Path | None = None, **overrides: dict[str, Any]) -> Path:
    """A fast fit of 8 bundled training structures (4 test), nmax = lmax = 2, no plots, output in ``folder / "out"``;
    ``overrides`` update sections (a value None removes the key)."""
    if train is None:
        train = folder / "train.xyz"
        write(train, read(bundled("Cu_train.xyz"), index=":8"))
    if test is None:
        test = folder / "test.xyz"
        write(test, read(bundled("Cu_test.xyz"), index=":4"))
    sections: dict[str, dict[str, Any]] = {
        "data": {"train": str(train), "test": str(test)},
        "baseline": {"file": str(EAM)},
        "descriptor": {"rcut": 4.5, "nmax": 2, "lmax": 2, "alpha": 1.5},
        "model": {"type": "linear"},
        "fit": {"energy_weight": 100.0, "seed": 0},
        "output": {"dir": "out", "plots": False},
    }
    for name, keys in overrides.items():
        section = sections.setdefault(name, {})
        for k, v in keys.items():
            if v is None:
                section.pop(k, None)
            else:
                section[k] = v
    return write_config(folder, sections)


def relabelled(frames, energy: float = 1.0, forces: float = 1.0, stress: float = 1.0):
    """Copies of labelled frames with energies, forces and stresses multiplied (a unit or sign mistake)."""
    out = []
    for a in frames:
        r = a.calc.results
        b = a.copy()
        labels = {"energy": r["energy"] * energy, "forces": r["forces"] * forces}
        if "stress" in r:
            labels["stress"] = r["stress"] * stress
        b.calc = SinglePointCalculator(b, **labels)
        out.append(b)
    return out


def fit_with_check_off(folder: Path, frames, key: str) -> tuple[dict[str, Any], list[str], Any]:
    """Fit ``frames`` (written as the training set of :func:`small_config`) with ``[data] key = false``.

    Returns:
        report.json's "data_checks", the lines logged, the :class:`~hybridpot.fitting.job.FitResult`.
    """
    import json

    from hybridpot.fitting.config import read_config
    from hybridpot.fitting.job import run_fit

    write(folder / "labels.xyz", frames)
    path = small_config(folder, train=folder / "labels.xyz", data={key: False})
    logged: list[str] = []
    result = run_fit(read_config(path), progress=False, log=logged.append)
    return json.loads((folder / "out" / "report.json").read_text())["data_checks"], logged, result


def _file(folder: Path, name: str, frames) -> Path:
    path = folder / name
    write(path, frames)
    return path


# --------------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], Path]
    error: type
    fragment: str


def _overlap(folder: Path, which: str) -> Path:
    name = "train" if which == "train" else "test"
    frames = read(bundled(f"Cu_{name}.xyz"), index=":8" if which == "train" else ":4")
    frames[3].positions[5] = frames[3].positions[9] + [0.1, 0.1, 0.1]  # structure 3 of the file, config_type vacancy/aimd
    path = _file(folder, f"{name}_overlap.xyz", frames)
    return small_config(folder, **({"train": path} if which == "train" else {"test": path}))


def _nan_position(folder: Path) -> Path:
    frames = read(bundled("Cu_train.xyz"), index=":8")
    frames[6].positions[2, 1] = np.nan
    return small_config(folder, train=_file(folder, "nanpos.xyz", frames))


def _no_energy(folder: Path) -> Path:
    frames = read(bundled("Cu_train.xyz"), index=":8")
    frames[4].calc.results.pop("energy")
    return small_config(folder, train=_file(folder, "noenergy.xyz", frames))


def _element_only_in_test(folder: Path) -> Path:
    frames = read(bundled("Cu_test.xyz"), index=":4")
    frames[2][0].symbol = "Ag"
    return small_config(folder, test=_file(folder, "test_ag.xyz", frames), baseline={"file": None, "type": "none"})


def _element_not_in_baseline(folder: Path) -> Path:
    frames = read(bundled("Cu_train.xyz"), index=":8")
    frames[5][0].symbol = "Ni"
    return small_config(folder, train=_file(folder, "train_ni.xyz", frames))


def _units(folder: Path, which: str, energy: float = 1.0, forces: float = 1.0, stress: float = 1.0, baseline: bool = True) -> Path:
    src = read(bundled("Cu_train.xyz" if which == "train" else "Cu_test.xyz"), index=":8" if which == "train" else ":")
    path = _file(folder, f"{which}_units.xyz", relabelled(src, energy, forces, stress))
    extra = {} if baseline else {"baseline": {"file": None, "type": "none"}}
    return small_config(folder, **({"train": path} if which == "train" else {"test": path}), **extra)


def _one_bad_structure(folder: Path, name: str, change: Callable) -> Path:
    """8 bundled training structures with ``change(frames)`` applied to the labels of one or two (an outlier among them)."""
    frames = relabelled(read(bundled("Cu_train.xyz"), index=":8"))
    change(frames)
    return small_config(folder, train=_file(folder, name, frames))


def _shift_energy(frames, s: int, per_atom: float) -> None:
    frames[s].calc.results["energy"] += per_atom * len(frames[s])


def _set_force(frames, s: int, atom: int, value: list[float]) -> None:
    frames[s].calc.results["forces"][atom] = value


def _negate_forces(frames, s: int) -> None:
    frames[s].calc.results["forces"] *= -1.0


def _copy_with_other_labels(frames, s: int, energy_per_atom: float = 0.0, force: float = 0.0) -> None:
    """Append a copy of structure ``s`` (the same positions and cell) whose energy differs by ``energy_per_atom``
    (eV/atom) and whose first atom's x force by ``force`` (eV/A)."""
    r = frames[s].calc.results
    copy = frames[s].copy()
    forces = r["forces"].copy()
    forces[0, 0] += force
    copy.calc = SinglePointCalculator(copy, energy=r["energy"] + energy_per_atom * len(copy), forces=forces)
    frames.append(copy)


CASES: list[Case] = [
    # configuration values: finiteness and range, found before any data is read
    Case("nan-regularization", lambda d: small_config(d, model={"regularization": math.nan}), ConfigError,
         "[model] regularization = nan: numbers must be finite"),
    Case("inf-force-weight", lambda d: small_config(d, fit={"force_weight": math.inf}), ConfigError,
         "[fit] force_weight = inf: numbers must be finite"),
    Case("nan-in-candidates", lambda d: small_config(d, fit={"energy_weight": "cv", "energy_weight_candidates": [1.0, math.nan]}),
         ConfigError, "[fit] energy_weight_candidates = [1.0, nan]: numbers must be finite"),
    Case("nan-config-weight", lambda d: small_config(d, fit={"config_weights": {"aimd": math.nan}}), ConfigError,
         "[fit] config_weights = {'aimd': nan}: numbers must be finite"),
    Case("nmax-30", lambda d: small_config(d, descriptor={"nmax": 30}), ConfigError,
         "[descriptor] nmax = 30: basis = 'lammps' is limited to nmax <= 15"),
    Case("negative-seed", lambda d: small_config(d, fit={"seed": -1}), ConfigError, "[fit] seed = -1: must be >= 0"),
    Case("alpha-huge", lambda d: small_config(d, descriptor={"alpha": 1e6}), ConfigError,
         "[descriptor] alpha = 1000000.0 with rcut = 4.5: the Gaussian smearing is too narrow"),
    Case("lmax-0", lambda d: small_config(d, descriptor={"lmax": 0}), ConfigError, "[descriptor] lmax = 0: too small (at least 1)"),
    Case("name-with-slash", lambda d: small_config(d, output={"name": "a/b"}), ConfigError,
         "[output] name = 'a/b': expected a plain file name"),
    Case("nn-no-training-structure", lambda d: small_config(d, model={"type": "nn", "hidden": [4], "epochs": 3,
                                                                      "validation_fraction": 0.99}), ConfigError,
         "[model] validation_fraction = 0.99 leaves no training structure of the 8"),
    # configuration against the data, before the fit
    Case("rcut-below-shortest-distance", lambda d: small_config(d, descriptor={"rcut": 1.5}), ConfigError,
         "[descriptor] rcut = 1.5 A: no Cu atom of"),
    Case("config-weight-typo", lambda d: small_config(d, fit={"config_weights": {"surfce": 10.0}}), ConfigError,
         "config_weights names config type(s) ['surfce'] that no structure of"),
    Case("solve-too-large", lambda d: small_config(d, descriptor={"nmax": 12, "lmax": 12}, model={"type": "quadratic"}), ConfigError,
         "the quadratic model has 515620 parameters per element"),
    # structures and labels, naming the file, the index in it and the config_type
    Case("overlap-in-train", lambda d: _overlap(d, "train"), DataError,
         "train_overlap.xyz: structure 3 (config_type 'vacancy', Cu107): atoms 5 and 9 are 0.1732 A apart"),
    Case("overlap-in-test", lambda d: _overlap(d, "test"), DataError,
         "test_overlap.xyz: structure 3 (config_type 'aimd', Cu108): atoms 5 and 9 are 0.1732 A apart"),
    Case("nan-position", _nan_position, DataError, "nanpos.xyz: structure 6 (config_type 'vacancy', Cu107): positions of atoms [2]"),
    Case("no-energy", _no_energy, DataError, "noenergy.xyz: structure 4 has no energy (config_type 'vacancy', Cu107)"),
    Case("element-only-in-test", _element_only_in_test, DataError,
         "test_ag.xyz: element(s) ['Ag'] are in the test set but not in the training set"),
    Case("element-not-in-baseline", _element_not_in_baseline, DataError,
         "element(s) ['Ni'] not in the baseline"),
    # units and sign conventions, against the baseline, strained copies or typical DFT ranges
    Case("hartree", lambda d: _units(d, "train", 1 / HARTREE, 1 / HARTREE_BOHR), UnitsError, "energy: likely Hartree"),
    Case("hartree-forces", lambda d: _units(d, "train", 1 / HARTREE, 1 / HARTREE_BOHR), UnitsError, "forces: likely Hartree/Bohr"),
    Case("kcal-mol", lambda d: _units(d, "train", KCAL_MOL, KCAL_MOL), UnitsError, "energy: likely kcal/mol"),
    Case("kcal-mol-no-baseline", lambda d: _units(d, "train", KCAL_MOL, KCAL_MOL, baseline=False), UnitsError,
         "forces: likely kcal/mol/A, kJ/mol/A or meV/A"),
    # a factor no unit explains: said so, and that the comparison trusts the baseline
    Case("no-known-unit", lambda d: _units(d, "train", 6.0, 6.0), UnitsError,
         "times those in eV/A (no common unit gives this factor): their RMS force components are 5.66 times the baseline's on the same "
         "structures and correlate with them by +1.00 (eV-based labels: ratio 0.25-4, correlation > -0.5). A comparison with "
         "the baseline trusts the baseline: where it is the odd one out"),
    Case("stress-gpa", lambda d: _units(d, "test", stress=GPA), UnitsError, "stress: likely GPa or kbar"),
    Case("stress-lammps-sign", lambda d: _units(d, "test", stress=-1.0), UnitsError, "stress: likely the LAMMPS (pressure) sign"),
    Case("stress-lammps-sign-no-baseline", lambda d: _units(d, "test", stress=-1.0, baseline=False), UnitsError,
         "stress: likely the LAMMPS (pressure) sign: over 5 pairs of strained copies"),
    # single structures or atoms whose labels do not belong with the rest (named as themselves, not as the set's units)
    Case("one-shifted-of-six", lambda d: _one_bad_structure(d, "six.xyz", lambda f: (f.__delitem__(slice(6, None)), _shift_energy(f, 2, 0.4))),
         UnitsError, "structure 2 (config_type 'vacancy', Cu107) alone carries 8"),
    Case("outlier-energy", lambda d: _one_bad_structure(d, "shifted.xyz", lambda f: _shift_energy(f, 5, 0.3)), OutlierError,
         "1 structure(s) with energy labels far outside the rest: structure 5 (config_type 'vacancy', Cu107): +30"),
    Case("outlier-force-atom", lambda d: _one_bad_structure(d, "atom.xyz", lambda f: _set_force(f, 2, 7, [60.0, -20.0, 5.0])),
         OutlierError, "atom(s) with force labels far outside the rest: structure 2 (config_type 'vacancy', Cu107) atom 7"),
    Case("outlier-forces-kcal", lambda d: _one_bad_structure(d, "kcal.xyz", lambda f: f[6].calc.results["forces"].__imul__(KCAL_MOL)),
         OutlierError, "1 structure(s) with force labels far outside the rest: structure 6 (config_type 'vacancy', Cu107)"),
    # one structure twice with two answers: too small a difference for the outlier check, and no fit can match both
    Case("copy-other-energy", lambda d: _one_bad_structure(d, "copies.xyz", lambda f: _copy_with_other_labels(f, 2, energy_per_atom=0.005)),
         OutlierError, "copies.xyz: some labels contradict each other. structure 8 (config_type 'vacancy', Cu107) is structure 2 "
         "(config_type 'vacancy', Cu107) again (the same species, positions and cell) with other labels: energy by 5 meV/atom, "
         "forces by up to 0 eV/A"),
    Case("copy-other-force", lambda d: _one_bad_structure(d, "copies.xyz", lambda f: _copy_with_other_labels(f, 2, force=0.2)),
         OutlierError, "with other labels: energy by 0 meV/atom, forces by up to 0.2 eV/A"),
    Case("outlier-force-sign", lambda d: _one_bad_structure(d, "sign.xyz", lambda f: _negate_forces(f, 4)), OutlierError,
         "whose forces point against the baseline's (the other sign? gradients stored as forces?): structure 4 (config_type "
         "'vacancy', Cu107): correlation -"),
]
