"""Speed of the descriptors' pair form (B and dB/dr per pair, what every design pass of a fit computes).

For a 500-atom fcc Cu cell (a = 3.615 A, rattled by 0.05 A, r_c = 5 A, alpha = 2 A^-2; 54 neighbours per atom) and
each case (invariants kind, nmax, lmax), the best of ``--repeat`` calls of ``SO3.compute(atoms, gradients=True)`` after
a warm-up, one torch thread, each case in its own subprocess (peak memory per case). ``--label`` names the code that
ran (rows of other labels in the JSON are kept), so that two versions of the library can be compared on one machine
in one session: run it once from this checkout and once with ``PYTHONPATH`` at another (e.g. a ``git worktree`` of an
earlier commit), with different labels.

    python benchmarks/pair_form.py [--label current] [--repeat 3] [--cases bispectrum:6:4 power:6:4]

Prints a table and writes ``benchmarks/results/pair_form.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "pair_form.json"
RCUT, ALPHA, LATTICE, CELLS, RATTLE = 5.0, 2.0, 3.615, 5, 0.05
CASES = ["power:4:4", "power:6:4", "bispectrum:4:4", "bispectrum:6:4"]


def worker(kind: str, nmax: int, lmax: int, repeat: int) -> dict:
    import hybridpot
    import numpy as np
    import torch
    from ase.build import bulk

    from hybridpot.descriptors import SO3

    torch.set_num_threads(1)
    atoms = bulk("Cu", "fcc", a=LATTICE, cubic=True).repeat((CELLS,) * 3)
    atoms.rattle(RATTLE, seed=7)
    d = SO3(rcut=RCUT, nmax=nmax, lmax=lmax, alpha=ALPHA, kind=kind)
    _, grads = d.compute(atoms, gradients=True)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        d.compute(atoms, gradients=True)
        best = min(best, time.perf_counter() - t0)
    peak = next(int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return {"kind": kind, "nmax": nmax, "lmax": lmax, "n_features": d.n_features, "n_atoms": len(atoms),
            "n_pairs": int(grads.values.shape[0]), "seconds": best, "us_per_atom": 1e6 * best / len(atoms),
            "us_per_pair": 1e6 * best / grads.values.shape[0], "peak_MiB": peak, "library": str(Path(hybridpot.__file__).parent),
            "max_abs_dB": float(np.abs(grads.values).max())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", default="current")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=CASES, help="kind:nmax:lmax")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, nmax, lmax = args.worker.split(":")
        print(json.dumps(worker(kind, int(nmax), int(lmax), args.repeat)))
        return
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": {}}
    doc["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1}
    rows = {}
    for case in args.cases:
        out = subprocess.run([sys.executable, __file__, "--worker", case, "--repeat", str(args.repeat)], capture_output=True, text=True,
                             check=True, env=os.environ)
        rows[case] = json.loads(out.stdout.strip().splitlines()[-1]) | {"load_average": os.getloadavg()[0], "date": time.strftime("%Y-%m-%d")}
        r = rows[case]
        print(f"{args.label:<12} {case:<16} K {r['n_features']:>5}  {r['us_per_atom']:8.0f} us/atom  {r['us_per_pair']:6.1f} us/pair  "
              f"peak {r['peak_MiB']:.0f} MiB", flush=True)
    doc["rows"].setdefault(args.label, {}).update(rows)  # the label's other cases (earlier runs) are kept
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2))
    labels = list(doc["rows"])
    if len(labels) > 1:
        print(f"\nseconds of {labels[0]!r} / seconds of:")
        for label in labels[1:]:
            for case, r in doc["rows"][label].items():
                if case in doc["rows"][labels[0]]:
                    print(f"  {label} {case}: {doc['rows'][labels[0]][case]['seconds'] / r['seconds']:.2f}x")


if __name__ == "__main__":
    main()
