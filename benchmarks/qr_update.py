"""Speed of the streamed QR's row fold (LAPACK dtpqrt) by column block size: what chose ``tpqrt_block``.

Every linear, quadratic and kernel fit folds its weighted design rows into a (C, C) triangular factor
(:class:`hybridpot.fitting.solver.QRAccumulator`), C = columns + targets: 2 n C^2 flops for n rows. LAPACK's
triangular-pentagonal QR takes a column block size; this script times one fold of ``rows`` random rows into a random
triangular factor for each block size, the best of ``--repeat`` passes over six blocks, for factor widths from 53 to
2200 (53: linear 4/4 power spectrum with two targets; 253: a kernel model of 250 sparse points; 1329: the quadratic 4/4
peer fit) and reports Gflop/s, the block size ``tpqrt_block`` chooses and its speed-up over the old fixed 64.

    python benchmarks/qr_update.py [--repeat 3]

Prints a table and writes ``benchmarks/results/qr_update.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg.lapack

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, write_json  # noqa: E402

from hybridpot.fitting.solver import tpqrt_block  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "qr_update.json"
#: (C columns, rows per fold): the fits' factor widths, with the row blocks their design passes fold in
CASES = [(53, 1600), (130, 1600), (253, 1600), (500, 1000), (800, 1000), (1329, 600), (2200, 600)]
BLOCKS = (4, 8, 12, 16, 24, 32, 64)


def fold_rate(C: int, rows: int, nb: int, repeat: int, rng: np.random.Generator) -> float:
    """Best Gflop/s (2 rows C^2 per fold) of folding six blocks of ``rows`` rows with block size ``nb``."""
    R0 = np.asfortranarray(np.triu(rng.standard_normal((C, C))) + 10 * np.eye(C))
    blocks = [np.asfortranarray(rng.standard_normal((rows, C))) for _ in range(6)]
    best = float("inf")
    for _ in range(repeat):
        R, seconds = R0.copy(order="F"), 0.0
        for b in blocks:
            b = b.copy(order="F")
            t0 = time.perf_counter()
            R, _, _, info = scipy.linalg.lapack.dtpqrt(0, nb, R, b, overwrite_a=True, overwrite_b=True)
            seconds += time.perf_counter() - t0
            if info != 0:
                raise RuntimeError(f"dtpqrt info {info}")
        best = min(best, seconds)
    return 2.0 * len(blocks) * rows * C * C / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows_out = []
    for C, rows in CASES:
        rates = {nb: fold_rate(C, rows, min(nb, C), args.repeat, rng) for nb in BLOCKS}
        chosen = tpqrt_block(C)
        rates.setdefault(chosen, fold_rate(C, rows, chosen, args.repeat, rng))
        rows_out.append({"columns": C, "rows_per_fold": rows, "gflops_by_block": {str(k): round(v, 2) for k, v in sorted(rates.items())},
                         "chosen_block": chosen, "speedup_over_64": round(rates[chosen] / rates[64], 2)})
    header = f"{'C':>6} {'rows':>6} " + " ".join(f"{'nb ' + str(nb):>8}" for nb in BLOCKS) + f" {'chosen':>7} {'x vs 64':>8}"
    print("dtpqrt row fold, Gflop/s (best of", args.repeat, "passes)")
    print(header)
    for r in rows_out:
        print(f"{r['columns']:>6} {r['rows_per_fold']:>6} " + " ".join(f"{r['gflops_by_block'][str(nb)]:>8.1f}" for nb in BLOCKS)
              + f" {r['chosen_block']:>7} {r['speedup_over_64']:>8.2f}")
    write_json(RESULTS, {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "repeat": args.repeat, "cases": rows_out})


if __name__ == "__main__":
    main()
