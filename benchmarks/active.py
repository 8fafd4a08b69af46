"""Active learning against random selection from the same candidate pool (Cu, reference-potential oracle).

Setting (DFT replaced by a different potential so that every label is cheap and exact):

* oracle ("DFT"): Cu_zhou.eam.alloy; baseline: Cu_mishin1.eam.alloy; residual: linear SO(3)
  (nmax = lmax = 4, rcut 5 A), fitted with energy and force weights 1 (evidence regularisation).
* candidate pool, 32-atom cells (31 with a vacancy) generated with the Mishin EAM, in the
  proportions an MD-driven pool typically has: 120 bulk snapshots at 300 K, 30 random strains
  (+-6 %), 20 vacancy cells at 600 K, 15 compressed / expanded cells (lattice x0.93-1.05),
  15 fcc(100) slabs at 600 K, 20 hot snapshots (1200-1800 K). MD snapshots are 100 fs apart
  (Langevin, 2 fs steps, after 400 fs of equilibration).
* test set: 10 fresh structures of each of the six kinds (60), labelled by the oracle.
* start: 2 bulk 300 K snapshots; then 10 iterations of 4 selections (42 oracle calls).
* compared: selection by gamma (MaxVol, greedy, no near-duplicates), by predictive energy std
  (with the same duplicate filter), and random selection (8 seeds), all through
  ``hybridpot.active.run_active`` with ``[candidates] source = "pool"``.

Reported: test energy / force RMSE against oracle calls (``active.png``; random: mean over the
seeds), and the number of oracle calls each method needs to reach the test errors random
selection ends with (mean over seeds). Selection by gamma stops by itself once no pool
structure has gamma > 1.1 against the grown active set ("converged").

    python benchmarks/active.py [--out benchmarks/results] [--seeds 5]
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
from ase import Atoms, units
from ase.build import bulk, fcc100
from ase.io import write

from hybridpot.active import label, learning_curve_plot, parse_active_config, run_active
from hybridpot.calculator import Calculator
from hybridpot.dataset import bundled
from hybridpot.empirical import load as load_empirical

REPO = Path(__file__).resolve().parents[1]
A0 = 3.615


def _md_snapshots(start: Atoms, potential, temperature: float, n: int, rng: np.random.Generator, every: int = 50,
                  equilibrate: int = 200) -> list[Atoms]:
    from ase.md.langevin import Langevin

    from hybridpot.md import initial_velocities

    atoms = start.copy()
    atoms.calc = Calculator(potential)
    atoms.set_velocities(initial_velocities(atoms, temperature, int(rng.integers(1 << 31))))
    dyn = Langevin(atoms, timestep=2.0 * units.fs, temperature_K=temperature, friction=0.02 / units.fs, fixcm=False,
                   rng=np.random.default_rng(int(rng.integers(1 << 31))))
    dyn.run(equilibrate)
    out = []
    for _ in range(n):
        dyn.run(every)
        out.append(Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc))
    return out


def generate(potential, counts: dict[str, int], seed: int) -> list[Atoms]:
    """Structures of each kind (``info['kind']``), generated with ``potential`` (an EAM)."""
    rng = np.random.default_rng(seed)
    cell = bulk("Cu", "fcc", a=A0, cubic=True).repeat(2)
    out: list[Atoms] = []

    def tag(frames, kind):
        for f in frames:
            f.info["kind"] = kind
        out.extend(frames)

    if counts.get("bulk 300 K"):
        tag(_md_snapshots(cell, potential, 300.0, counts["bulk 300 K"], rng), "bulk 300 K")
    if counts.get("strained"):
        frames = []
        for _ in range(counts["strained"]):
            a = cell.copy()
            eps = rng.uniform(-0.06, 0.06, (3, 3))
            a.set_cell(a.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
            a.positions += rng.normal(scale=0.03, size=a.positions.shape)
            frames.append(a)
        tag(frames, "strained")
    if counts.get("vacancy 600 K"):
        vacancy = cell.copy()
        del vacancy[0]
        tag(_md_snapshots(vacancy, potential, 600.0, counts["vacancy 600 K"], rng), "vacancy 600 K")
    if counts.get("compressed/expanded"):
        frames = []
        for _ in range(counts["compressed/expanded"]):
            a = bulk("Cu", "fcc", a=A0 * rng.uniform(0.93, 1.05), cubic=True).repeat(2)
            a.positions += rng.normal(scale=0.05, size=a.positions.shape)
            frames.append(a)
        tag(frames, "compressed/expanded")
    if counts.get("slab 600 K"):
        slab = fcc100("Cu", (2, 2, 8), a=A0, vacuum=4.0, periodic=True)
        tag(_md_snapshots(slab, potential, 600.0, counts["slab 600 K"], rng), "slab 600 K")
    if counts.get("hot 1200-1800 K"):
        frames = []
        n = counts["hot 1200-1800 K"]
        for k, T in enumerate(np.linspace(1200.0, 1800.0, 4)):
            frames += _md_snapshots(cell, potential, float(T), n // 4 + (k < n % 4), rng)
        tag(frames, "hot 1200-1800 K")
    return out


POOL = {"bulk 300 K": 120, "strained": 30, "vacancy 600 K": 20, "compressed/expanded": 15, "slab 600 K": 15, "hot 1200-1800 K": 20}
TEST = {k: 10 for k in POOL}


def active_config(tmp: Path, criterion: str, seed: int, iterations: int, select: int) -> dict:
    return {
        "active": {"initial": "initial.xyz", "test": "test.xyz", "iterations": iterations, "select": select,
                   "criterion": criterion, "seed": seed},
        "candidates": {"source": "pool", "pool": "pool.xyz"},
        "oracle": {"potential": str(tmp / "Cu_zhou.eam.alloy")},
        "baseline": {"file": str(bundled("Cu_mishin1.eam.alloy"))},
        "descriptor": {"rcut": 5.0, "nmax": 4, "lmax": 4},
        "model": {"type": "linear"},
        "output": {"dir": str(tmp / f"run_{criterion}_{seed}"), "plots": False},
    }


def _tested(log: list[dict]) -> list[dict]:
    """The iterations with test errors (a converged last entry has none)."""
    return [e for e in log if "test" in e]


def calls_to_reach(log: list[dict], key: str, target: float) -> float:
    """Oracle calls of the first iteration whose test error ``key`` is <= ``target`` (nan: never)."""
    for e in log:
        if "test" in e and e["test"][key] <= target:
            return float(e["oracle_calls"])
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("HYBRIDPOT_SHARED", REPO.parent / "shared")))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--seeds", type=int, default=8, help="random-selection seeds")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--select", type=int, default=4)
    args = parser.parse_args()
    zhou_file = args.shared / "data" / "potentials" / "Cu_zhou.eam.alloy"
    if not zhou_file.is_file():
        raise SystemExit(f"{zhou_file} not found (pass --shared or set HYBRIDPOT_SHARED)")
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    mishin = load_empirical(bundled("Cu_mishin1.eam.alloy"))
    oracle = Calculator(load_empirical(zhou_file))
    pool = generate(mishin, POOL, seed=1)
    test, _ = label(generate(mishin, TEST, seed=2), oracle)
    initial = generate(mishin, {"bulk 300 K": 2}, seed=3)
    print(f"pool {len(pool)} structures, test {len(test)}, generated in {time.perf_counter() - t_start:.0f} s")
    runs: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "Cu_zhou.eam.alloy").write_text(zhou_file.read_text())
        write(tmp / "pool.xyz", pool)
        write(tmp / "test.xyz", test)
        write(tmp / "initial.xyz", initial)
        plan = [("gamma", 0), ("std", 0)] + [("random", s) for s in range(args.seeds)]
        for criterion, seed in plan:
            t0 = time.perf_counter()
            cfg = parse_active_config(active_config(tmp, criterion, seed, args.iterations, args.select), tmp, f"benchmark {criterion}")
            name = criterion if criterion != "random" else f"random (seed {seed})"
            result = run_active(cfg, write=False, log=lambda s, name=name: print(f"  {name}: {s}"))
            runs[name] = result.log
            print(f"{name}: {time.perf_counter() - t0:.0f} s")
    random_names = [k for k in runs if k.startswith("random")]
    summary: dict = {}
    for key, unit in (("energy_rmse_meV_atom", "meV/atom"), ("force_rmse_eV_A", "eV/A")):
        target = float(np.mean([_tested(runs[k])[-1]["test"][key] for k in random_names]))
        summary[key] = {"random_final_mean": target, "calls_to_reach_random_final": {
            name: calls_to_reach(log, key, target) for name, log in runs.items()}}
    # curves: mean and spread of the random runs at each iteration
    calls = [e["oracle_calls"] for e in _tested(runs[random_names[0]])]
    table = ["| oracle calls | " + " | ".join(["gamma E", "std E", "random E (mean +- sd)", "gamma F", "std F", "random F (mean +- sd)"]) + " |",
             "|---|---|---|---|---|---|---|"]
    random_mean: list[dict] = []
    for i, c in enumerate(calls):
        def at(name, key):
            entries = _tested(runs[name])
            return entries[i]["test"][key] if i < len(entries) else float("nan")

        rE = [at(k, "energy_rmse_meV_atom") for k in random_names]
        rF = [at(k, "force_rmse_eV_A") for k in random_names]
        cell = lambda v, fmt: "converged" if not np.isfinite(v) else format(v, fmt)  # noqa: E731
        table.append(f"| {c} | {cell(at('gamma', 'energy_rmse_meV_atom'), '.3f')} | {cell(at('std', 'energy_rmse_meV_atom'), '.3f')} | "
                     f"{np.mean(rE):.3f} +- {np.std(rE):.3f} | {cell(at('gamma', 'force_rmse_eV_A'), '.4f')} | "
                     f"{cell(at('std', 'force_rmse_eV_A'), '.4f')} | {np.mean(rF):.4f} +- {np.std(rF):.4f} |")
        random_mean.append({"iteration": i, "oracle_calls": c, "test": {"energy_rmse_meV_atom": float(np.mean(rE)),
                                                                        "force_rmse_eV_A": float(np.mean(rF))}})
    reach = ["| test error random selection ends with | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for key, d in summary.items():
        reach.append(f"| {key} <= {d['random_final_mean']:.4g} | " + " | ".join(
            f"{v:.0f}" if np.isfinite(v) else "not reached" for v in d["calls_to_reach_random_final"].values()) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    plot_runs = {"gamma": runs["gamma"], "std": runs["std"], f"random (mean of {len(random_names)} seeds)": random_mean}
    learning_curve_plot(plot_runs, args.out / "active.png", title="Cu: active learning vs random selection (oracle: Zhou EAM)")
    doc = {"setting": {"pool": POOL, "test": TEST, "initial": 2, "iterations": args.iterations, "select": args.select,
                       "oracle": "Cu_zhou.eam.alloy", "baseline": "Cu_mishin1.eam.alloy", "model": "linear SO(3) nmax=lmax=4, rcut 5"},
           "summary": summary, "runs": runs, "seconds": time.perf_counter() - t_start,
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1}}
    from hybridpot.fitting.job import _jsonable
    from hybridpot.io.atomic import write_text_atomic

    write_text_atomic(args.out / "active.json", json.dumps(_jsonable(doc), indent=1, default=float))
    print("\n".join(table))
    print()
    print("\n".join(reach))
    print(f"\nwrote {args.out / 'active.json'} and active.png ({doc['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
