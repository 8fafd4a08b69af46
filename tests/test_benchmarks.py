"""The benchmark scripts' own input checks (the benchmarks themselves run outside the suite: benchmarks/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_rough_baseline_refuses_an_unknown_variant(shared, tmp_path):
    """A mistyped --refit-variants name is refused with the variants there are, before any fit and without writing the
    JSON (it used to run nothing and rewrite the summary)."""
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "rough_baseline.py"), "--shared", str(shared), "--parts", "refit",
                          "--refit-variants", "refitted hybrd", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "--refit-variants ['refitted hybrd']: not variants of Si-tersoff" in run.stderr
    assert "'refitted hybrid'" in run.stderr and "'pure ML'" in run.stderr
    assert not any(tmp_path.iterdir())
