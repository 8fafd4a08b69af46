"""What the benchmark scripts share: the machine record of a run, writing its JSON, and timing a fit or a program in a
fresh process."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def machine_info() -> dict[str, Any]:
    """CPU count, torch threads, load average, Python, torch and platform of this run."""
    import torch

    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to ``path`` in one step (a temporary file renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float))
    os.replace(tmp, path)
    print(f"wrote {path}")


#: runs argv[2:] and writes the peak RSS of that process and its children (KiB) to argv[1]
_LAUNCHER = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(code)")


def wait_child(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[str, float, float]:
    """Run a process to its end; (stdout, wall seconds, peak RSS of that process and its children, MiB).

    Raises:
        RuntimeError: it exited with a non-zero status (the end of its stderr and stdout in the message).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, tempfile.NamedTemporaryFile("r") as rss:
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, "-S", "-c", _LAUNCHER, rss.name, *args], stdout=out, stderr=err, cwd=cwd, env=env)
        wall = time.perf_counter() - t0
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
        peak = int(rss.read() or 0) / 1024
    if code != 0:
        raise RuntimeError(f"{args[0]} failed ({code}):\n{stderr[-3000:]}{stdout[-3000:]}")
    return stdout, wall, peak


#: a fit in a fresh process: argv[1] the repository, argv[2] the configuration as JSON; prints its record as JSON
_FIT_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from hybridpot.fitting.config import parse_config
from hybridpot.fitting.job import run_fit
result = run_fit(parse_config(json.loads(sys.argv[2]), Path.cwd(), "benchmark"), progress=False, log=lambda m: None)
rep = result.report
print(json.dumps({"process_seconds": time.perf_counter() - t0, "timings": rep["timings"], "total_seconds": rep["total_seconds"],
                  "peak_memory_MiB": rep["peak_memory_MiB"], "test": rep["test"], "baseline_only_test": rep["baseline_only"]["test"],
                  "solver": rep["fit"]["solver"], "model": str(result.model_path)}))
"""


def fit_in_fresh_process(raw: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """``hybridpot fit`` of the configuration ``raw`` (a parsed TOML document, absolute paths) in a fresh Python process.

    Returns:
        the fit's record: "timings" (report.json's stages), "total_seconds", "peak_memory_MiB" (as the fit measured
        it), "test", "baseline_only_test", "solver", "model" (the model file), "process_seconds" (in the process,
        imports included) and, measured from outside, "end_to_end_seconds" (process start to exit) and
        "process_peak_memory_MiB" (the process's peak RSS).
    """
    stdout, wall, peak = wait_child([sys.executable, "-c", _FIT_CHILD, str(REPO), json.dumps(raw)], env=env)
    rec = json.loads(stdout.strip().splitlines()[-1])
    rec["end_to_end_seconds"], rec["process_peak_memory_MiB"] = wall, peak
    return rec
