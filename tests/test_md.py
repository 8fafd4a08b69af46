"""``hybridpot md``: the LAMMPS and ASE engines run the same dynamics; CLI for md and export.

Both engines start from the same velocities and integrate with velocity Verlet, so over a short
NVE run their potential energies must follow each other closely. They cannot agree to round-off:
LAMMPS's metal-unit constants (mvv2e = 1.0364269e-4, ftm2v = 1 / mvv2e) have 8 digits and differ
from CODATA (ASE) by 5.5e-8 relative, so accelerations and kinetic energies differ at that level.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.io import write

from hybridpot.cli import main
from hybridpot.errors import HybridpotError
from hybridpot.io.modelfile import save
from hybridpot.md import initial_velocities, run_ase, run_lammps_md
from hybridpot.potential import to_numpy
from tests.builders import CU, hybrid, structure
from tests.lammps_reference import UNIT_CONSTANT_REL

pytestmark = pytest.mark.lammps

@pytest.fixture(scope="module")
def cu_hybrid(lammps_potentials):
    """A Cu hybrid (Mishin EAM + quadratic so3 residual) and a 32-atom fcc cell (slightly strained)."""
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.02, seed=4)
    return hybrid(CU, "quadratic", "eam", lammps_potentials, [structure(CU, 3), structure(CU, 4)], seed=1), atoms


def test_initial_velocities(cu_hybrid):
    _, atoms = cu_hybrid
    v = initial_velocities(atoms, 600.0, seed=3)
    np.testing.assert_array_equal(v, initial_velocities(atoms, 600.0, seed=3))
    masses = atoms.get_masses()[:, None]
    assert np.abs((masses * v).sum(0)).max() < 1e-12
    from ase import units

    kinetic = 0.5 * (masses * v * v).sum()
    assert kinetic == pytest.approx(0.5 * (3 * len(atoms) - 3) * units.kB * 600.0, rel=1e-12)


def test_nve_engines_agree(cu_hybrid, lammps_plugin):
    """Same start, same integrator: energies agree along 30 steps; step 0 is hybridpot's energy."""
    potential, atoms = cu_hybrid
    kw = dict(steps=30, temperature=600.0, timestep_fs=1.0, ensemble="nve", log_every=1, seed=2)
    lmp, ase_ = run_lammps_md(potential, atoms, **kw), run_ase(potential, atoms, **kw)
    for r in (lmp, ase_):
        assert r.time_ps.shape == (31,) and r.time_ps[0] == 0.0 and r.time_ps[-1] == pytest.approx(0.030)
        assert r.n_atoms == 32 and r.steps == 30 and np.isfinite(r.total).all()
    e0 = float(to_numpy(potential.compute(atoms, forces=False, stress=False))["energy"][0])
    assert abs(lmp.potential[0] - e0) <= 1e-8 * abs(e0)
    assert abs(ase_.potential[0] - e0) <= 1e-12 * abs(e0)
    np.testing.assert_allclose(lmp.kinetic, ase_.kinetic, rtol=UNIT_CONSTANT_REL)
    # allowed: the LAMMPS parity contract (1e-8 of the energy) plus the unit-constant effect on the trajectory
    change = np.abs(ase_.potential - ase_.potential[0]).max()
    assert change > 0.01
    print(f"NVE 30 steps: max |PE_lammps - PE_ase| {np.abs(lmp.potential - ase_.potential).max():.2e} eV, PE change {change:.3f} eV")
    assert np.abs(lmp.potential - ase_.potential).max() <= 1e-8 * abs(e0) + UNIT_CONSTANT_REL * change
    # velocity Verlet conserves the total energy far better than it moves energy between PE and KE
    for r in (lmp, ase_):
        assert np.abs(r.total - r.total[0]).max() < 1e-2 * change, r.summary()


@pytest.mark.parametrize("engine", [run_lammps_md, run_ase], ids=["lammps", "ase"])
def test_energy_error_is_second_order_in_timestep(engine, cu_hybrid, request):
    if engine is run_lammps_md:
        request.getfixturevalue("lammps_plugin")
    """NVE energy conservation (a CI-sized check; the 2 ps run is benchmarks/md_nve.py): over the same 40 fs, halving
    the timestep divides max |E_total(t) - E_total(0)| by 4, the velocity-Verlet error for forces that are the exact
    gradient of the energy. Forces inconsistent with the energy (or a discontinuity at a cutoff) would add an error
    that does not shrink with the timestep."""
    potential, atoms = cu_hybrid
    errors = []
    for dt in (1.0, 0.5):
        r = engine(potential, atoms, int(round(40 / dt)), 600.0, timestep_fs=dt, seed=2)
        errors.append(np.abs(r.total - r.total[0]).max())
    print(f"{engine.__name__}: max |dE_total| {errors[0]:.3e} eV (1 fs), {errors[1]:.3e} eV (0.5 fs), ratio {errors[0] / errors[1]:.4f}")
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.05)


def test_nvt_engines_agree(cu_hybrid, lammps_plugin):
    """Nose-Hoover chain NVT in both engines (same chain, damping and degrees of freedom): the same trajectory."""
    potential, atoms = cu_hybrid
    kw = dict(steps=20, temperature=300.0, ensemble="nvt", log_every=5, seed=1)
    lmp, ase_ = run_lammps_md(potential, atoms, **kw), run_ase(potential, atoms, **kw)
    assert lmp.time_ps.shape == ase_.time_ps.shape == (5,)
    change = np.abs(ase_.potential - ase_.potential[0]).max()
    assert change > 0.01
    print(f"NVT 20 steps: max |PE_lammps - PE_ase| {np.abs(lmp.potential - ase_.potential).max():.2e} eV, PE change {change:.3f} eV")
    assert np.abs(lmp.potential - ase_.potential).max() <= 1e-8 * abs(lmp.potential[0]) + UNIT_CONSTANT_REL * change
    np.testing.assert_allclose(lmp.kinetic, ase_.kinetic, rtol=UNIT_CONSTANT_REL)


def test_md_errors(cu_hybrid):
    potential, atoms = cu_hybrid
    with pytest.raises(HybridpotError, match="ensemble 'npt'"):
        run_lammps_md(potential, atoms, 5, 300.0, ensemble="npt")
    with pytest.raises(HybridpotError, match="steps must be a positive integer"):
        run_ase(potential, atoms, 0, 300.0)
    with pytest.raises(HybridpotError, match="NVT needs a positive temperature"):
        run_ase(potential, atoms, 5, 0.0, ensemble="nvt")


def test_cli_md_and_export(cu_hybrid, tmp_path, capsys, lammps_plugin):
    potential, atoms = cu_hybrid
    model = save(potential, tmp_path / "cu.hybridpot.json")
    cell = tmp_path / "cell.extxyz"
    write(cell, atoms)
    for engine in ("lammps", "ase"):
        out = tmp_path / f"{engine}.json"
        rc = main(["md", str(model), str(cell), "--engine", engine, "--steps", "4", "--temperature", "400", "--seed", "3",
                   "--json", str(out)])
        assert rc == 0
        text = capsys.readouterr().out
        assert f"{engine}: nve 4 steps x 1 fs of 32 atoms" in text
        record = json.loads(out.read_text())
        assert record["engine"] == engine and len(record["total_eV"]) == 5
    a, b = (json.loads((tmp_path / f"{e}.json").read_text()) for e in ("lammps", "ase"))
    np.testing.assert_allclose(a["kinetic_eV"][0], b["kinetic_eV"][0], rtol=UNIT_CONSTANT_REL)

    deck = tmp_path / "deck"
    assert main(["export", str(model), "--lammps", str(deck), "--name", "cu"]) == 0
    assert "wrote the LAMMPS deck (plugin format)" in capsys.readouterr().out
    names = {p.name for p in deck.iterdir()}
    assert {"cu.hybridpot.lmp", "Cu_mishin1.eam.alloy", "pair.cu.lmp", "pair.cu.overlay.lmp", "cu.hybridpot.json", "cu.data",
            "in.cu.lmp", "README.md", "manifest.json"} <= names
    mliap = tmp_path / "mliap"
    assert main(["export", str(model), "--lammps", str(mliap), "--name", "cu", "--format", "mliap"]) == 0
    assert "wrote the LAMMPS deck (mliap format)" in capsys.readouterr().out
    names = {p.name for p in mliap.iterdir()}
    assert {"cu.mliap.descriptor", "cu.mliap.model", "Cu_mishin1.eam.alloy", "pair.cu.lmp", "cu.data", "in.cu.lmp",
            "README.md", "manifest.json"} <= names


def test_cli_refuses_unexportable_mliap(tmp_path, capsys, lammps_plugin):
    from hybridpot.descriptors import SO3
    from hybridpot.models.polynomial import PolynomialModel
    from hybridpot.potential import HybridPotential

    d = SO3(4.0, 3, 3, basis="bessel", elements=["Cu"])
    model = save(HybridPotential(None, d, PolynomialModel(["Cu"], d.n_features)), tmp_path / "b.hybridpot.json")
    cell = tmp_path / "cell.extxyz"
    write(cell, bulk("Cu", "fcc", a=3.615, cubic=True).repeat(2))
    assert main(["export", str(model), "--lammps", str(tmp_path / "deck"), "--format", "mliap"]) == 2
    assert "cannot export to LAMMPS: only basis='lammps'" in capsys.readouterr().err
    assert not (tmp_path / "deck").exists()
    # the plugin (the default format, and the md engine) runs the Bessel basis
    assert main(["md", str(model), str(cell), "--engine", "lammps", "--steps", "2"]) == 0
    assert "lammps: nve 2 steps" in capsys.readouterr().out


def test_temperature_pressure_and_trajectory(cu_hybrid, tmp_path, lammps_plugin):
    """Both engines record T (3N - 3 degrees of freedom) and P (virial + kinetic); at step 0 they agree to the
    unit-constant level; the trajectory holds a frame every `trajectory_every` steps, the first one the start."""
    from ase.io import read

    potential, atoms = cu_hybrid
    runs = {}
    for engine in (run_lammps_md, run_ase):
        trajectory = tmp_path / f"{engine.__name__}.extxyz"
        runs[engine.__name__] = r = engine(potential, atoms, 20, 600.0, log_every=5, seed=2, trajectory=trajectory, trajectory_every=10)
        assert r.temperature[0] == pytest.approx(600.0, rel=1e-7) and r.stopped is None and r.steps_done == 20
        frames = read(trajectory, index=":")
        assert len(frames) == 3  # steps 0, 10, 20
        d = frames[0].positions - atoms.positions
        d -= np.round(d @ np.linalg.inv(atoms.cell.array)) @ atoms.cell.array  # the LAMMPS engine wraps atoms into its box
        assert np.abs(d - d.mean(0)).max() < 1e-7  # extxyz keeps 8 decimals
    a, b = runs["run_lammps_md"], runs["run_ase"]
    print(f"P at step 0: lammps {a.pressure[0]:.6f}, ase {b.pressure[0]:.6f} GPa")
    assert a.pressure[0] == pytest.approx(b.pressure[0], rel=1e-6)
    np.testing.assert_allclose(a.temperature, b.temperature, rtol=1e-6)


def test_nvt_conserved_quantity(cu_hybrid, lammps_plugin):
    """For NVT the drift is that of the thermostat's conserved quantity, which moves far less than the total energy."""
    potential, atoms = cu_hybrid
    for engine in (run_lammps_md, run_ase):
        r = engine(potential, atoms, 40, 300.0, ensemble="nvt", log_every=4, seed=1)
        change_total = np.ptp(r.total)
        change_conserved = np.ptp(r.conserved)
        print(f"{engine.__name__}: NVT total moves {change_total:.2e} eV, conserved {change_conserved:.2e} eV")
        assert change_conserved < 0.05 * change_total, (change_conserved, change_total)
        assert "total + thermostat energy" in r.summary()


def test_md_stops_cleanly(cu_hybrid, tmp_path, lammps_plugin):
    """Two atoms 0.45 A apart: each engine stops with the step and the two atoms, and the CLI writes what it has."""
    potential, atoms = cu_hybrid
    close = atoms.copy()
    close.positions[1] = close.positions[0] + [0.45, 0.0, 0.0]
    r = run_ase(potential, close, 10, 300.0, seed=1)
    assert r.stopped.startswith("step 0 (0.0000 ps): atoms 0 and 1 are 0.4500 A apart"), r.stopped
    r = run_lammps_md(potential, close, 10, 300.0, seed=1)
    assert r.stopped.startswith("step 0 (0.0000 ps): atoms 0 and 1 are 0.4500 A apart"), r.stopped
    model = save(potential, tmp_path / "cu.hybridpot.json")
    cell = tmp_path / "close.extxyz"
    write(cell, close)
    out = tmp_path / "run.json"
    assert main(["-q", "md", str(model), str(cell), "--steps", "5", "--json", str(out), "--trajectory", str(tmp_path / "t.extxyz")]) == 1
    record = json.loads(out.read_text())
    assert "atoms 0 and 1 are 0.4500 A apart" in record["stopped"] and record["steps_done"] == 0


def test_md_reads_exported_data_files(cu_hybrid, tmp_path, capsys):
    """`hybridpot md` starts from the LAMMPS data file that `hybridpot export` writes."""
    potential, atoms = cu_hybrid
    model = save(potential, tmp_path / "cu.hybridpot.json")
    assert main(["export", str(model), "--lammps", str(tmp_path / "deck"), "--name", "cu"]) == 0
    assert main(["-q", "md", str(model), str(tmp_path / "deck" / "cu.data"), "--steps", "2"]) == 0
    assert "ase: nve 2 steps x 1 fs of 108 atoms" in capsys.readouterr().out
