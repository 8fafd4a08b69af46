"""Label the C/H/O molecules of the ReaxFF retraining example with GPAW: data/train.xyz, data/test.xyz, data/labels.json.

The example ships the files this script wrote; run it again only to relabel (or to change the set). It needs GPAW,
which hybridpot does not: install GPAW in an environment of its own (README.md here), then

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 /tmp/gpaw-venv/bin/python examples/reaxff_retrain/make_data.py [--jobs 2]

``--dry-run`` only builds and counts the structures (no GPAW needed).

The set: 14 closed-shell molecules of the G2 collection (ASE's ``ase.collections.g2`` geometries) and, per molecule,

* ``equilibrium``: the G2 geometry as it is (not relaxed with PBE: its forces are small, not zero);
* ``rattled``: RATTLED copies, every coordinate displaced by a normal deviate of RATTLE_SIGMA (Angstrom, seeded);
* ``strained``: the whole molecule scaled about its centre by each factor of STRAIN;
* ``stretch``: for each kind of bond in the molecule (C-H, C-C, C-O, O-H, O-O; the first such bond found), its
  length scaled by each factor of STRETCH by moving the smaller of the two fragments the bond joins along the bond,
  then every coordinate displaced by STRETCH_RATTLE (so that all atoms carry force information). Bond-stretch curves
  are what ReaxFF's bond parameters are fitted to.

Every structure is non-periodic, in an orthorhombic box with at least VACUUM Angstrom between any atom and a face;
all variants of a molecule share one box (its lengths multiples of 4 h), so their real-space grids are the same.

DFT (module constant GPAW_PARAMETERS): PBE, spin-paired, LCAO with GPAW's dzp basis, grid spacing h = 0.24 A, Gamma
point only (a molecule), Fermi-Dirac smearing of 0.01 eV (for robust convergence of the stretched bonds; the energy
label is the free energy, of which the forces are the derivative). One calculator labels all structures of a molecule
in turn (same box and grid; each SCF starts from the previous structure's density, which saves the set-up: the
results equal fresh calculators' within the SCF convergence; to 1e-12 eV at the tighter one below, on three CH4). SCF convergence: energy 1e-5 eV per
valence electron, density 1e-4 (GPAW's default density criterion): energies within 1e-9 eV and forces within 1e-3 eV/A
of a tighter convergence (1e-6, 1e-5), measured on three rattled CH4. Spin-paired PBE is a closed-shell description:
along a stretched bond it stays on the closed-shell surface rather than dissociating into radicals, which is why the
stretches stop at 1.45 times the bond length.

Split: seeded, per molecule: TEST_FRACTION of each molecule's structures (rounded) go to test.xyz, the rest to
train.xyz (a split by variant: every molecule is in both files).

Units: eV, Angstrom, eV/Angstrom. Energies are GPAW's, relative to its spin-paired reference atoms: they and ReaxFF's
energies have different zero points, which hybridpot's per-element reference energies (the fit's intercepts) absorb.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.collections import g2
from ase.data import covalent_radii
from ase.io import write

HERE = Path(__file__).resolve().parent
#: closed-shell C/H/O molecules of the G2 set (ASE names), at most 9 atoms
MOLECULES = ("CH4", "C2H6", "C2H4", "C2H2", "CO", "CO2", "H2O", "H2O2", "H2CO", "CH3OH", "HCOOH", "CH3CHO", "CH3CH2OH",
             "CH3OCH3")
RATTLED = 2
RATTLE_SIGMA = 0.05  # Angstrom
STRAIN = (0.96, 1.04)
STRETCH = (0.9, 1.15, 1.3, 1.45)
STRETCH_RATTLE = 0.02  # Angstrom
VACUUM = 6.0  # Angstrom, the least distance between an atom and a face of the box
H = 0.24  # Angstrom, GPAW's grid spacing
TEST_FRACTION = 0.25
SEED = 20
#: GPAW's parameters (besides gpts, set per molecule from H and its box)
GPAW_PARAMETERS: dict[str, Any] = {"mode": "lcao", "basis": "dzp", "xc": "PBE", "spinpol": False,
                                   "occupations": {"name": "fermi-dirac", "width": 0.01}, "symmetry": "off",
                                   "convergence": {"energy": 1e-5, "density": 1e-4}, "txt": None}


def bonds(atoms: Atoms, scale: float = 1.2) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, closer than ``scale`` times the sum of their covalent radii (Angstrom)."""
    r = covalent_radii[atoms.numbers]
    d = atoms.get_all_distances()
    return [(i, j) for i in range(len(atoms)) for j in range(i + 1, len(atoms)) if d[i, j] < scale * (r[i] + r[j])]


def fragment(n_atoms: int, edges: list[tuple[int, int]], cut: tuple[int, int], start: int) -> set[int]:
    """The atoms connected to ``start`` when the bond ``cut`` is removed."""
    adjacent: dict[int, set[int]] = {k: set() for k in range(n_atoms)}
    for i, j in edges:
        if (i, j) != cut:
            adjacent[i].add(j)
            adjacent[j].add(i)
    seen, todo = {start}, [start]
    while todo:
        for k in adjacent[todo.pop()] - seen:
            seen.add(k)
            todo.append(k)
    return seen


def bond_kinds(atoms: Atoms) -> dict[str, tuple[int, int]]:
    """"C-H" -> the first bond of that kind (elements in alphabetical order) whose removal splits the molecule."""
    edges = bonds(atoms)
    out: dict[str, tuple[int, int]] = {}
    for i, j in edges:
        kind = "-".join(sorted((atoms[i].symbol, atoms[j].symbol)))
        if kind not in out and j not in fragment(len(atoms), edges, (i, j), i):
            out[kind] = (i, j)
    return out


def stretched(atoms: Atoms, bond: tuple[int, int], factor: float) -> Atoms:
    """``atoms`` with the bond's length times ``factor``: the smaller fragment moves along the bond."""
    i, j = bond
    edges = bonds(atoms)
    side_j = fragment(len(atoms), edges, bond, j)
    side_i = set(range(len(atoms))) - side_j
    if len(side_j) > len(side_i):
        i, j, side_j = j, i, side_i
    out = atoms.copy()
    v = atoms.positions[j] - atoms.positions[i]
    out.positions[sorted(side_j)] += (factor - 1.0) * v
    return out


def structures(seed: int = SEED) -> list[Atoms]:
    """Every structure of the set (module docstring), unlabelled, with info molecule, config_type, variant."""
    rng = np.random.default_rng(seed)
    out: list[Atoms] = []
    for name in MOLECULES:
        mol = g2[name]
        mol.pbc = False
        variants: list[tuple[str, str, Atoms]] = [("equilibrium", "g2", mol.copy())]
        for k in range(RATTLED):
            a = mol.copy()
            a.positions += rng.normal(scale=RATTLE_SIGMA, size=a.positions.shape)
            variants.append(("rattled", f"rattle {RATTLE_SIGMA} #{k}", a))
        for f in STRAIN:
            a = mol.copy()
            centre = a.positions.mean(axis=0)
            a.positions = centre + f * (a.positions - centre)
            variants.append(("strained", f"scale {f}", a))
        for kind, bond in bond_kinds(mol).items():
            for f in STRETCH:
                a = stretched(mol, bond, f)
                a.positions += rng.normal(scale=STRETCH_RATTLE, size=a.positions.shape)
                variants.append(("stretch", f"{kind} bond {bond[0]}-{bond[1]} x {f}", a))
        extent = np.max([np.ptp(a.positions, axis=0) for _, _, a in variants], axis=0)
        cell = [round(4 * H * math.ceil((e + 2 * VACUUM) / (4 * H)), 6) for e in extent]
        for config_type, variant, a in variants:
            a.cell = cell
            a.center()
            a.info.update(molecule=name, config_type=config_type, variant=variant)
            out.append(a)
    return out


def label(frames: list[Atoms]) -> list[tuple[Atoms, float, float]]:
    """Each structure (all of one molecule, one box) with GPAW's free energy (eV) and forces (eV/A) as a
    SinglePointCalculator, the wall seconds and the CPU seconds of this process it took; one calculator for all."""
    from gpaw import GPAW

    gpts = [int(round(length / H)) for length in frames[0].cell.lengths()]
    calc = GPAW(**GPAW_PARAMETERS, gpts=gpts)
    out = []
    for atoms in frames:
        if not np.allclose(atoms.cell.array, frames[0].cell.array):
            raise ValueError(f"{atoms.info['molecule']}: structures of one molecule must share the box")
        t0, c0 = time.perf_counter(), time.process_time()
        work = atoms.copy()
        try:
            work.calc = calc
            energy = work.get_potential_energy(force_consistent=True)
        except Exception as exc:  # an SCF that did not converge from the previous density: once more from scratch
            print(f"{atoms.info['molecule']} {atoms.info['variant']}: {type(exc).__name__}: {exc}; again with a fresh calculator", flush=True)
            calc = GPAW(**GPAW_PARAMETERS, gpts=gpts)
            work.calc = calc
            energy = work.get_potential_energy(force_consistent=True)
        forces = work.get_forces()
        done = atoms.copy()
        done.calc = SinglePointCalculator(done, energy=float(energy), forces=np.array(forces))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"{done.info['molecule']:<9} {done.info['variant']:<28} E = {energy:12.6f} eV  max |F| = {np.abs(forces).max():7.3f} eV/A  "
              f"{seconds:5.1f} s ({cpu:5.1f} s CPU)", flush=True)
        out.append((done, seconds, cpu))
    return out


def split(frames: list[Atoms], fraction: float, seed: int) -> tuple[list[Atoms], list[Atoms]]:
    """(train, test): per molecule, round(fraction n) of its n structures, chosen with ``seed``, go to test."""
    rng = np.random.default_rng(seed)
    test_idx: set[int] = set()
    for name in MOLECULES:
        idx = [k for k, a in enumerate(frames) if a.info["molecule"] == name]
        test_idx |= set(rng.choice(idx, size=int(round(fraction * len(idx))), replace=False).tolist())
    return ([a for k, a in enumerate(frames) if k not in test_idx], [a for k, a in enumerate(frames) if k in test_idx])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "data"), help="folder for train.xyz, test.xyz, labels.json")
    parser.add_argument("--jobs", type=int, default=1, help="molecules labelled at once (one process each, single-threaded)")
    parser.add_argument("--limit", type=int, default=0, help="label only the first N structures (a timing check; writes nothing)")
    parser.add_argument("--dry-run", action="store_true", help="build and count the structures only")
    args = parser.parse_args(argv)
    frames = structures()
    counts: dict[str, int] = {}
    for a in frames:
        counts[a.info["config_type"]] = counts.get(a.info["config_type"], 0) + 1
    print(f"{len(frames)} structures of {len(MOLECULES)} molecules: {counts}; {sum(len(a) for a in frames)} atoms", flush=True)
    if args.dry_run:
        return 0
    import gpaw

    if os.environ.get("OMP_NUM_THREADS") != "1" or os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("note: set OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 (threads make GPAW slower on small machines)", flush=True)
    todo = frames[: args.limit] if args.limit else frames
    groups = [[a for a in todo if a.info["molecule"] == name] for name in MOLECULES]
    groups = sorted([g for g in groups if g], key=lambda g: -len(g) * float(np.prod(g[0].cell.lengths())))  # largest first
    t0 = time.perf_counter()
    done: dict[int, tuple[Atoms, float, float]] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for group, results in zip(groups, pool.map(label, groups)):
            for a, r in zip(group, results):
                done[id(a)] = r
    labelled = [done[id(a)][0] for a in todo]
    seconds = [done[id(a)][1] for a in todo]
    cpu = [done[id(a)][2] for a in todo]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t0
    print(f"labelled {len(todo)} structures in {wall:.0f} s wall ({args.jobs} job(s)); per structure {sum(seconds):.0f} s wall, "
          f"{sum(cpu):.0f} s CPU in all; worker processes {children.ru_utime + children.ru_stime:.0f} s CPU", flush=True)
    if args.limit:
        return 0
    train, test = split(labelled, TEST_FRACTION, SEED)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.xyz", train), ("test.xyz", test)):
        write(out / name, part, format="extxyz")
    meta = {"gpaw": gpaw.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "jobs": args.jobs, "gpaw_parameters": GPAW_PARAMETERS, "h": H, "vacuum": VACUUM,
            "molecules": list(MOLECULES), "rattled": RATTLED, "rattle_sigma": RATTLE_SIGMA, "strain": list(STRAIN),
            "stretch": list(STRETCH), "stretch_rattle": STRETCH_RATTLE, "test_fraction": TEST_FRACTION, "seed": SEED,
            "n_train": len(train), "n_test": len(test), "counts": counts, "wall_seconds": round(wall, 1),
            "structure_wall_seconds": round(sum(seconds), 1),
            "structure_cpu_seconds": round(sum(cpu), 1), "worker_cpu_seconds": round(children.ru_utime + children.ru_stime, 1),
            "load_average_after": os.getloadavg(), "date": time.strftime("%Y-%m-%d"),
            "command": " ".join([Path(sys.executable).name] + sys.argv)}
    (out / "labels.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {out}/train.xyz ({len(train)}), test.xyz ({len(test)}), labels.json", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
