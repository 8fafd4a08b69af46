"""The committed conformance data of julia/HybridPotKernels are what hybridpot computes today.

``scripts/julia_conformance.py`` regenerates them into a temporary folder; every file must match the
committed one: same files, same structure, integers and strings exactly, floats to 1e-12 relative
(``max |a - b| <= 1e-12 max |b|`` per array; per line of a model file). If hybridpot's numbers change
on purpose, regenerate (``python scripts/julia_conformance.py``) and commit the files with the change.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "julia" / "HybridPotKernels" / "test" / "data"
RTOL = 1e-12


def _generator():
    spec = importlib.util.spec_from_file_location("julia_conformance", REPO / "scripts" / "julia_conformance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_array(x: Any) -> bool:
    return isinstance(x, dict) and set(x) == {"shape", "data"}


def compare_json(new: Any, old: Any, where: str = "") -> list[str]:
    """Differences between two conformance records (empty list: they agree)."""
    if _is_array(new) and _is_array(old):
        if new["shape"] != old["shape"]:
            return [f"{where}: shape {new['shape']} != {old['shape']}"]
        a, b = np.asarray(new["data"]), np.asarray(old["data"])
        if a.dtype.kind in "iub" or b.dtype.kind in "iub":
            return [] if np.array_equal(a, b) else [f"{where}: integer data differ"]
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        worst = float(np.max(np.abs(a - b))) if a.size else 0.0
        return [] if worst <= RTOL * max(scale, np.finfo(float).tiny) else [f"{where}: max |difference| {worst:.3e} > {RTOL} x {scale:.3e}"]
    if type(new) is not type(old):
        return [f"{where}: {type(new).__name__} != {type(old).__name__}"]
    if isinstance(new, dict):
        if set(new) != set(old):
            return [f"{where}: keys {sorted(set(new) ^ set(old))} differ"]
        return [d for key in sorted(new) for d in compare_json(new[key], old[key], f"{where}/{key}")]
    if isinstance(new, list):
        if len(new) != len(old):
            return [f"{where}: length {len(new)} != {len(old)}"]
        return [d for k, (x, y) in enumerate(zip(new, old)) for d in compare_json(x, y, f"{where}[{k}]")]
    if isinstance(new, float):
        return [] if abs(new - old) <= RTOL * max(abs(old), np.finfo(float).tiny) else [f"{where}: {new!r} != {old!r}"]
    return [] if new == old else [f"{where}: {new!r} != {old!r}"]


def _number(token: str) -> int | float | None:
    for kind in (int, float):
        try:
            return kind(token)
        except ValueError:
            pass
    return None


def compare_model_files(new: str, old: str, name: str) -> list[str]:
    """Differences between two model files, line by line: words exactly, numbers as compare_json
    (floats to 1e-12 relative to the largest number of their table: the numbers from one keyword line
    up to the next, comments left out). The sha256 line is skipped: it hashes the body, which is
    compared here. Per table, not per line: a spline's rows of small high-order coefficients come
    from differences of numbers of the table's scale and carry its rounding (numpy/BLAS versions)."""
    new_lines, old_lines = new.splitlines(), old.splitlines()
    if len(new_lines) != len(old_lines):
        return [f"{name}: {len(new_lines)} lines != {len(old_lines)}"]
    parsed = [[_number(w) for w in line.split()] for line in old_lines]
    table_of, table_max, table = [], [0.0], 0
    for line, values in zip(old_lines, parsed):
        if values and values[0] is None and not line.startswith("#"):  # a keyword line starts a table
            table += 1
            table_max.append(0.0)
        table_of.append(table)
        if not line.startswith("#"):
            table_max[table] = max([table_max[table]] + [abs(v) for v in values if isinstance(v, float)])
    scales = [table_max[t] for t in table_of]
    out = []
    for k, (a, b) in enumerate(zip(new_lines, old_lines)):
        if a.startswith("sha256 ") and b.startswith("sha256 "):
            continue
        wa, wb = a.split(), b.split()
        if len(wa) != len(wb):
            out.append(f"{name}:{k + 1}: {len(wa)} words != {len(wb)}")
            continue
        for x, y, v in zip(wa, wb, parsed[k]):
            u = _number(x)
            if isinstance(v, float) and isinstance(u, (int, float)):
                if abs(u - v) > RTOL * max(scales[k], np.finfo(float).tiny):
                    out.append(f"{name}:{k + 1}: {x} != {y}")
            elif x != y:
                out.append(f"{name}:{k + 1}: {x!r} != {y!r}")
    return out


def compare_folders(new: Path, old: Path) -> list[str]:
    new_names = sorted(p.name for p in new.iterdir())
    old_names = sorted(p.name for p in old.iterdir() if not p.name.startswith("."))
    if new_names != old_names:
        return [f"file sets differ: new {new_names}, committed {old_names}"]
    out = []
    for name in new_names:
        a, b = (new / name).read_text(), (old / name).read_text()
        out += compare_json(json.loads(a), json.loads(b), name) if name.endswith(".json") else compare_model_files(a, b, name)
    return out


def test_committed_conformance_data_are_current(tmp_path: Path) -> None:
    _generator().write_all(tmp_path)
    differences = compare_folders(tmp_path, DATA)
    assert not differences, (
        "julia/HybridPotKernels/test/data differ from what hybridpot computes now; if intended, run "
        "`python scripts/julia_conformance.py` and commit the files:\n" + "\n".join(differences[:20])
    )


def test_the_comparison_fails_on_a_perturbation() -> None:
    """The check above can fail: a 1e-10 relative change of one number, a changed integer and a
    changed model-file number are all reported."""
    record = json.loads((DATA / "so3_lammps_1element.json").read_text())
    assert not compare_json(record, record)
    perturbed = copy.deepcopy(record)
    data = perturbed["structures"][0]["dE_dr"]["data"]
    largest = int(np.argmax(np.abs(data)))
    data[largest] *= 1 + 1e-10  # 100x the tolerance, relative to the array's scale
    assert compare_json(perturbed, record)
    data[largest] = record["structures"][0]["dE_dr"]["data"][largest] * (1 + 1e-13)  # inside it
    assert not compare_json(perturbed, record)
    perturbed = copy.deepcopy(record)
    perturbed["structures"][1]["centers"]["data"][0] += 1
    assert compare_json(perturbed, record)
    text = (DATA / "model_eam_linear_1element.hybridpot.lmp").read_text()
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("frho")) + 1
    first = lines[k].split()[0]
    lines[k] = lines[k].replace(first, repr(float(first) * (1 + 1e-9)), 1)
    assert compare_model_files("\n".join(lines), text, "model") != []


@pytest.mark.parametrize("path", sorted(DATA.glob("*.hybridpot.lmp")), ids=lambda p: p.name)
def test_model_files_carry_the_checksum_of_their_body(path: Path) -> None:
    """FORMAT.md: line 2 is the SHA-256 of every byte after the newline that ends it."""
    raw = path.read_bytes()
    first, second, body = raw.split(b"\n", 2)
    assert first == b"hybridpot-lammps 1"
    assert second == b"sha256 " + hashlib.sha256(body).hexdigest().encode()


def test_data_stay_small() -> None:
    total = sum(p.stat().st_size for p in DATA.iterdir())
    assert 0 < total < 600_000, f"conformance data are {total} bytes; keep them to a few hundred KB"
