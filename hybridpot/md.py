"""Quick molecular dynamics of a fitted model with either engine (``hybridpot md``).

* ``ase``: hybridpot's own :class:`~hybridpot.Calculator` with ASE's integrators.
* ``lammps``: the model is exported (:func:`hybridpot.export.lammps.export_lammps`) and run by the
  LAMMPS Python module with the exported pair lines.

Both engines start from the same velocities (:func:`initial_velocities`) and use the same masses
(``atoms.get_masses()``). NVE is velocity Verlet in both (ASE ``VelocityVerlet``, LAMMPS ``fix
nve``); NVT is a Nose-Hoover chain of 3 thermostats with damping time 100 steps in both (ASE
``NoseHooverChainNVT``, LAMMPS ``fix nvt``); both thermostats count 3N degrees of freedom (ASE's
convention; LAMMPS's default 3N - 3 for zero total momentum is set aside so that the two engines
run the same dynamics, a thermostat temperature higher by a factor 3N / (3N - 3) than the
momentum-free one, 1 % at 108 atoms). The potential, kinetic and total energy are recorded
every ``log_every`` steps, step 0 included; :class:`MDResult` gives the total-energy drift (slope
of a least-squares line, eV/atom/ps) and the wall time per atom-step of the integration loop.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units

from hybridpot.errors import HybridpotError

ENSEMBLES = ("nve", "nvt")
#: Nose-Hoover damping time in timesteps (LAMMPS's recommended 100 steps) and chain length (LAMMPS default)
NVT_DAMPING_STEPS = 100
NVT_CHAIN = 3
#: ASE velocity unit (Angstrom per ASE time unit) in Angstrom/ps
ASE_VELOCITY_IN_A_PER_PS = 1000.0 * units.fs


@dataclass
class MDResult:
    """Energies along a run and its cost.

    Attributes:
        time_ps: (n,) times of the records, ps (0 first).
        potential, kinetic, total: (n,) energies, eV.
        n_atoms: atoms in the cell.
        steps: MD steps run.
        engine: "ase" or "lammps".
        seconds: wall time of the integration loop (force evaluations included), s.
        timestep_fs: the timestep, fs.
        ensemble: "nve" or "nvt".
        cpu_seconds: CPU time of this process over the loop (all its threads), s; less sensitive
            than ``seconds`` to other processes sharing the cores.
    """

    time_ps: np.ndarray
    potential: np.ndarray
    kinetic: np.ndarray
    total: np.ndarray
    n_atoms: int
    steps: int
    engine: str
    seconds: float
    timestep_fs: float = 1.0
    ensemble: str = "nve"
    cpu_seconds: float = float("nan")

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
        """Wall time per atom and step, microseconds."""
        return self.seconds / (max(self.steps, 1) * self.n_atoms) * 1e6

    @property
    def cpu_us_per_atom_step(self) -> float:
        """CPU time per atom and step, microseconds."""
        return self.cpu_seconds / (max(self.steps, 1) * self.n_atoms) * 1e6

    def summary(self) -> str:
        return (f"{self.engine}: {self.ensemble} {self.steps} steps x {self.timestep_fs:g} fs of {self.n_atoms} atoms, "
                f"drift {self.drift_eV_atom_ps:.3e} eV/atom/ps, max |dE| {self.max_deviation_eV_atom:.3e} eV/atom, "
                f"{self.us_per_atom_step:.1f} us/atom-step")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON): settings, energies along the run and the derived numbers."""
        return {
            "engine": self.engine, "ensemble": self.ensemble, "n_atoms": self.n_atoms, "steps": self.steps,
            "timestep_fs": self.timestep_fs, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
            "drift_eV_atom_ps": self.drift_eV_atom_ps, "max_deviation_eV_atom": self.max_deviation_eV_atom,
            "us_per_atom_step": self.us_per_atom_step, "cpu_us_per_atom_step": self.cpu_us_per_atom_step,
            "time_ps": self.time_ps.tolist(), "potential_eV": self.potential.tolist(),
            "kinetic_eV": self.kinetic.tolist(), "total_eV": self.total.tolist(),
        }


def initial_velocities(atoms: Atoms, temperature: float, seed: int) -> np.ndarray:
    """(N, 3) Maxwell-Boltzmann velocities (ASE units) at ``temperature`` K, zero total momentum.

    Scaled so that the kinetic temperature with 3N - 3 degrees of freedom (what LAMMPS's
    ``compute temp`` reports once the momentum is zero) is exactly ``temperature``. The same
    ``seed`` gives the same velocities for both engines.
    """
    if len(atoms) < 2:
        raise HybridpotError("MD needs at least 2 atoms")
    masses = atoms.get_masses()[:, None]  # amu
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(len(atoms), 3)) * np.sqrt(units.kB * temperature / masses)
    v -= (masses * v).sum(0) / masses.sum()
    kinetic = 0.5 * float((masses * v * v).sum())
    if kinetic > 0:
        v *= np.sqrt(0.5 * (3 * len(atoms) - 3) * units.kB * temperature / kinetic)
    return v


def _check(atoms: Atoms, steps: int, temperature: float, timestep_fs: float, ensemble: str, log_every: int) -> None:
    if ensemble not in ENSEMBLES:
        raise HybridpotError(f"ensemble {ensemble!r}: expected one of {', '.join(ENSEMBLES)}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise HybridpotError(f"steps must be a positive integer, got {steps!r}")
    if not (isinstance(log_every, (int, np.integer)) and log_every >= 1):
        raise HybridpotError(f"log_every must be a positive integer, got {log_every!r}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise HybridpotError(f"temperature must be >= 0 K, got {temperature!r}")
    if ensemble == "nvt" and temperature <= 0:
        raise HybridpotError("NVT needs a positive temperature")
    if not (np.isfinite(timestep_fs) and timestep_fs > 0):
        raise HybridpotError(f"timestep must be positive (fs), got {timestep_fs!r}")
    if len(atoms) < 2:
        raise HybridpotError("MD needs at least 2 atoms")


def run_ase(potential, atoms: Atoms, steps: int, temperature: float, timestep_fs: float = 1.0,
            ensemble: str = "nve", log_every: int = 1, seed: int = 0) -> MDResult:
    """MD with hybridpot's calculator and ASE's integrators (see the module docstring).

    Args:
        potential: any hybridpot Potential.
        atoms: the starting structure (not modified).
        steps: number of steps; temperature: initial (and NVT) temperature, K.
        timestep_fs: fs; ensemble: "nve" or "nvt"; log_every: record every this many steps;
        seed: of the initial velocities.
    """
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet

    from hybridpot.calculator import Calculator

    _check(atoms, steps, temperature, timestep_fs, ensemble, log_every)
    atoms = atoms.copy()
    atoms.calc = Calculator(potential)
    atoms.set_velocities(initial_velocities(atoms, temperature, seed))
    dt = timestep_fs * units.fs
    if ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=dt)
    else:
        dyn = NoseHooverChainNVT(atoms, timestep=dt, temperature_K=temperature, tdamp=NVT_DAMPING_STEPS * dt, tchain=NVT_CHAIN)
    records = []

    def record() -> None:
        records.append((dyn.nsteps * timestep_fs / 1000.0, atoms.get_potential_energy(), atoms.get_kinetic_energy()))

    dyn.attach(record, interval=log_every)
    t0, c0 = time.perf_counter(), time.process_time()
    dyn.run(steps)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    t, pe, ke = map(np.array, zip(*records))
    return MDResult(t, pe, ke, pe + ke, len(atoms), steps, "ase", seconds, float(timestep_fs), ensemble, cpu)


def run_lammps_md(potential, atoms: Atoms, steps: int, temperature: float, timestep_fs: float = 1.0,
                  ensemble: str = "nve", log_every: int = 1, seed: int = 0, workdir: str | Path | None = None) -> MDResult:
    """MD of the exported model in LAMMPS (same start as :func:`run_ase`; see the module docstring).

    Args:
        potential: a HybridPotential LAMMPS can run (:func:`~hybridpot.export.lammps.check_exportable`).
        workdir: where the deck and the energy log are written (default: a temporary directory,
            removed afterwards).
        Others as :func:`run_ase`.
    """
    from hybridpot.export.lammps import check_exportable, deck_pair_lines, export_lammps
    from hybridpot.lammps_run import LammpsUnavailable, create_system, import_lammps, new_lammps, set_masses

    _check(atoms, steps, temperature, timestep_fs, ensemble, log_every)
    check_exportable(potential)
    try:
        import_lammps()
    except LammpsUnavailable as exc:
        raise HybridpotError(f"the lammps engine needs the LAMMPS Python module: {exc}") from exc
    elements = list(potential.elements)
    velocities = initial_velocities(atoms, temperature, seed) * ASE_VELOCITY_IN_A_PER_PS
    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(workdir).resolve() if workdir is not None else Path(tmp)
        structure = atoms if all(atoms.pbc) and abs(atoms.cell.volume) > 1e-10 else None
        export_lammps(potential, deck, name="md", structure=structure)  # checks exportability; writes the files
        log = deck / "md_energies.txt"
        lmp = new_lammps()
        try:
            create_system(lmp, atoms, elements, velocities=velocities)
            for line in deck_pair_lines(deck, "md", elements):
                lmp.command(line)
            set_masses(lmp, atoms, elements)  # eam/alloy pair_coeff sets the setfl file's masses; use the structure's, as ASE does
            dt_ps = timestep_fs / 1000.0
            lmp.command(f"timestep {dt_ps!r}")
            if ensemble == "nve":
                lmp.command("fix integrate all nve")
            else:
                lmp.command(f"fix integrate all nvt temp {temperature!r} {temperature!r} {NVT_DAMPING_STEPS * dt_ps!r} tchain {NVT_CHAIN}")
                lmp.command("compute_modify integrate_temp extra/dof 0")  # 3N degrees of freedom, as ASE's thermostat
            lmp.command("thermo_style custom step pe ke")
            lmp.command("thermo 0")
            lmp.command(f'fix record all print {log_every} "$(step) $(pe:%.17g) $(ke:%.17g)" file {log} screen no')
            t0, c0 = time.perf_counter(), time.process_time()
            lmp.command(f"run {steps}")
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            lmp.close()
        data = np.loadtxt(log, comments="#", ndmin=2)
    step = data[:, 0]
    return MDResult(step * timestep_fs / 1000.0, data[:, 1], data[:, 2], data[:, 1] + data[:, 2], len(atoms), steps, "lammps",
                    seconds, float(timestep_fs), ensemble, cpu)


def lammps_snapshots(potential, atoms: Atoms, temperature: float, steps: int, every: int, timestep_fs: float,
                     gamma_break: float, seed: int, deck: str | Path | None = None) -> list[tuple[Atoms, float]]:
    """Langevin MD of ``potential`` in LAMMPS (``pair_style hpot``), a snapshot every ``every`` steps.

    The run stops after the first snapshot whose largest extrapolation grade (``compute hpot/gamma``,
    the same gamma as :func:`hybridpot.uq.extrapolation_grades`) exceeds ``gamma_break``. The
    thermostat matches the ASE engine of :func:`hybridpot.active.md_candidates`: ``fix langevin``
    with damping 50 fs (ASE friction 0.02 / fs) on ``fix nve``.

    Args:
        potential: a fitted HybridPotential with a MaxVol active set.
        atoms: the starting structure; temperature: K; steps, every: MD steps in all and between
            snapshots; timestep_fs: fs; gamma_break: stop past this grade; seed: velocities and noise.
        deck: an exported plugin deck of ``potential`` (``export_lammps(potential, deck, name="md")``) to
            reuse; default: export one into a temporary directory.

    Returns:
        [(snapshot, its largest gamma)], each snapshot in LAMMPS's frame (the cell rotated to a
        lower-triangular matrix; a rigid rotation of the physical structure).
    """
    from hybridpot.export.lammps import deck_pair_lines, export_lammps
    from hybridpot.lammps_run import create_system, new_lammps, set_masses

    if not (isinstance(every, (int, np.integer)) and every >= 1 and steps >= every):
        raise HybridpotError(f"lammps snapshots: need 1 <= every <= steps, got every = {every}, steps = {steps}")
    elements = list(potential.elements)
    with tempfile.TemporaryDirectory() as tmp:
        if deck is None:
            deck = Path(tmp) / "deck"
            export_lammps(potential, deck, name="md", structure=atoms if all(atoms.pbc) and abs(atoms.cell.volume) > 1e-10 else None)
        lmp = new_lammps()
        out = []
        try:
            create_system(lmp, atoms, elements)
            for line in deck_pair_lines(deck, "md", elements):
                lmp.command(line)
            set_masses(lmp, atoms, elements)
            dt_ps = timestep_fs / 1000.0
            lmp.command(f"timestep {dt_ps!r}")
            lmp.command(f"velocity all create {float(temperature)!r} {int(seed) % 900000 + 1} mom yes rot no dist gaussian")
            lmp.command("fix integrate all nve")
            lmp.command(f"fix thermostat all langevin {float(temperature)!r} {float(temperature)!r} 0.05 {int(seed) % 900000 + 7}")
            lmp.command("compute grade all hpot/gamma")
            lmp.command("thermo_style custom step temp pe c_grade")
            lmp.command("thermo 0")
            n = len(atoms)
            box = lmp.extract_box()
            lo, hi, xy, yz, xz = np.array(box[0]), np.array(box[1]), box[2], box[3], box[4]
            cell = np.array([[hi[0] - lo[0], 0.0, 0.0], [xy, hi[1] - lo[1], 0.0], [xz, yz, hi[2] - lo[2]]])
            for _ in range(steps // every):
                lmp.command(f"run {every} pre no post no")
                ids = np.array(lmp.numpy.extract_atom("id")[:n])
                x = np.array(lmp.numpy.extract_atom("x")[:n])[np.argsort(ids)] - lo
                gamma = float(lmp.extract_compute("grade", 0, 0))  # global scalar: the largest grade
                snap = Atoms(atoms.numbers, x, cell=cell, pbc=atoms.pbc)
                out.append((snap, gamma))
                if gamma > gamma_break:
                    break
        finally:
            lmp.close()
    return out
