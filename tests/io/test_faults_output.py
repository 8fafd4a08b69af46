"""Issue 18, output folders: written as a unit, locked against concurrent writers, never replacing
someone's files, no stale files after an overwrite, clear errors found before the fit."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hybridpot.cli import main
from hybridpot.errors import OutputError
from hybridpot.fitting import job
from hybridpot.fitting.config import read_config
from hybridpot.fitting.job import run_fit
from hybridpot.io import outdir as outdir_module
from hybridpot.io.outdir import MANIFEST, OutputDir, verify
from tests.corpus import small_config

REPO = Path(__file__).resolve().parents[2]


def fit(path, **kw):
    return run_fit(read_config(path), progress=False, log=lambda m: None, **kw)


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".out."))


def test_fit_output_is_complete_and_verified(tmp_path):
    res = fit(small_config(tmp_path, output={"plots": True}))
    doc = verify(tmp_path / "out")
    assert doc["kind"] == "fit"
    assert sorted(doc["files"]) == ["model.hybridpot.json", "parity_energy.png", "parity_forces.png", "parity_stress.png",
                                  "report.json"]  # the test structures have stresses
    assert res.model_path == tmp_path / "out" / "model.hybridpot.json" and res.model_path.is_file()
    assert hidden_leftovers(tmp_path) == []
    assert json.loads((tmp_path / "out" / "report.json").read_text())["data_checks"]["train"]["findings"] == []


def test_overwrite_leaves_no_stale_files(tmp_path):
    """overwrite = true replaces the whole folder: no plots of the earlier run, no model of another name."""
    fit(small_config(tmp_path, output={"plots": True, "name": "first"}))
    fit(small_config(tmp_path, output={"plots": False, "name": "second", "overwrite": True}))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST, "report.json", "second.hybridpot.json"]
    verify(tmp_path / "out")


def test_refuses_someones_files_even_with_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("my results")
    (out / "model.hybridpot.json").write_text("{}")
    with pytest.raises(OutputError, match="holds files hybridpot did not write \\(model.hybridpot.json, notes.txt\\)") as info:
        fit(small_config(tmp_path, output={"overwrite": True}))
    assert type(info.value) is OutputError
    assert (out / "notes.txt").read_text() == "my results" and (out / "model.hybridpot.json").read_text() == "{}"
    assert hidden_leftovers(tmp_path) == []


def test_demo_does_not_replace_a_fit(tmp_path, capsys):
    """``hybridpot demo --out DIR`` used to overwrite a real fit in DIR."""
    fit(small_config(tmp_path))
    before = (tmp_path / "out" / "model.hybridpot.json").read_bytes()
    assert main(["-q", "demo", "--out", str(tmp_path / "out")]) == 2
    assert "holds the output of 'hybridpot fit', which 'hybridpot demo' does not replace" in capsys.readouterr().err
    assert (tmp_path / "out" / "model.hybridpot.json").read_bytes() == before
    verify(tmp_path / "out")


@pytest.mark.slow
def test_demo_replaces_its_own_output(tmp_path):
    for _ in range(2):
        assert main(["-q", "demo", "--out", str(tmp_path / "demo")]) == 0
    assert verify(tmp_path / "demo")["kind"] == "demo"


def test_unwritable_output_folder_fails_before_reading_data(tmp_path, monkeypatch):
    """An output folder that cannot be created is found first, not after the fit."""
    (tmp_path / "blocker").write_text("a file where a folder should be")
    path = small_config(tmp_path, output={"dir": "blocker/out"})
    def no_read(*args, **kwargs):
        raise AssertionError("data were read before the output folder was checked")
    monkeypatch.setattr(job, "read_dataset", no_read)
    with pytest.raises(OutputError, match="cannot write the output folder .*blocker/out") as info:
        fit(path)
    assert type(info.value) is OutputError


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_parent_fails_before_reading_data(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    path = small_config(tmp_path, output={"dir": "ro/out"})
    monkeypatch.setattr(job, "read_dataset", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read before the check")))
    with pytest.raises(OutputError, match="cannot write the output folder"):
        fit(path)


def test_a_locked_folder_is_refused_at_once(tmp_path, monkeypatch):
    """A second job on the same folder fails before any work, naming the first one's pid."""
    path = small_config(tmp_path)
    monkeypatch.setattr(job, "read_dataset", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read while locked")))
    with OutputDir(tmp_path / "out", "fit"):
        with pytest.raises(OutputError, match=f"is being written by another hybridpot job \\(pid {os.getpid()}") as info:
            fit(path)
        assert type(info.value) is OutputError
    assert not (tmp_path / "out").exists() and hidden_leftovers(tmp_path) == []


def test_failed_fit_leaves_nothing(tmp_path, monkeypatch):
    """An error in the middle of the fit: no output folder, no staging folder, no lock, no parent folders created for it."""
    path = small_config(tmp_path, output={"dir": "runs/deep/out"})
    def broken(*args, **kwargs):
        raise RuntimeError("solver blew up")
    monkeypatch.setattr(job, "fit_residual", broken)
    with pytest.raises(RuntimeError, match="solver blew up"):
        fit(path)
    assert not (tmp_path / "runs").exists()


def test_write_failure_keeps_the_previous_result(tmp_path, monkeypatch):
    """A full disk while writing: OutputError, the earlier complete result untouched."""
    fit(small_config(tmp_path))
    before = verify(tmp_path / "out")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(job, "save", full)  # the model file writer the fit calls
    with pytest.raises(OutputError, match="writing the outputs to .* failed \\(OSError: \\[Errno 28\\] No space left on device\\)") as info:
        fit(small_config(tmp_path, output={"overwrite": True}))
    assert type(info.value) is OutputError
    assert verify(tmp_path / "out") == before
    assert hidden_leftovers(tmp_path) == []


def test_two_concurrent_fits_into_one_empty_folder(tmp_path):
    """Two processes fit into the same empty folder at the same time: exactly one succeeds; the other
    reports the lock (or, if it came second, the finished fit); the folder is one complete result."""
    (tmp_path / "out").mkdir()
    procs = []
    for k in range(2):
        folder = tmp_path / f"cfg{k}"
        folder.mkdir()
        path = small_config(folder, output={"dir": str(tmp_path / "out")}, fit={"seed": k, "energy_weight": 10.0 + k})
        procs.append(subprocess.Popen([sys.executable, "-m", "hybridpot.cli", "-q", "fit", str(path)], cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    assert "is being written by another hybridpot job" in loser or "already holds a fit" in loser, loser
    verify(tmp_path / "out")
    winner = next(k for k, (rc, _) in enumerate(results) if rc == 0)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    model = json.loads((tmp_path / "out" / "model.hybridpot.json").read_text())
    assert report["config"]["fit"]["energy_weight"] == 10.0 + winner == model["metadata"]["config"]["fit"]["energy_weight"]
    assert hidden_leftovers(tmp_path) == []


def test_recover_finishes_an_interrupted_two_rename_move(tmp_path):
    """Without renameat2 the move is two renames; a job killed between them leaves no target but a
    complete staged folder, which the next job on that folder puts in place before anything else."""
    fit(small_config(tmp_path))
    staged = tmp_path / ".out.staging-dead"
    os.rename(tmp_path / "out", staged)  # what the kill leaves: the target moved away... (here the complete result)
    assert not (tmp_path / "out").exists()
    with OutputDir(tmp_path / "out", "fit", overwrite=True):
        assert (tmp_path / "out" / MANIFEST).is_file()  # recovered before the checks
    verify(tmp_path / "out")


def test_exchange_fallback_is_used_where_renameat2_is_missing(tmp_path, monkeypatch):
    fit(small_config(tmp_path))
    monkeypatch.setattr(outdir_module, "_exchange", lambda a, b: False)
    fit(small_config(tmp_path, output={"overwrite": True, "name": "again"}))
    assert sorted(verify(tmp_path / "out")["files"]) == ["again.hybridpot.json", "report.json"]
    assert hidden_leftovers(tmp_path) == []


def test_active_learning_does_not_replace_a_fit(tmp_path):
    from hybridpot.active import parse_active_config, run_active
    from hybridpot.dataset import bundled

    fit(small_config(tmp_path))
    before = verify(tmp_path / "out")
    raw = {"active": {"initial": str(bundled("Cu_train.xyz")), "iterations": 0},
           "oracle": {"potential": str(bundled("Cu_mishin1.eam.alloy"))},
           "baseline": {"file": str(bundled("Cu_mishin1.eam.alloy"))}, "descriptor": {"nmax": 2, "lmax": 2},
           "output": {"dir": str(tmp_path / "out"), "overwrite": True}}
    with pytest.raises(OutputError, match="holds the output of 'hybridpot fit', which 'hybridpot active' does not replace"):
        run_active(parse_active_config(raw, tmp_path, "active test"), log=lambda m: None)
    assert verify(tmp_path / "out") == before and hidden_leftovers(tmp_path) == []


@pytest.mark.skipif(not os.path.ismount("/proc"), reason="no /proc mount here")
def test_mount_point_is_refused():
    with pytest.raises(OutputError, match="/proc is a mount point, which cannot be replaced as a whole"):
        with OutputDir("/proc", "fit"):
            pass
