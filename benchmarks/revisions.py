"""Two revisions of hybridpot on the same benchmarks, in one session: did a change (a refactor) cost speed?

    python benchmarks/revisions.py --base REV [--head REV] [--repeat 3]

Each revision is checked out into a temporary git worktree and run with ``PYTHONPATH`` pointing at it (same Python,
same packages), alternating base and head ``--repeat`` times so that drifts of the machine hit both alike:

* ``demo``: ``hybridpot -q demo`` end to end (process start to exit) and its fit stages (report.json);
* ``peer``: the Cu peer fit of ``benchmarks/mlearn.py --parts peer`` (262 structures), end to end and peak memory;
* ``descriptors``: ``benchmarks/descriptors.py``'s SO(3) worker, nmax = lmax = 4, 1 thread, eager: values and
  forces, us per atom.

Prints the medians and the head/base ratios and writes ``benchmarks/results/revisions.json`` (``--out`` to write
elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "revisions.json"


def run(cmd: list[str], tree: Path, cwd: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {tree}:\n{done.stderr[-3000:]}")
    return done.stdout


def demo(tree: Path, tmp: Path) -> dict[str, float]:
    out = tmp / "demo"
    t0 = time.perf_counter()
    run([sys.executable, "-m", "hybridpot.cli", "-q", "demo", "--out", str(out)], tree, tmp)
    wall = time.perf_counter() - t0
    report = json.loads((out / "report.json").read_text())
    return {"end_to_end_s": wall, "fit_stages_s": report["total_seconds"], "test_energy_mae_meV": report["test"]["energy_mae_meV_atom"]
            if "energy_mae_meV_atom" in report["test"] else float("nan")}


def peer(tree: Path, tmp: Path, shared: Path) -> dict[str, float]:
    out = tmp / "peer"
    run([sys.executable, str(tree / "benchmarks" / "mlearn.py"), "--parts", "peer", "--elements", "Cu", "--peer-repeat", "1",
         "--shared", str(shared), "--out", str(out)], tree, tmp)
    doc = json.loads((out / "mlearn_peer.json").read_text())["hybridpot"]
    return {"end_to_end_s": doc["best_end_to_end_seconds"], "peak_memory_MiB": doc["peak_memory_MiB"],
            "test_energy_mae_meV": doc["test"].get("energy_mae_meV_atom", float("nan"))}


def descriptors(tree: Path, tmp: Path) -> dict[str, float]:
    spec = {"kind": "hybridpot", "n": 4, "threads": 1, "compiled": False, "repeat": 3}
    res = json.loads(run([sys.executable, str(tree / "benchmarks" / "descriptors.py"), "--worker", json.dumps(spec)], tree,
                         tmp).strip().splitlines()[-1])
    return {"values_us_per_atom": res["values_us_per_atom"], "forces_us_per_atom": res["forces_us_per_atom"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the earlier revision")
    parser.add_argument("--head", default="HEAD", help="the later revision (default HEAD)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--benchmarks", default="demo,peer,descriptors", help="which of demo,peer,descriptors")
    parser.add_argument("--out", default=str(RESULTS), help="the JSON file to write")
    parser.add_argument("--shared", default=str(REPO.parent / "shared"), help="folder holding data/mlearn and data/potentials")
    args = parser.parse_args()
    revs = {"base": args.base, "head": args.head}
    commits = {k: subprocess.run(["git", "rev-parse", v], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
               for k, v in revs.items()}
    chosen = args.benchmarks.split(",")
    unknown = sorted(set(chosen) - {"demo", "peer", "descriptors"})
    if unknown:
        parser.error(f"unknown benchmarks {unknown}")
    samples: dict[str, dict[str, list[dict[str, float]]]] = {k: {b: [] for b in chosen} for k in revs}
    with tempfile.TemporaryDirectory(prefix="hp-revisions-") as tmp_name:
        tmp = Path(tmp_name)
        trees = {}
        for k, commit in commits.items():
            trees[k] = tmp / k
            subprocess.run(["git", "worktree", "add", "--detach", str(trees[k]), commit], cwd=REPO, capture_output=True, check=True)
        try:
            for r in range(args.repeat):
                for k in revs:
                    work = tmp / f"work-{k}-{r}"
                    work.mkdir()
                    runners = {"demo": lambda: demo(trees[k], work), "peer": lambda: peer(trees[k], work, Path(args.shared)),
                               "descriptors": lambda: descriptors(trees[k], work)}
                    for bench in chosen:
                        samples[k][bench].append(runners[bench]())
                    print(f"[{k} {r + 1}/{args.repeat}] " + ", ".join(f"{b} {samples[k][b][-1]}" for b in chosen), flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
    medians = {k: {bench: {q: statistics.median(s[q] for s in runs) for q in runs[0]} for bench, runs in b.items()}
               for k, b in samples.items()}
    ratios = {bench: {q: medians["head"][bench][q] / medians["base"][bench][q] for q in medians["base"][bench]}
              for bench in medians["base"]}
    doc = {"revisions": {k: {"rev": revs[k], "commit": commits[k]} for k in revs}, "repeat": args.repeat,
           "load_average": os.getloadavg(), "samples": samples, "medians": medians, "head_over_base": ratios}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    print(f"\n{'benchmark':<12} {'quantity':<22} {'base':>10} {'head':>10} {'head/base':>10}")
    for bench, qs in ratios.items():
        for q, ratio in qs.items():
            print(f"{bench:<12} {q:<22} {medians['base'][bench][q]:>10.3f} {medians['head'][bench][q]:>10.3f} {ratio:>10.3f}")


if __name__ == "__main__":
    main()
