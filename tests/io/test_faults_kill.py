"""Issue 18, interrupted writes: a fit is SIGKILLed at chosen points of its life (a child process
whose functions are wrapped to kill it before or after they run) over a folder that holds a
complete earlier fit. After every kill the folder holds either that earlier result or the new
complete one (checked file by file against the manifest), never a mix; the next fit on the folder
runs normally (no stale lock) and leaves no hidden staging folder behind.

The one exception is the two-rename fallback for systems without ``renameat2``: killed between
its renames, the folder is missing (both complete versions sit beside it) until the next job on it
puts the new one in place; the last case shows exactly that.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hybridpot.fitting.config import read_config
from hybridpot.fitting.job import run_fit
from hybridpot.io.outdir import verify
from tests.corpus import small_config

pytestmark = pytest.mark.slow  # a killed subprocess per test

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
point, config = sys.argv[2], sys.argv[3]
from hybridpot.fitting import job
from hybridpot.fitting.config import read_config
from hybridpot.io import outdir

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def wrap(module, name, when):
    original = getattr(module, name)
    def wrapped(*args, **kwargs):
        if when == "before":
            die()
        result = original(*args, **kwargs)
        die()
    setattr(module, name, wrapped)

renames = []
def first_rename_then_die(src, dst, _rename=os.rename):
    _rename(src, dst)
    renames.append(src)
    if len(renames) == 1:
        die()

if point == "reading data":
    wrap(job, "read_dataset", "before")
elif point == "fitting":
    wrap(job, "fit_residual", "before")
elif point == "model written":
    wrap(job, "save", "after")
elif point == "report written":
    wrap(job, "parity_plots", "before")
elif point == "before the move":
    wrap(outdir, "_exchange", "before")
elif point == "after the move":
    wrap(outdir, "_exchange", "after")
elif point == "between two renames":
    outdir._exchange = lambda a, b: False
    os.rename = first_rename_then_die
job.run_fit(read_config(config), progress=False, log=lambda m: None)
print("finished")
"""

POINTS = ["reading data", "fitting", "model written", "report written", "before the move", "after the move"]


def fit(path):
    return run_fit(read_config(path), progress=False, log=lambda m: None)


def killed_fit(path: Path, point: str) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(REPO), point, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"{point}: rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture()
def previous(tmp_path):
    """A folder holding a complete fit (energy weight 100), and the configuration of a new one (energy weight 30, overwrite)."""
    fit(small_config(tmp_path, output={"plots": True}))
    new = tmp_path / "new"
    new.mkdir()
    return tmp_path / "out", verify(tmp_path / "out"), small_config(new, output={"plots": True, "overwrite": True,
                                                                                  "dir": str(tmp_path / "out")},
                                                                     fit={"energy_weight": 30.0})


def energy_weight(folder: Path) -> float:
    report = json.loads((folder / "report.json").read_text())
    model = json.loads((folder / "model.hybridpot.json").read_text())
    assert report["config"]["fit"] == model["metadata"]["config"]["fit"], "report and model from different fits"
    return report["config"]["fit"]["energy_weight"]


@pytest.mark.parametrize("point", POINTS)
def test_killed_fit_leaves_old_or_new_complete_result(previous, point):
    out, before, new_config = previous
    killed_fit(new_config, point)
    doc = verify(out)  # complete: every file listed, none extra, none changed
    if point == "after the move":
        assert doc != before and energy_weight(out) == 30.0
    else:
        assert doc == before and energy_weight(out) == 100.0
    fit(new_config)  # the next job: no stale lock, stale staging removed
    verify(out)
    assert energy_weight(out) == 30.0
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".out.")) == []


def test_killed_between_the_two_renames_of_the_fallback(previous):
    out, before, new_config = previous
    killed_fit(new_config, "between two renames")
    assert not out.exists()  # the fallback's window: the earlier result and the new one both lie beside it
    hidden = sorted(p.name.split("-")[0] for p in out.parent.iterdir() if p.name.startswith(".out."))
    assert hidden == [".out.lock", ".out.old", ".out.staging"], hidden  # the lock file stays, its flock died with the process
    from hybridpot.io.outdir import OutputDir

    with OutputDir(out, "fit", overwrite=True):  # any next job on the folder finishes the move first
        pass
    assert energy_weight(out) == 30.0 and verify(out) != before
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".out.")) == []
