"""Error metrics against reference data, and the error table printed by the CLI.

Energy errors are per atom (meV/atom) over structures; force errors over all Cartesian
components (eV/Angstrom); stress errors over all six components of structures that have a
reference stress (GPa).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

#: eV/Angstrom^3 -> GPa
EV_A3_TO_GPA = 160.21766208


def error_metrics(
    energy_pred: np.ndarray,
    energy_ref: np.ndarray,
    n_atoms: np.ndarray,
    forces_pred: np.ndarray | None = None,
    forces_ref: np.ndarray | None = None,
    stress_pred: np.ndarray | None = None,
    stress_ref: np.ndarray | None = None,
) -> dict[str, float]:
    """RMSE/MAE of energies (meV/atom), forces (eV/A) and stresses (GPa).

    Args:
        energy_pred, energy_ref, n_atoms: (S,) total energies (eV) and atom counts.
        forces_pred, forces_ref: (N, 3) eV/A; rows with NaN reference are ignored.
        stress_pred, stress_ref: (S, 6) eV/A^3; structures with NaN reference are ignored.
    """
    de = (np.asarray(energy_pred) - np.asarray(energy_ref)) / np.asarray(n_atoms) * 1000.0
    out = {
        "n_structures": int(len(de)),
        "energy_rmse_meV_atom": float(np.sqrt(np.mean(de**2))),
        "energy_mae_meV_atom": float(np.mean(np.abs(de))),
    }
    if forces_pred is not None and forces_ref is not None:
        ok = np.all(np.isfinite(forces_ref), axis=1)
        if ok.any():
            df = (forces_pred[ok] - forces_ref[ok]).ravel()
            out["force_rmse_eV_A"] = float(np.sqrt(np.mean(df**2)))
            out["force_mae_eV_A"] = float(np.mean(np.abs(df)))
            out["n_force_components"] = int(df.size)
    if stress_pred is not None and stress_ref is not None:
        ok = np.all(np.isfinite(stress_ref), axis=1) & np.all(np.isfinite(stress_pred), axis=1)
        if ok.any():
            ds = (stress_pred[ok] - stress_ref[ok]).ravel() * EV_A3_TO_GPA
            out["stress_rmse_GPa"] = float(np.sqrt(np.mean(ds**2)))
            out["stress_mae_GPa"] = float(np.mean(np.abs(ds)))
            out["n_stress_structures"] = int(ok.sum())
    return out


def format_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """A fixed-width text table: one row per named result (e.g. "hybrid test")."""
    cols = [
        ("n_structures", "N", "{:d}"),
        ("energy_mae_meV_atom", "E MAE meV/at", "{:.3f}"),
        ("energy_rmse_meV_atom", "E RMSE meV/at", "{:.3f}"),
        ("force_mae_eV_A", "F MAE eV/A", "{:.4f}"),
        ("force_rmse_eV_A", "F RMSE eV/A", "{:.4f}"),
        ("stress_mae_GPa", "S MAE GPa", "{:.3f}"),
        ("stress_rmse_GPa", "S RMSE GPa", "{:.3f}"),
    ]
    cols = [c for c in cols if any(c[0] in r for r in rows.values())]
    width = max([len(k) for k in rows] + [8])
    head = " " * width + " | " + " | ".join(f"{label:>13}" for _, label, _ in cols)
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        cells = [(fmt.format(r[key]) if key in r else "-") for key, _, fmt in cols]
        lines.append(f"{name:<{width}} | " + " | ".join(f"{c:>13}" for c in cells))
    return "\n".join(lines)
