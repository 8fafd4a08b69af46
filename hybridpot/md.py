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

from hybridpot.calculator import Calculator
from hybridpot.errors import HybridpotError, StructureError
from hybridpot.export.lammps import check_exportable, deck_pair_lines, deck_types, export_lammps
from hybridpot.lammps_run import ENERGY_UNIT_EV, LammpsUnavailable, create_system, import_lammps, new_lammps, set_masses
from hybridpot.metrics import EV_A3_TO_GPA
from hybridpot.neighbors import neighbor_list
from hybridpot.system import AtomicSystem

ENSEMBLES = ("nve", "nvt")
#: Nose-Hoover damping time in timesteps (LAMMPS's recommended 100 steps) and chain length (LAMMPS default)
NVT_DAMPING_STEPS = 100
NVT_CHAIN = 3
#: ASE velocity unit (Angstrom per ASE time unit) in Angstrom/ps
ASE_VELOCITY_IN_A_PER_PS = 1000.0 * units.fs
#: the time unit of each LAMMPS unit system the decks run in, ps
TIME_UNIT_PS = {"metal": 1.0, "real": 1e-3}


@dataclass(frozen=True)
class _DeckUnits:
    """What running an exported deck needs besides its pair lines: the atom types (element of type 1 first), LAMMPS's
    units and atom style (a LAMMPS baseline may need real units and charges), and the conversions to eV and ps."""

    types: list[str]
    units: str
    atom_style: str

    @classmethod
    def of(cls, potential) -> "_DeckUnits":
        types = deck_types(potential)
        spec = potential.baseline.lammps_pair(types) if potential.baseline is not None else None
        return cls(types, spec.units if spec else "metal", spec.atom_style if spec else "atomic")

    @property
    def energy_ev(self) -> float:
        """eV per LAMMPS energy unit."""
        return ENERGY_UNIT_EV[self.units]

    @property
    def time_ps(self) -> float:
        """ps per LAMMPS time unit."""
        return TIME_UNIT_PS[self.units]


@dataclass
class MDResult:
    """Energies, temperature and pressure along a run, its cost, and why it stopped early (if it did).

    Attributes:
        time_ps: (n,) times of the records, ps (0 first).
        potential, kinetic, total: (n,) energies, eV.
        n_atoms: atoms in the cell.
        steps: MD steps asked for (``steps_done`` of them ran).
        engine: "ase" or "lammps".
        seconds: wall time of the integration loop (force evaluations included), s.
        timestep_fs: the timestep, fs.
        ensemble: "nve" or "nvt".
        cpu_seconds: CPU time of this process over the loop (all its threads), s; less sensitive
            than ``seconds`` to other processes sharing the cores.
        temperature: (n,) K, from the kinetic energy with 3N - 3 degrees of freedom (both engines).
        pressure: (n,) GPa, virial plus kinetic part (NaN without a cell).
        conserved: (n,) eV, the quantity the integrator conserves: the total energy for NVE, plus the
            thermostat's energy for NVT.
        stopped: None for a complete run, else why the run stopped (step, time, what went wrong).
        steps_done: steps actually integrated.
        trajectory: the trajectory file written (extxyz), if any.
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
    temperature: np.ndarray | None = None
    pressure: np.ndarray | None = None
    conserved: np.ndarray | None = None
    stopped: str | None = None
    steps_done: int | None = None
    trajectory: str | None = None

    @property
    def drift_eV_atom_ps(self) -> float:
        """Slope of the conserved quantity per atom against time (least squares), eV/atom/ps: the
        total energy for NVE, the total plus the thermostat's energy for NVT."""
        quantity = self.total if self.conserved is None else self.conserved
        if self.time_ps.size < 2:
            return float("nan")
        return float(np.polyfit(self.time_ps, quantity / self.n_atoms, 1)[0])

    @property
    def max_deviation_eV_atom(self) -> float:
        """max |E(t) - E(0)| per atom of the conserved quantity, eV."""
        quantity = self.total if self.conserved is None else self.conserved
        if quantity.size == 0:
            return float("nan")
        return float(np.max(np.abs(quantity - quantity[0])) / self.n_atoms)

    @property
    def us_per_atom_step(self) -> float:
        """Wall time per atom and step, microseconds."""
        return self.seconds / (max(self.steps_done or self.steps, 1) * self.n_atoms) * 1e6

    @property
    def cpu_us_per_atom_step(self) -> float:
        """CPU time per atom and step, microseconds."""
        return self.cpu_seconds / (max(self.steps_done or self.steps, 1) * self.n_atoms) * 1e6

    def summary(self) -> str:
        done = self.steps if self.steps_done is None else self.steps_done
        conserved = "total energy" if self.ensemble == "nve" else "total + thermostat energy"
        text = (f"{self.engine}: {self.ensemble} {done} steps x {self.timestep_fs:g} fs of {self.n_atoms} atoms, "
                f"drift of the {conserved} {self.drift_eV_atom_ps:.3e} eV/atom/ps, max |dE| {self.max_deviation_eV_atom:.3e} eV/atom, "
                f"{self.us_per_atom_step:.1f} us/atom-step")
        if self.temperature is not None and self.temperature.size:
            text += (f"; T mean {np.mean(self.temperature):.1f} K, final {self.temperature[-1]:.1f} K; "
                     f"P mean {np.nanmean(self.pressure):.3f} GPa, final {self.pressure[-1]:.3f} GPa"
                     if self.pressure is not None and np.isfinite(self.pressure).any() else
                     f"; T mean {np.mean(self.temperature):.1f} K, final {self.temperature[-1]:.1f} K")
        if self.stopped:
            text += f"\nSTOPPED EARLY: {self.stopped}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON): settings, energies along the run and the derived numbers."""
        def values(a):
            return None if a is None else [float(x) for x in a]

        return {
            "engine": self.engine, "ensemble": self.ensemble, "n_atoms": self.n_atoms, "steps": self.steps,
            "steps_done": self.steps if self.steps_done is None else self.steps_done, "stopped": self.stopped,
            "timestep_fs": self.timestep_fs, "seconds": self.seconds, "cpu_seconds": self.cpu_seconds,
            "drift_eV_atom_ps": self.drift_eV_atom_ps, "drift_of": "total" if self.ensemble == "nve" else "total + thermostat",
            "max_deviation_eV_atom": self.max_deviation_eV_atom,
            "us_per_atom_step": self.us_per_atom_step, "cpu_us_per_atom_step": self.cpu_us_per_atom_step,
            "time_ps": self.time_ps.tolist(), "potential_eV": self.potential.tolist(),
            "kinetic_eV": self.kinetic.tolist(), "total_eV": self.total.tolist(),
            "temperature_K": values(self.temperature), "pressure_GPa": values(self.pressure),
            "conserved_eV": values(self.conserved), "trajectory": self.trajectory,
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


def _check(atoms: Atoms, steps: int, temperature: float, timestep_fs: float, ensemble: str, log_every: int,
           trajectory_every: int | None = None) -> None:
    if ensemble not in ENSEMBLES:
        raise HybridpotError(f"ensemble {ensemble!r}: expected one of {', '.join(ENSEMBLES)}")
    if not (isinstance(steps, (int, np.integer)) and steps >= 1):
        raise HybridpotError(f"steps must be a positive integer, got {steps!r}")
    if not (isinstance(log_every, (int, np.integer)) and log_every >= 1):
        raise HybridpotError(f"log_every must be a positive integer, got {log_every!r}")
    if trajectory_every is not None and not (isinstance(trajectory_every, (int, np.integer)) and trajectory_every >= 1
                                             and trajectory_every % log_every == 0):
        raise HybridpotError(f"trajectory_every must be a positive multiple of log_every ({log_every}), got {trajectory_every!r}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise HybridpotError(f"temperature must be >= 0 K, got {temperature!r}")
    if ensemble == "nvt" and temperature <= 0:
        raise HybridpotError("NVT needs a positive temperature")
    if not (np.isfinite(timestep_fs) and timestep_fs > 0):
        raise HybridpotError(f"timestep must be positive (fs), got {timestep_fs!r}")
    if len(atoms) < 2:
        raise HybridpotError("MD needs at least 2 atoms")


class _Recorder:
    """Records along a run (both engines), the progress bar, the trajectory file and the close-contact check."""

    def __init__(self, atoms: Atoms, steps: int, timestep_fs: float, log_every: int, progress: bool,
                 trajectory: str | Path | None, trajectory_every: int | None, engine: str) -> None:
        from tqdm.auto import tqdm

        self.n, self.dt_ps, self.log_every = len(atoms), timestep_fs / 1000.0, log_every
        self.volume = abs(atoms.cell.volume) if all(atoms.pbc) else float("nan")
        self.rows: list[tuple[float, ...]] = []
        self.trajectory = Path(trajectory) if trajectory is not None else None
        self.trajectory_every = trajectory_every or log_every
        if self.trajectory is not None:
            self.trajectory.parent.mkdir(parents=True, exist_ok=True)
            self.trajectory.write_text("")  # a new file; frames are appended as the run goes
        self.bar = tqdm(total=steps, disable=not progress, unit="step", desc=f"md ({engine})", leave=True)

    def temperature(self, kinetic: float) -> float:
        return 2.0 * kinetic / ((3 * self.n - 3) * units.kB)

    def record(self, step: int, potential: float, kinetic: float, pressure_GPa: float, conserved: float,
               frame: Atoms | None = None) -> None:
        self.rows.append((step * self.dt_ps, potential, kinetic, potential + kinetic, self.temperature(kinetic), pressure_GPa, conserved))
        if frame is not None and self.trajectory is not None and step % self.trajectory_every == 0:
            from ase.io import write

            write(self.trajectory, frame, format="extxyz", append=True)
        if step:
            self.bar.update(self.log_every)
        self.bar.set_postfix_str(f"t {step * self.dt_ps:.3f} ps, T {self.rows[-1][4]:.0f} K, E {potential + kinetic:.4f} eV, "
                                 f"P {pressure_GPa:.2f} GPa", refresh=False)

    def close_contact(self, atoms: Atoms, step: int, min_distance: float) -> str | None:
        """Why the run must stop (two atoms closer than ``min_distance``), or None."""

        try:
            neighbor_list(AtomicSystem.from_atoms(atoms), max(min_distance, 1e-3) * 1.0001, min_distance=min_distance)
        except StructureError as exc:
            return f"step {step} ({step * self.dt_ps:.4f} ps): {str(exc).replace('structure 0: ', '')}"
        return None

    def result(self, steps: int, engine: str, seconds: float, cpu: float, timestep_fs: float, ensemble: str,
               stopped: str | None, steps_done: int) -> MDResult:
        self.bar.close()
        columns = list(zip(*self.rows)) if self.rows else [()] * 7  # a run stopped before its first record has none
        t, pe, ke, tot, temp, press, cons = (np.array(c, dtype=np.float64) for c in columns)
        return MDResult(t, pe, ke, tot, self.n, steps, engine, seconds, float(timestep_fs), ensemble, cpu, temp, press, cons,
                        stopped, steps_done, str(self.trajectory) if self.trajectory is not None else None)


#: a run stops when two atoms come closer than this, Angstrom
STOP_DISTANCE = 0.5


def run_ase(potential, atoms: Atoms, steps: int, temperature: float, timestep_fs: float = 1.0,
            ensemble: str = "nve", log_every: int = 1, seed: int = 0, progress: bool = False,
            trajectory: str | Path | None = None, trajectory_every: int | None = None) -> MDResult:
    """MD with hybridpot's calculator and ASE's integrators (see the module docstring).

    Args:
        potential: any hybridpot Potential.
        atoms: the starting structure (not modified).
        steps: number of steps; temperature: initial (and NVT) temperature, K.
        timestep_fs: fs; ensemble: "nve" or "nvt"; log_every: record every this many steps;
        seed: of the initial velocities; progress: show a progress bar (step, time, T, E, P);
        trajectory: extxyz file to write frames to, every ``trajectory_every`` steps (a multiple of
            ``log_every``; default ``log_every``).

    The run stops early, with the reason in :attr:`MDResult.stopped` and what it has recorded,
    when two atoms come closer than 0.5 A or the energy is not finite.
    """
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.verlet import VelocityVerlet


    _check(atoms, steps, temperature, timestep_fs, ensemble, log_every, trajectory_every)
    atoms = atoms.copy()
    atoms.calc = Calculator(potential)
    atoms.set_velocities(initial_velocities(atoms, temperature, seed))
    dt = timestep_fs * units.fs
    if ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep=dt)
    else:
        dyn = NoseHooverChainNVT(atoms, timestep=dt, temperature_K=temperature, tdamp=NVT_DAMPING_STEPS * dt, tchain=NVT_CHAIN)
    rec = _Recorder(atoms, steps, timestep_fs, log_every, progress, trajectory, trajectory_every, "ase")
    periodic = all(atoms.pbc) and abs(atoms.cell.volume) > 1e-10

    def record() -> None:
        pe, ke = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        pressure = float("nan")
        if periodic:
            sigma = atoms.get_stress(voigt=False, include_ideal_gas=False)
            pressure = (-np.trace(sigma) / 3.0 + 2.0 * ke / (3.0 * atoms.get_volume())) * EV_A3_TO_GPA
        conserved = pe + ke if ensemble == "nve" else float(dyn.get_conserved_energy())
        frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc) if rec.trajectory is not None else None
        rec.record(dyn.nsteps, pe, ke, pressure, conserved, frame)

    stopped = None
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        record()
        while dyn.nsteps < steps and stopped is None:
            dyn.run(min(log_every, steps - dyn.nsteps))
            record()
            if not np.isfinite(rec.rows[-1][3]):
                stopped = f"step {dyn.nsteps} ({dyn.nsteps * timestep_fs / 1000:.4f} ps): the energy is not finite"
    except HybridpotError as exc:  # overlapping atoms (the neighbour list's check)
        stopped = f"step {dyn.nsteps} ({dyn.nsteps * timestep_fs / 1000:.4f} ps): {str(exc).replace('structure 0: ', '')}"
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return rec.result(steps, "ase", seconds, cpu, timestep_fs, ensemble, stopped, int(dyn.nsteps))


def run_lammps_md(potential, atoms: Atoms, steps: int, temperature: float, timestep_fs: float = 1.0,
                  ensemble: str = "nve", log_every: int = 1, seed: int = 0, workdir: str | Path | None = None,
                  progress: bool = False, trajectory: str | Path | None = None, trajectory_every: int | None = None,
                  threads: int = 1) -> MDResult:
    """MD of the exported model in LAMMPS (``pair_style hpot``; same start as :func:`run_ase`).

    Args:
        potential: a HybridPotential the plugin can run (:func:`~hybridpot.export.lammps.check_exportable`).
        workdir: where the deck is written (default: a temporary directory, removed afterwards).
        threads: OpenMP threads of the plugin (``package omp``).
        Others as :func:`run_ase`; frames of the trajectory are in the structure's own frame.

    The run is integrated in pieces of ``log_every`` steps; it stops early, with the reason, when
    LAMMPS fails (lost atoms, a non-finite energy) or two atoms come closer than 0.5 A.
    """

    _check(atoms, steps, temperature, timestep_fs, ensemble, log_every, trajectory_every)
    check_exportable(potential)
    try:
        import_lammps()
    except LammpsUnavailable as exc:
        raise HybridpotError(f"the lammps engine needs the LAMMPS Python module: {exc}") from exc
    deck_units = _DeckUnits.of(potential)
    elements = deck_units.types
    e_ev, t_ps = deck_units.energy_ev, deck_units.time_ps
    velocities = initial_velocities(atoms, temperature, seed) * ASE_VELOCITY_IN_A_PER_PS * t_ps  # Angstrom per LAMMPS time unit
    rec = _Recorder(atoms, steps, timestep_fs, log_every, progress, trajectory, trajectory_every, "lammps")
    periodic = all(atoms.pbc) and abs(atoms.cell.volume) > 1e-10
    stopped, done = None, 0
    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(workdir).resolve() if workdir is not None else Path(tmp)
        export_lammps(potential, deck, name="md", structure=atoms if periodic else None)
        lmp = new_lammps()
        n = len(atoms)
        try:
            lmp.command(f"package omp {int(threads)}")
            rotation = create_system(lmp, atoms, elements, velocities=velocities, units=deck_units.units, atom_style=deck_units.atom_style)
            for line in deck_pair_lines(deck, "md", elements):
                lmp.command(line)
            set_masses(lmp, atoms, elements)  # eam/alloy pair_coeff sets the setfl file's masses; use the structure's, as ASE does
            dt_ps = timestep_fs / 1000.0
            dt = dt_ps / t_ps  # in LAMMPS's time unit
            lmp.command(f"timestep {dt!r}")
            if ensemble == "nve":
                lmp.command("fix integrate all nve")
            else:
                lmp.command(f"fix integrate all nvt temp {temperature!r} {temperature!r} {NVT_DAMPING_STEPS * dt!r} tchain {NVT_CHAIN}")
                lmp.command("compute_modify integrate_temp extra/dof 0")  # 3N degrees of freedom, as ASE's thermostat
            lmp.command("thermo_style custom step pe ke press econserve")
            lmp.command("thermo 0")
            nktv2p = float(lmp.extract_global("nktv2p"))
            cell = atoms.cell.array.copy()

            def record(step: int) -> Atoms:
                pe, ke = float(lmp.get_thermo("pe")) * e_ev, float(lmp.get_thermo("ke")) * e_ev
                pressure = float(lmp.get_thermo("press")) / nktv2p * e_ev * EV_A3_TO_GPA if periodic else float("nan")
                conserved = pe + ke if ensemble == "nve" else float(lmp.get_thermo("econserve")) * e_ev
                ids = np.array(lmp.numpy.extract_atom("id")[:n])
                x = np.array(lmp.numpy.extract_atom("x")[:n])[np.argsort(ids)] @ rotation.T
                frame = Atoms(atoms.numbers, x, cell=cell, pbc=atoms.pbc)
                rec.record(step, pe, ke, pressure, conserved, frame)
                return frame

            t0, c0 = time.perf_counter(), time.process_time()
            lmp.command("run 0")
            stopped = rec.close_contact(record(0), 0, STOP_DISTANCE)
            while done < steps and stopped is None:
                chunk = min(log_every, steps - done)
                try:
                    lmp.command(f"run {chunk} pre no post no")
                except Exception as exc:  # LAMMPS errors (lost atoms, a non-finite energy) arrive as plain Exceptions
                    stopped = f"step ~{done + chunk} ({(done + chunk) * dt_ps:.4f} ps): LAMMPS stopped: {str(exc).splitlines()[0]}"
                    break
                done += chunk
                frame = record(done)
                stopped = rec.close_contact(frame, done, STOP_DISTANCE) if not stopped else stopped
                if stopped is None and not np.isfinite(rec.rows[-1][3]):
                    stopped = f"step {done} ({done * dt_ps:.4f} ps): the energy is not finite"
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            lmp.close()
    return rec.result(steps, "lammps", seconds, cpu, timestep_fs, ensemble, stopped, done)


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

    if not (isinstance(every, (int, np.integer)) and every >= 1 and steps >= every):
        raise HybridpotError(f"lammps snapshots: need 1 <= every <= steps, got every = {every}, steps = {steps}")
    deck_units = _DeckUnits.of(potential)
    elements = deck_units.types
    with tempfile.TemporaryDirectory() as tmp:
        if deck is None:
            deck = Path(tmp) / "deck"
            export_lammps(potential, deck, name="md", structure=atoms if all(atoms.pbc) and abs(atoms.cell.volume) > 1e-10 else None)
        lmp = new_lammps()
        out = []
        try:
            create_system(lmp, atoms, elements, units=deck_units.units, atom_style=deck_units.atom_style)
            for line in deck_pair_lines(deck, "md", elements):
                lmp.command(line)
            set_masses(lmp, atoms, elements)
            dt_ps = timestep_fs / 1000.0
            lmp.command(f"timestep {dt_ps / deck_units.time_ps!r}")
            lmp.command(f"velocity all create {float(temperature)!r} {int(seed) % 900000 + 1} mom yes rot no dist gaussian")
            lmp.command("fix integrate all nve")
            lmp.command(f"fix thermostat all langevin {float(temperature)!r} {float(temperature)!r} {0.05 / deck_units.time_ps!r} "
                        f"{int(seed) % 900000 + 7}")
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
