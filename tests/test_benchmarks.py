"""The benchmark scripts' own input checks (the benchmarks themselves run outside the suite: benchmarks/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


def test_mlearn_refits_name_parameters_of_their_baselines(shared, tmp_path):
    """The learning curves' refitted hybrids (benchmarks/mlearn.py REFITS) name parameters that their baselines have,
    with bounds around the published values, and only a hybrid of an element with a refit may ask for one."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import mlearn
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from hybridpot.empirical import load

    for element, keys in mlearn.REFITS.items():
        config, raw = mlearn.make_config(shared, element, "linear", True, tmp_path, refit=True)
        assert config["baseline"]["refit"] == keys["refit"] and raw["baseline"]["refit_starts"] == keys["refit_starts"]
        values = load(raw["baseline"]["file"]).parameter_values(keys["refit"])
        for name, value in zip(keys["refit"], values):
            lower, upper = keys["refit_bounds"][name]
            assert lower < value < upper, (element, name, value)
    with pytest.raises(ValueError, match="no refitted baseline"):
        mlearn.make_config(shared, "Cu", "linear", True, tmp_path, refit=True)
    with pytest.raises(ValueError, match="a hybrid only"):
        mlearn.make_config(shared, "Si", "linear", False, tmp_path, refit=True)
