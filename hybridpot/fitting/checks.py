"""Checks of a fit's inputs that need the data, run before any expensive work.

Each failure is an error naming the file, the structure (its index in that file and its
config_type) or the configuration key, and the fix. The configuration alone is checked earlier
(:mod:`hybridpot.fitting.config`), the labels' units after the baseline pass
(:mod:`hybridpot.fitting.units`).
"""

from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from hybridpot.dataset import Dataset
from hybridpot.errors import ConfigError, DataError, FitError
from hybridpot.fitting.config import FitConfig
from hybridpot.io.integrity import non_finite_tensors
from hybridpot.metrics import EV_A3_TO_GPA
from hybridpot.neighbors import half_pairs
from hybridpot.registry import models


def _first(data: Dataset, mask: np.ndarray, limit: int = 5) -> str:
    """The first few structures of ``mask`` (S,) by file index and config_type, e.g. "structure 3 (...), structure 9 (...)"."""
    idx = np.flatnonzero(mask)
    return ", ".join(data.describe(s) for s in idx[:limit]) + (f" and {idx.size - limit} more" if idx.size > limit else "")


def _with_element(data: Dataset, symbols: list[str]) -> np.ndarray:
    from ase.data import atomic_numbers

    z = [atomic_numbers[e] for e in symbols]
    return np.array([bool(np.isin(a.numbers, z).any()) for a in data.frames])


def check_data(config: FitConfig, train: Dataset, test: Dataset | None, baseline) -> None:
    """Labels needed by the weights exist; every element is covered by the baseline and by the
    training set; per-config-type weights name config types that exist; CV has enough structures.

    Raises:
        DataError: missing labels, elements the baseline or the training set lacks.
        ConfigError: ``config_weights`` for config types the training set does not have, more CV
            folds than training structures.
    """
    f, m = config["fit"], config["model"]
    if f["force_weight"] > 0 and not train.has_forces.all():
        bad = np.where(~train.has_forces)[0]
        raise DataError(
            f"{train.source}: structures {bad[:10].tolist()}{'...' if bad.size > 10 else ''} have no forces, "
            f"but force_weight = {f['force_weight']} > 0 ({_first(train, ~train.has_forces, 3)}): set force_weight = 0 or add forces"
        )
    if f["stress_weight"] > 0 and not train.has_stress.any():
        raise DataError(f"{train.source}: no structure has a stress, but stress_weight = {f['stress_weight']} > 0 "
                        "(set stress_weight = 0 or add stresses)")
    if baseline is not None and baseline.elements is not None:
        for data in (train, test):
            if data is None:
                continue
            missing = [e for e in data.elements if e not in baseline.elements]
            if missing:
                raise DataError(
                    f"{data.source}: element(s) {missing} not in the baseline {baseline.source} (it has {baseline.elements}); "
                    f"first in {_first(data, _with_element(data, missing), 1)}: use a baseline that covers them or remove those structures"
                )
    if test is not None:
        only_test = [e for e in test.elements if e not in train.elements]
        if only_test:
            raise DataError(
                f"{test.source}: element(s) {only_test} are in the test set but not in the training set {train.source} "
                f"(first in {_first(test, _with_element(test, only_test), 1)}): the model cannot predict them; add training "
                "structures with them or remove those test structures"
            )
    unknown = sorted(set(f["config_weights"]) - set(train.config_type))
    if unknown:
        raise ConfigError(f"{config.source}: [fit] config_weights names config type(s) {unknown} that no structure of "
                          f"{train.source} has (it has {sorted(set(train.config_type))}); check the spelling")
    if m["type"] == "nn" and len(train) > 1 and len(train) - max(1, int(round(m["validation_fraction"] * len(train)))) < 1:
        raise ConfigError(f"{config.source}: [model] validation_fraction = {m['validation_fraction']} leaves no training structure "
                          f"of the {len(train)} in {train.source} (the rest validate): lower it")
    cv = m.get("regularization") == "cv" or f["energy_weight"] == "cv"
    if cv and models.get(m["type"]).linear and len(train) < 2:
        raise ConfigError(f"{config.source}: cross-validation (regularization or energy_weight = 'cv') needs at least 2 "
                          f"training structures; {train.source} has {len(train)}")


def shared_structures(train_keys: Sequence[str], data: Dataset) -> list[tuple[int, int]]:
    """(structure of ``data``, training structure) pairs, positions in each set, of the structures of ``data`` that are
    copies of training structures (``train_keys``: :meth:`Dataset.structure_keys` of the training set). Their errors are
    training errors."""
    first: dict[str, int] = {}
    for s, key in enumerate(train_keys):
        first.setdefault(key, s)
    return [(s, first[k]) for s, k in enumerate(data.structure_keys) if k in first]


def shared_structures_message(data: Dataset, pairs: list[tuple[int, int]], training: str, name: Callable[[int], str],
                              limit: int = 3) -> str:
    """The warning for :func:`shared_structures`' ``pairs`` (non-empty): ``training`` names the training set, ``name``
    a training structure by its position."""
    shown = "; ".join(f"{data.describe(a)} = {name(b)}" for a, b in pairs[:limit])
    more = f" and {len(pairs) - limit} more" if len(pairs) > limit else ""
    return (f"{len(pairs)} of the {len(data)} structures of {data.source} are also in {training} ({shown}{more}): their "
            "errors are training errors; remove them from one of the sets")


def repeated_structures(data: Dataset) -> list[tuple[int, int]]:
    """(structure, its first copy) pairs, positions in ``data``, of the structures that repeat an earlier one
    (:meth:`Dataset.structure_keys`): each copy adds its rows to a fit again, so the structure weighs as many times."""
    return [(s, first) for s, first in shared_structures(data.structure_keys, data) if first != s]


#: The largest label differences between two copies of one structure still taken as one calculation's: energy (eV/atom),
#: force component (eV/A), stress component (eV/A^3; 0.1 GPa). A DFT code repeats its own calculation to ~1e-6 eV/atom;
#: another k-point mesh or plane-wave cutoff moves the energy by meV/atom, more than a good fit's error (mlearn Cu:
#: 0.3-0.5 meV/atom), and a copy with another structure's labels by far more.
SAME_LABELS_TOLERANCE = {"energy": 1e-3, "force": 0.05, "stress": 0.1 / EV_A3_TO_GPA}


def conflicting_copies(data: Dataset, pairs: Sequence[tuple[int, int]], original: Dataset | None = None) -> list[dict[str, float | int]]:
    """Those of ``pairs`` ((structure of ``data``, its copy in ``original``), positions in each set: :func:`repeated_structures`
    within one set, :func:`shared_structures` across two; ``original`` None: ``data`` itself) whose labels differ by
    more than :data:`SAME_LABELS_TOLERANCE` in a kind both copies have: the same structure with two answers, of which a
    fit can match neither.

    Returns:
        per conflicting pair: "structure", "first" (positions in ``data`` and ``original``), and the largest differences
        "energy_meV_atom", "force_eV_A" (a force component) and "stress_GPa" (a stress component; None where one copy
        has no forces or no stress).
    """
    o = data if original is None else original
    ptr, optr = data.ptr, o.ptr
    out = []
    for s, first in pairs:
        n = len(data.frames[s])
        diff: dict[str, float | None] = {"energy": abs(data.energy[s] - o.energy[first]) / n, "force": None, "stress": None}
        if data.has_forces[s] and o.has_forces[first]:
            diff["force"] = float(np.abs(data.forces[ptr[s]:ptr[s + 1]] - o.forces[optr[first]:optr[first + 1]]).max())
        if data.has_stress[s] and o.has_stress[first]:
            diff["stress"] = float(np.abs(data.stress[s] - o.stress[first]).max())
        if any(v is not None and v > SAME_LABELS_TOLERANCE[k] for k, v in diff.items()):
            out.append({"structure": s, "first": first, "energy_meV_atom": 1e3 * float(diff["energy"]), "force_eV_A": diff["force"],
                        "stress_GPa": None if diff["stress"] is None else EV_A3_TO_GPA * diff["stress"]})
    return out


def conflicting_copies_record(data: Dataset, conflicts: Sequence[dict[str, float | int]],
                              original: Dataset | None = None) -> list[dict[str, float | int]]:
    """:func:`conflicting_copies`' pairs for report.json: the structures by their positions in their files."""
    o = data if original is None else original
    return [{**c, "structure": int(data.index[c["structure"]]), "first": int(o.index[c["first"]])} for c in conflicts]


def conflicting_copies_findings(data: Dataset, conflicts: Sequence[dict[str, float | int]], limit: int = 3,
                                original: Dataset | None = None, consequence: str = "at most one of them is right and the fit "
                                                                                    "can match neither") -> list[str]:
    """One sentence per pair of :func:`conflicting_copies` (the first ``limit``, then how many more), ending in
    ``consequence``; ``original``: the set of the copies (None: ``data``), whose structures are named "training structure"."""
    def differences(c: dict[str, float | int]) -> str:
        parts = [f"energy by {c['energy_meV_atom']:.3g} meV/atom"]
        parts += [f"forces by up to {c['force_eV_A']:.3g} eV/A"] if c["force_eV_A"] is not None else []
        parts += [f"stress by up to {c['stress_GPa']:.3g} GPa"] if c["stress_GPa"] is not None else []
        return ", ".join(parts)

    copy = data.describe if original is None else (lambda b: f"training {original.describe(b)}")
    findings = [f"{data.describe(c['structure'])} is {copy(c['first'])} again (the same species, positions and cell) "
                f"with other labels: {differences(c)}; {consequence}" for c in conflicts[:limit]]
    if len(conflicts) > limit:
        findings.append(f"{len(conflicts) - limit} more copies with other labels (report.json data_checks)")
    return findings


def check_cutoff(config: FitConfig, train: Dataset, elements: list[str], rcut: float) -> None:
    """Every element has, somewhere in the training set, an atom with a neighbour within ``rcut``.

    Otherwise its descriptors are zero for every training atom and the fit is undetermined.
    Stops at the first structures that show every element a neighbour (usually the first one).

    Raises:
        ConfigError: an element whose atoms have no neighbour within ``rcut`` anywhere (naming the
            shortest interatomic distance in the training file).
    """
    from ase.data import chemical_symbols


    unseen = set(elements)
    for atoms in train.frames:
        i, j = half_pairs(atoms, rcut, "ij")
        unseen -= {chemical_symbols[z] for z in np.unique(atoms.numbers[np.concatenate([i, j])])}
        if not unseen:
            return
    shortest, where = _shortest_distance(train)
    raise ConfigError(
        f"{config.source}: [descriptor] rcut = {rcut} A: no {'/'.join(sorted(unseen))} atom of {train.source} has a neighbour "
        f"within rcut ({where}), so its descriptors would be zero for every training atom; set rcut well above "
        f"{shortest:.3g} A (typically 4-6 A)"
    )


def _shortest_distance(data: Dataset, search: float = 8.0) -> tuple[float, str]:
    """The shortest interatomic distance of the set (up to ``search`` A) and where it is, for messages."""

    best, where = np.inf, f"no two atoms within {search} A"
    for s, atoms in enumerate(data.frames):
        (d,) = half_pairs(atoms, search, "d")
        if d.size and d.min() < best:
            best, where = float(d.min()), f"its shortest interatomic distance is {d.min():.3g} A, in {data.describe(s)}"
    return (best if np.isfinite(best) else search), where


def solve_memory_bytes(config: FitConfig, potential, n_atoms: int, n_params: int | None = None) -> int:
    """Estimated peak memory of a linear/quadratic solve: the triangular factors (one per fold and
    row kind when the energy weight is chosen by CV, one per fold for CV of the regularisation, plus
    the combined one and the QR's working copy), the posterior covariance and the kept training descriptors.
    ``n_params``: the parameters per element of the model assembled (None: the potential's; more for a joint fit)."""
    m, f = config["model"], config["fit"]
    columns = (potential.model.n_params if n_params is None else n_params) * len(potential.model.elements) + 1
    folds = m["cv_folds"] if (m["regularization"] == "cv" or f["energy_weight"] == "cv") else 1
    factors = folds * (3 if f["energy_weight"] == "cv" else 1) + folds + 3
    return 8 * (factors * columns**2 + n_atoms * potential.descriptor.n_features)


def check_solve_memory(config: FitConfig, potential, train: Dataset, held_bytes: int = 0, n_params: int | None = None) -> None:
    """Refuse a linear or quadratic fit whose solve cannot fit in this machine's memory.

    ``held_bytes``: memory the caller keeps beside the fit (a tune's best candidate so far), added to the estimate.
    ``n_params``: as :func:`solve_memory_bytes` (the model assembled, where it is not the potential's own).

    Raises:
        ConfigError: the estimate (:func:`solve_memory_bytes`) exceeds the physical memory,
            naming the parameter count and what lowers it.
    """
    if not models.get(config["model"]["type"]).linear:  # trained, not solved
        return
    need = solve_memory_bytes(config, potential, int(train.n_atoms.sum()), n_params) + int(held_bytes)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # not available on this system: no check
        return
    if need > have:
        model = potential.model
        raise ConfigError(
            f"{config.source}: the {config['model']['type']} model has {model.n_params if n_params is None else n_params} parameters per element "
            f"({len(model.elements)} elements; {potential.descriptor.n_features} descriptor features), and solving for them "
            f"needs about {need / 2**30:.1f} GiB" + (f" (with {held_bytes / 2**30:.1f} GiB held by the best tune candidate so far)"
                                                      if held_bytes else "")
            + f", more than this machine's {have / 2**30:.1f} GiB: lower [descriptor] nmax "
            "or lmax, use a linear model, or [model] type = 'nn'"
        )



def check_enough_rows(config: FitConfig, potential, train: Dataset) -> None:
    """Refuse a fit by least squares with more parameters than ``train`` can give rows, before the design pass (whose
    solve would refuse it only at the end): at most one energy row and six virial rows per structure and three force
    rows per atom with forces. A model with its own prior on every parameter (``identity_prior``: the kernel's GP) may
    have more parameters than rows.

    Raises:
        ConfigError: naming the counts and what lowers them.
    """
    model = potential.model
    if not models.get(config["model"]["type"]).linear or getattr(model, "identity_prior", False):
        return
    n_params = model.n_params * len(model.elements)
    rows = 7 * len(train) + 3 * int(train.n_atoms[train.has_forces].sum())
    if n_params > rows:
        raise ConfigError(
            f"{config.source}: the {config['model']['type']} model has {n_params} parameters ({potential.descriptor.n_features} "
            f"descriptor features), more than the at most {rows} rows of the {len(train)} training structures: lower [descriptor] "
            "nmax or lmax, use a linear model, or add data"
        )


def check_baseline_finite(data: Dataset, baseline, source: str) -> None:
    """The baseline's energies and forces on ``data`` are finite (else the residual targets are not).

    Raises:
        DataError: naming the structures and the baseline (``source``).
    """
    atoms_bad = ~np.all(np.isfinite(baseline.forces), axis=1)
    bad = ~np.isfinite(baseline.energy) | (np.add.reduceat(atoms_bad.astype(int), data.ptr[:-1]) > 0)
    if bad.any():
        raise DataError(f"{data.source}: the baseline {source} gives NaN or infinite energies or forces for {_first(data, bad)} "
                        "(atoms outside the range of its tables?): remove those structures or use another baseline")


def check_fitted(potential) -> None:
    """The fitted parameters are finite.

    Raises:
        FitError: naming the parameters, before anything is written.
    """

    bad = non_finite_tensors(potential.model)
    if bad:
        raise FitError(f"the fit produced NaN or infinite parameters ({'; '.join(bad)}); nothing was written: check the "
                       "data and weights (the fit record in the log), or use explicit regularization")
