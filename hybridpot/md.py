"""Quick molecular dynamics of a fitted model with either engine (``hybridpot md``).

* ``ase``: hybridpot's own :class:`~hybridpot.Calculator` with ASE's velocity Verlet (NVE) or
  Langevin (NVT) integrator.
* ``lammps``: the model is exported (:func:`hybridpot.export.lammps.export_lammps`) and run by the
  LAMMPS Python module with ``fix nve`` or ``fix nvt``.

Both start from Maxwell-Boltzmann velocities at ``temperature`` (zero total momentum), record the
potential, kinetic and total energy every ``log_every`` steps and report the total-energy drift
(slope of a linear fit, eV/atom/ps) and the wall time per atom-step.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units

from hybridpot.errors import HybridpotError


@dataclass
class MDResult:
    """Energies along the run and its cost.

    Attributes:
        time_ps: (n,) times of the records.
        potential, kinetic, total: (n,) energies, eV.
        n_atoms, steps, engine.
        seconds: wall time of the integration loop.
    """

    time_ps: np.ndarray
    potential: np.ndarray
    kinetic: np.ndarray
    total: np.ndarray
    n_atoms: int
    steps: int
    engine: str
    seconds: float

    @property
    def drift_eV_atom_ps(self) -> float:
        """Slope of the total energy per atom against time (least squares), eV/atom/ps."""
        if self.time_ps.size < 2:
            return float("nan")
        return float(np.polyfit(self.time_ps, self.total / self.n_atoms, 1)[0])

    @property
    def max_deviation_eV_atom(self) -> float:
        """max |E_total(t) - E_total(0)| per atom, eV."""
        return float(np.max(np.abs(self.total - self.total[0])) / self.n_atoms)

    @property
    def us_per_atom_step(self) -> float:
        return self.seconds / (self.steps * self.n_atoms) * 1e6

    def summary(self) -> str:
        return (f"{self.engine}: {self.steps} steps of {self.n_atoms} atoms, drift {self.drift_eV_atom_ps:.3e} eV/atom/ps, "
                f"max |dE| {self.max_deviation_eV_atom:.3e} eV/atom, {self.us_per_atom_step:.1f} us/atom-step")


def initial_velocities(atoms: Atoms, temperature: float, seed: int) -> np.ndarray:
    """Maxwell-Boltzmann velocities (ASE units) at ``temperature`` K with zero total momentum."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

    a = atoms.copy()
    MaxwellBoltzmannDistribution(a, temperature_K=temperature, rng=np.random.default_rng(seed))
    Stationary(a)
    return a.get_velocities()


def run_ase(potential, atoms: Atoms, steps: int, temperature: float, timestep_fs: float = 1.0,
            ensemble: str = "nve", log_every: int = 1, seed: int = 0) -> MDResult:
    """MD with hybridpot's calculator and ASE's integrators."""
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet

    from hybridpot.calculator import Calculator

    atoms = atoms.copy()
    atoms.calc = Calculator(potential)
    atoms.set_velocities(initial_velocities(atoms, temperature, seed))
    dt = timestep_fs * units.fs
    if ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=dt)
    elif ensemble == "nvt":
        dyn = Langevin(atoms, timestep=dt, temperature_K=temperature, friction=0.01 / units.fs, rng=np.random.default_rng(seed))
    else:
        raise HybridpotError(f"ensemble {ensemble!r}: expected 'nve' or 'nvt'")
    records = []

    def record() -> None:
        records.append((dyn.nsteps * timestep_fs / 1000.0, atoms.get_potential_energy(), atoms.get_kinetic_energy()))

    dyn.attach(record, interval=log_every)
    t0 = time.perf_counter()
    dyn.run(steps)
    seconds = time.perf_counter() - t0
    t, pe, ke = map(np.array, zip(*records))
    return MDResult(t, pe, ke, pe + ke, len(atoms), steps, "ase", seconds)


def run_lammps_md(potential, atoms: Atoms, steps: int, temperature: float, timestep_fs: float = 1.0,
                  ensemble: str = "nve", log_every: int = 1, seed: int = 0, workdir: str | Path | None = None) -> MDResult:
    """MD of the exported model in LAMMPS (same initial velocities as :func:`run_ase`)."""
    from hybridpot.export.lammps import export_lammps, pair_lines
    from hybridpot.lammps_run import lammps_frame, new_lammps

    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(workdir) if workdir is not None else Path(tmp)
        export_lammps(potential, deck, name="md", structure=atoms, steps=steps, temperature=temperature)
        cell, pos, rotation, boundary = lammps_frame(atoms)
        vel = initial_velocities(atoms, temperature, seed) @ rotation / (units.Angstrom / (1000 * units.fs))  # A/ps
        elements = list(potential.elements)
        lmp = new_lammps()
        try:
            lmp.command("units metal")
            lmp.command("atom_style atomic")
            lmp.command("atom_modify map array")
            lmp.command("boundary " + " ".join(boundary))
            (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(float, row) for row in cell)
            lmp.command(f"region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r} units box")
            lmp.command(f"create_box {len(elements)} box")
            n = len(atoms)
            types = [elements.index(s) + 1 for s in atoms.get_chemical_symbols()]
            lmp.create_atoms(n, list(range(1, n + 1)), types, pos.reshape(-1).tolist(), v=vel.reshape(-1).tolist())
            from ase.data import atomic_masses, atomic_numbers

            for t, s in enumerate(elements):
                lmp.command(f"mass {t + 1} {atomic_masses[atomic_numbers[s]]!r}")
            for line in pair_lines(potential, str(deck / "md"), elements, baseline_dir=deck):
                lmp.command(line)
            lmp.command(f"timestep {timestep_fs / 1000.0!r}")
            if ensemble == "nve":
                lmp.command("fix integrate all nve")
            elif ensemble == "nvt":
                lmp.command(f"fix integrate all nvt temp {temperature} {temperature} {100 * timestep_fs / 1000.0}")
            else:
                raise HybridpotError(f"ensemble {ensemble!r}: expected 'nve' or 'nvt'")
            log = deck / "energies.txt"
            lmp.command(f'fix record all print {log_every} "$(step) $(pe:%.15g) $(ke:%.15g)" file {log} screen no')
            lmp.command("thermo 0")
            t0 = time.perf_counter()
            lmp.command(f"run {steps}")
            seconds = time.perf_counter() - t0
        finally:
            lmp.close()
        data = np.loadtxt(log, comments="#", ndmin=2)
    return MDResult(data[:, 0] * timestep_fs / 1000.0, data[:, 1], data[:, 2], data[:, 1] + data[:, 2], len(atoms), steps, "lammps", seconds)
