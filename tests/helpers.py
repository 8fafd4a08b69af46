"""Finite differences and comparisons shared by the physics tests."""

from __future__ import annotations

import numpy as np
from ase import Atoms

from hybridpot.potential import Potential, to_numpy


def energy(potential: Potential, atoms: Atoms) -> float:
    return float(to_numpy(potential.compute(atoms, forces=False, stress=False))["energy"][0])


def fd_forces(potential: Potential, atoms: Atoms, h: float = 1e-4, atoms_idx=None) -> np.ndarray:
    """Central finite-difference forces -dE/dx (eV/A) for the atoms in ``atoms_idx`` (default all)."""
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
    """Central finite-difference stress (1/V) dE/d(strain), ASE Voigt order, eV/A^3."""
    from hybridpot.potential import VOIGT

    volume = atoms.get_volume()
    out = np.zeros(6)
    for k, (a, b) in enumerate(VOIGT):
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h if a != b else h
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


def assert_matches_lammps(potential: Potential, atoms: Atoms, type_elements, pair_lines=None, label: str = "",
                          e_rel: float = 1e-10, f_abs: float = 1e-8, s_abs: float = 1e-8, ea_abs: float = 1e-10) -> dict:
    """Evaluate ``atoms`` with hybridpot and with LAMMPS (the potential's own pair lines unless
    given) and assert energy (relative), per-atom energies (absolute, eV, vs ``compute pe/atom``),
    forces and virial/volume agree."""
    from hybridpot.lammps_run import run_lammps

    lines = pair_lines if pair_lines is not None else potential.lammps_pair(type_elements).lines()
    ref = run_lammps(atoms, lines, type_elements)
    ours = to_numpy(potential.compute(atoms, forces=True, stress=True))
    e_err = abs(ours["energy"][0] - ref["energy"]) / abs(ref["energy"])
    ea_err = np.max(np.abs(ours["energies"] - ref["energies"]))
    f_err = np.max(np.abs(ours["forces"] - ref["forces"]))
    # virial / V in eV/A^3 for periodic cells; for a cluster use the per-atom volume scale 1/N
    scale = atoms.get_volume() if abs(atoms.cell.volume) > 1e-10 else 1.0
    s_err = np.max(np.abs(ours["virial"][0] - ref["virial"])) / scale
    report = {"energy_rel": e_err, "energies_abs": ea_err, "forces_abs": f_err, "virial_over_volume_abs": s_err, "energy": ref["energy"]}
    assert e_err <= e_rel, f"{label}: energy {ours['energy'][0]!r} vs LAMMPS {ref['energy']!r} ({report})"
    assert ea_err <= ea_abs, f"{label}: per-atom energies differ from LAMMPS by {ea_err:.3e} eV ({report})"
    assert f_err <= f_abs, f"{label}: forces differ from LAMMPS by {f_err:.3e} eV/A ({report})"
    assert s_err <= s_abs, f"{label}: virial/V differs from LAMMPS by {s_err:.3e} eV/A^3 ({report})"
    return {"ours": ours, "lammps": ref, "report": report}
