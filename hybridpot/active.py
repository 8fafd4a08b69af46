"""Active learning (``hybridpot active CONFIG.toml``): grow a training set where the hybrid is unsure.

Each iteration:

1. candidates: short MD runs with the current hybrid (ASE Langevin, stopped early once a
   snapshot's gamma exceeds ``gamma_break``), random perturbations (rattle + strain) of seed
   structures, or the remaining structures of a fixed pool;
2. score: per candidate the largest per-atom extrapolation grade gamma (MaxVol, D-optimality),
   or the predictive std of the energy per atom ("std"), or nothing ("random", the baseline to
   compare with);
3. select ``select`` candidates greedily. For "gamma" the best candidate is added to the active
   set (MaxVol over the active rows and the candidate's atoms) and all remaining candidates are
   re-graded against it, so a near-duplicate of a selected structure scores ~1 and is not
   taken: only candidates with gamma > ``gamma_min`` (default 1.1, a margin over round-off and
   tiny differences) against the updated set are selected
   ("std" uses the same eligibility test). If none qualifies the loop has converged;
4. label the selected structures with the oracle (any ASE calculator), refit from scratch,
   evaluate on the test set and log: oracle calls, training size, test errors, max gamma seen.

With ``[fit] cluster``, one Dask cluster serves the whole loop: every fit's passes over the training set (baseline,
design matrix, predictions, uncertainty data), the test errors and the scoring of the candidates (their descriptors and,
for "std", their predictive std) run on it (:mod:`hybridpot.distributed`); the MD that makes candidates, the oracle and
the greedy selection run in this process.

The log (``active_log.json``), the learning curve (``learning_curve.png``; not with ``[output] plots = false``), the
labelled training set (``train.xyz``) and the final model (``NAME.hybridpot.json``, ``[output] name``, default
``model``) are written to ``[output] dir`` (default ``runs/active``) as one unit at the end (:class:`hybridpot.io.outdir.OutputDir`); while the loop runs, the log is
rewritten after every iteration in the staging folder beside it (its path is logged at the start).
Configuration (``[baseline]``, ``[descriptor]``, ``[model]``, ``[fit]`` and ``[output]`` as for
``hybridpot fit``; every key with its meaning: ``hybridpot config --active``)::

    [active]
    initial = "initial.xyz"     # starting structures (unlabelled ones are labelled by the oracle)
    test = "test.xyz"           # optional labelled test set
    iterations = 10
    select = 4                  # oracle calls per iteration (at most)
    criterion = "gamma"         # "gamma" | "std" | "random"
    gamma_min = 1.1             # a candidate must reach this gamma (against the growing active set)
    seed = 0
    [candidates]
    source = "md"               # "md" | "perturb" | "pool"
    structures = "seeds.xyz"    # md / perturb starting structures (default: the initial set)
    pool = "pool.xyz"           # source = "pool"
    temperatures = [300.0, 1200.0]
    steps = 200                 # md steps per run
    every = 20                  # md: a candidate every `every` steps
    timestep = 1.0              # fs
    gamma_break = 10.0          # md: stop a run past this gamma
    engine = "ase"              # md: "ase" (hybridpot's calculator) or "lammps" (pair_style hpot: larger, longer runs)
    rattle = 0.05               # perturb: displacement std, Angstrom
    strain = 0.02               # perturb: largest strain component
    count = 40                  # perturb: candidates per iteration
    [oracle]
    calculator = "ase.calculators.emt.EMT"   # import path of an ASE calculator class, or
    # potential = "Cu_zhou.eam.alloy"        # a file hybridpot.load reads (empirical or model file)
    parameters = {}                          # keyword arguments of the calculator
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from hybridpot.calculator import Calculator
from hybridpot.dataset import check_structures, from_frames, read_dataset
from hybridpot.distributed import ClusterArg, connect, map_batches
from hybridpot.errors import ConfigError, HybridpotError, OutputError
from hybridpot.export.lammps import export_lammps
from hybridpot.fitting.checks import check_cutoff, check_data
from hybridpot.fitting.config import FitConfig, fail, parse_config
from hybridpot.fitting.job import (MODEL_SUFFIX, _jsonable, check_labels, committee_resamples, fit_residual, make_baseline,
                                   make_potential)
from hybridpot.fitting.sections import SECTIONS as FIT_SECTIONS
from hybridpot.fitting.sections import OutputSettings
from hybridpot.io.atomic import write_text_atomic
from hybridpot.io.modelfile import save
from hybridpot.io.outdir import OutputDir
from hybridpot.io.toml import read_toml
from hybridpot.md import initial_velocities, lammps_snapshots
from hybridpot.plots import _figure, save_figure
from hybridpot.prediction import DEFAULT_BATCH_ATOMS, baseline_predictions, batches, descriptors, for_workers, predict
from hybridpot.scoring import errors
from hybridpot.settings import Settings, option, read_sections, required
from hybridpot.uq import attach_uq, extrapolation_grades

CRITERIA = ("gamma", "std", "random")
SOURCES = ("md", "perturb", "pool")
ENGINES = ("ase", "lammps")


@dataclass
class ActiveSettings(Settings):
    """[active]: the loop."""

    initial: str = required("starting structures (unlabelled ones are labelled by the oracle)")
    test: str | None = option(None, "labelled test set (optional): its errors after every iteration")
    iterations: int = option(5, "rounds of candidates, selection, labelling and refit")
    select: int = option(4, "structures labelled per iteration (at most)")
    criterion: str = option("gamma", "how candidates are scored: 'gamma' (extrapolation grade against the active set), 'std' "
                                     "(predictive std of the energy per atom) or 'random'")
    gamma_min: float = option(1.1, "gamma and std: a candidate is eligible only while its extrapolation grade against the "
                                   "growing active set exceeds this (a margin over round-off); none eligible: converged")
    seed: int = option(0, "seed of the random choices (MD velocities and thermostat, perturbations, 'random')")
    check_units: bool = option(True, "stop on labels of the initial or test structures that look like a unit or sign mistake "
                                     "(later iterations' labels: warn)")
    check_outliers: bool = option(True, "stop on initial or test structures whose labels are far outside the rest (later "
                                        "iterations' labels: warn)")

    def check_values(self, where: str) -> None:
        if self.seed < 0:
            raise ConfigError(f"{where} seed = {self.seed}: must be >= 0 (numpy's random generators refuse negative seeds)")
        if self.iterations < 0 or self.select < 1:
            raise ConfigError(f"{where} iterations = {self.iterations}, select = {self.select}: need iterations >= 0, select >= 1")
        if self.criterion not in CRITERIA:
            raise ConfigError(f"{where} criterion = {self.criterion!r}: expected 'gamma', 'std' or 'random'")


@dataclass
class CandidatesSettings(Settings):
    """[candidates]: where candidate structures come from."""

    file_keys = ("structures", "pool")

    source: str = option("md", "'md' (short MD runs with the current hybrid), 'perturb' (rattle + strain) or 'pool' (a fixed "
                               "set of structures)")
    structures: str | None = option(None, "md / perturb starting structures (default: the initial set)")
    pool: str | None = option(None, "source = 'pool': the structures to choose from")
    temperatures: list[float] = option([300.0, 1200.0], "md: temperatures of the runs, K")
    steps: int = option(200, "md: steps per run")
    every: int = option(20, "md: a candidate every this many steps")
    timestep: float = option(1.0, "md: time step, fs")
    gamma_break: float = option(10.0, "md: stop a run once a snapshot's gamma exceeds this")
    engine: str = option("ase", "md: 'ase' (hybridpot's calculator) or 'lammps' (pair_style hpot: larger, longer runs)")
    rattle: float = option(0.05, "perturb: displacement std, Angstrom")
    strain: float = option(0.02, "perturb: largest strain component")
    count: int = option(40, "perturb: candidates per iteration")

    def check_values(self, where: str) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"{where} source = {self.source!r}: expected 'md', 'perturb' or 'pool'")
        if self.engine not in ENGINES:
            raise ConfigError(f"{where} engine = {self.engine!r}: expected 'ase' or 'lammps'")
        if self.source == "pool" and self.pool is None:
            raise ConfigError(f"{where} source = 'pool' needs pool = '...'")
        if not self.temperatures or not all(t > 0 for t in self.temperatures):
            raise ConfigError(f"{where} temperatures = {self.temperatures}: expected a list of positive numbers (K)")
        for name in ("steps", "every", "count"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where} {name} = {getattr(self, name)}: must be >= 1")
        for name in ("timestep", "gamma_break"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{where} {name} = {getattr(self, name)}: must be positive")
        for name in ("rattle", "strain"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{where} {name} = {getattr(self, name)}: must be >= 0")


@dataclass
class OracleSettings(Settings):
    """[oracle]: what labels the selected structures."""

    file_keys = ("potential",)

    calculator: str | None = option(None, "import path of an ASE calculator class, e.g. 'ase.calculators.emt.EMT' or "
                                          "'gpaw.GPAW'")
    potential: str | None = option(None, "or a file hybridpot.load reads (an empirical potential or a model file)")
    parameters: dict = option({}, "keyword arguments of the calculator")

    def check_values(self, where: str) -> None:
        if (self.calculator is None) == (self.potential is None):
            raise ConfigError(f"{where} needs exactly one of calculator = 'module.Class' or potential = 'file'")


@dataclass
class ActiveOutputSettings(OutputSettings):
    """[output] of ``hybridpot active``: the fit's keys, with a folder of its own by default."""

    dir: str = option("runs/active", "output folder (relative to the configuration file): active_log.json, "
                                     "learning_curve.png, train.xyz (the labelled training set) and NAME.hybridpot.json")
    plots: bool = option(True, "write the learning curve (learning_curve.png)")


#: the loop's own sections
LOOP_SECTIONS: dict[str, type[Settings]] = {"active": ActiveSettings, "candidates": CandidatesSettings, "oracle": OracleSettings}
#: every section of an active-learning configuration: the loop's, then the fit's but [data] (replaced by [active] initial / test)
ACTIVE_SECTIONS: dict[str, type[Settings]] = {**LOOP_SECTIONS, **{k: v for k, v in FIT_SECTIONS.items() if k != "data"},
                                              "output": ActiveOutputSettings}
#: the values ``hybridpot config --active --toml`` writes for the required keys: (section, key) -> TOML value
ACTIVE_PLACEHOLDERS = {("active", "initial"): '"initial.xyz"', ("oracle", "calculator"): '"ase.calculators.emt.EMT"',
                       ("baseline", "file"): '"baseline.eam.alloy"'}


@dataclass
class ActiveConfig:
    """A validated active-learning configuration.

    Attributes:
        fit: the fit part (as for ``hybridpot fit``; ``data.train`` = the initial structures).
        sections: ``active``, ``candidates`` and ``oracle`` with defaults filled and paths absolute.
        source: the configuration file (for messages).
    """

    fit: FitConfig
    sections: dict[str, dict[str, Any]]
    source: str

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.sections[section]


def parse_active_config(raw: dict[str, Any], base_dir: Path, source: str = "<config>") -> ActiveConfig:
    """Validate an active-learning configuration (as read from TOML).

    Raises:
        HybridpotError: unknown section or key, wrong type, bad value or missing file (naming the key).
    """
    unknown = set(raw) - set(ACTIVE_SECTIONS)
    if unknown:
        raise fail(source, f"unknown section(s) {sorted(unknown)}; allowed: {sorted(ACTIVE_SECTIONS)} ([data] is replaced by "
                           "[active] initial / test)")
    sections = {name: dataclasses.asdict(s) for name, s in read_sections(raw, LOOP_SECTIONS, source, base_dir).items()}
    a = sections["active"]
    fit_raw = {k: v for k, v in raw.items() if k in FIT_SECTIONS}
    fit_raw["data"] = {"train": str(a["initial"]), **({"test": str(a["test"])} if a["test"] else {}),
                       "check_units": a["check_units"], "check_outliers": a["check_outliers"]}
    fit = parse_config(fit_raw, base_dir, source, {**FIT_SECTIONS, "output": ActiveOutputSettings})
    a["initial"], a["test"] = fit["data"]["train"], fit["data"]["test"]
    if fit["fit"]["train_fraction"] != 1:
        raise fail(source, "[fit] train_fraction is not used by active learning (the loop chooses the training set)")
    if fit["fit"]["tune"]:
        raise fail(source, "[fit] tune is not used by active learning (each iteration fits the configured settings): tune with "
                           "hybridpot fit --tune on a labelled set and put the chosen settings (its report.json fit.tune.chosen) "
                           "into [descriptor] and [model]")
    if fit["baseline"]["refit"]:
        raise fail(source, "[baseline] refit is not used by active learning (each iteration fits the residual only): co-fit with "
                           "hybridpot fit and give the refitted baseline it writes as [baseline] file")
    if a["criterion"] == "std" and fit["model"]["type"] == "nn" and fit["model"]["committee"] < 2:
        raise fail(source, "[active] criterion = 'std' with an nn model needs [model] committee >= 2")
    return ActiveConfig(fit, sections, source)


def read_active_config(path: str | Path) -> ActiveConfig:
    """Read and validate an active-learning TOML file (relative paths against its directory)."""
    path = Path(path)
    return parse_active_config(read_toml(path), path.resolve().parent, str(path))


# ------------------------------------------------------------------------------- oracle


def make_oracle(settings: dict[str, Any], source: str = "[oracle]"):
    """The ASE calculator named by ``[oracle]``.

    Raises:
        HybridpotError: the module or class cannot be imported (e.g. GPAW not installed), or the
            calculator rejects its parameters.
    """
    if settings.get("potential") is not None:
        import hybridpot

        return Calculator(hybridpot.load(settings["potential"]))
    name = settings["calculator"]
    module_name, _, cls_name = name.replace(":", ".").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise HybridpotError(f"{source}: cannot import the oracle calculator {name!r} ({type(exc).__name__}: {exc})") from exc
    try:
        return cls(**settings.get("parameters", {}))
    except Exception as exc:  # calculators raise many types on bad parameters
        raise HybridpotError(f"{source}: the oracle {name} rejected its parameters ({type(exc).__name__}: {exc})") from exc


def label(frames: list[Atoms], oracle, stress: bool = False, log: Callable[[str], None] = print) -> tuple[list[Atoms], int]:
    """Label structures with the oracle: energy, forces (and stress), frozen in a SinglePointCalculator.

    Returns:
        (labelled structures, oracle calls made). Structures the oracle fails on are dropped
        (and logged); their calls still count.
    """
    out, calls = [], 0
    for atoms in frames:
        a = atoms.copy()
        a.calc = oracle
        calls += 1
        try:
            results = {"energy": a.get_potential_energy(), "forces": a.get_forces()}
            if stress:
                results["stress"] = a.get_stress()
        except Exception as exc:  # an SCF that does not converge, an element the oracle lacks, ...
            log(f"oracle failed on a {a.get_chemical_formula()} structure ({type(exc).__name__}: {exc}); skipped")
            continue
        a.calc = SinglePointCalculator(a, **results)
        out.append(a)
    return out, calls


def is_labelled(atoms: Atoms) -> bool:
    """Whether a structure carries a reference energy and forces."""
    results = atoms.calc.results if atoms.calc is not None else {}
    return "energy" in results and "forces" in results


# ------------------------------------------------------------------------------- candidates


def md_candidates(potential, seeds: list[Atoms], temperatures: list[float], steps: int, every: int, timestep_fs: float,
                  gamma_break: float, rng: np.random.Generator, engine: str = "ase") -> list[Atoms]:
    """Snapshots of Langevin MD with ``potential`` from every seed at every temperature.

    A run stops at the first snapshot whose largest gamma exceeds ``gamma_break`` (that snapshot
    is kept: beyond it the hybrid is unreliable) or when atoms overlap. ``engine`` "ase" runs
    hybridpot's calculator; "lammps" runs the exported model in LAMMPS (``pair_style hpot``, the
    grade from ``compute hpot/gamma``; :func:`hybridpot.md.lammps_snapshots`).
    """
    if engine == "lammps":
        return _lammps_md_candidates(potential, seeds, temperatures, steps, every, timestep_fs, gamma_break, rng)
    from ase import units
    from ase.md.langevin import Langevin


    out = []
    for seed_atoms in seeds:
        for T in temperatures:
            atoms = seed_atoms.copy()
            atoms.calc = Calculator(potential)
            atoms.set_velocities(initial_velocities(atoms, T, int(rng.integers(1 << 31))))
            dyn = Langevin(atoms, timestep=timestep_fs * units.fs, temperature_K=T, friction=0.02 / units.fs, fixcm=False,
                           rng=np.random.default_rng(int(rng.integers(1 << 31))))
            for _ in range(steps // every):
                try:
                    dyn.run(every)
                except HybridpotError:  # overlapping atoms: the run has left physical space
                    break
                snap = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
                snap.info["candidate"] = f"md T={T:g} K step {dyn.nsteps}"
                out.append(snap)
                if extrapolation_grades(potential, [snap])[0].max() > gamma_break:
                    break
    return out


def _lammps_md_candidates(potential, seeds: list[Atoms], temperatures: list[float], steps: int, every: int, timestep_fs: float,
                          gamma_break: float, rng: np.random.Generator) -> list[Atoms]:
    import tempfile


    out = []
    with tempfile.TemporaryDirectory() as tmp:
        deck = Path(tmp) / "deck"
        export_lammps(potential, deck, name="md")  # once for all runs of this iteration
        for seed_atoms in seeds:
            for T in temperatures:
                for k, (snap, _) in enumerate(lammps_snapshots(potential, seed_atoms, T, steps, every, timestep_fs, gamma_break,
                                                               int(rng.integers(1 << 30)), deck=deck)):
                    snap.info["candidate"] = f"lammps md T={T:g} K step {(k + 1) * every}"
                    out.append(snap)
    return out


def perturbed_candidates(seeds: list[Atoms], count: int, rattle: float, strain: float, rng: np.random.Generator) -> list[Atoms]:
    """``count`` random perturbations: a random seed, a random symmetric strain (components up to
    ``strain``) and Gaussian displacements of std ``rattle`` Angstrom."""
    out = []
    for k in range(count):
        s = int(rng.integers(len(seeds)))
        a = Atoms(seeds[s].numbers, seeds[s].positions, cell=seeds[s].cell, pbc=seeds[s].pbc)
        eps = rng.uniform(-strain, strain, (3, 3))
        a.set_cell(a.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        a.positions += rng.normal(scale=rattle, size=a.positions.shape)
        a.info["candidate"] = f"perturbation {k} of seed {s}"
        out.append(a)
    return out


# ------------------------------------------------------------------------------- selection


@dataclass
class Selection:
    """Chosen candidate indices and their scores at the time they were chosen."""

    index: list[int]
    gamma: list[float]
    std: list[float]
    max_gamma_seen: float
    converged: bool


def structure_std(potential, frames: list[Atoms], cluster: ClusterArg = None, progress: bool = False) -> np.ndarray:
    """(S,) predictive std of the energy per atom (parametric part / committee spread), eV/atom, of each structure.

    ``cluster``: None (this process) or a Dask cluster (:mod:`hybridpot.distributed`): one task per batch of structures.
    """
    out = np.empty(len(frames))

    def keep(idx: np.ndarray, std: np.ndarray) -> None:
        out[idx] = std

    counts = np.array([len(a) for a in frames], dtype=int)
    map_batches(_std_batch, for_workers(potential), list(batches(counts, DEFAULT_BATCH_ATOMS)),
                lambda idx: [frames[s] for s in idx], keep, cluster, progress, "candidate std")
    return out


def _std_batch(potential: Any, frames: list[Atoms]) -> np.ndarray:
    """(B,) predictive std of the energy per atom, eV/atom, of the B structures ``frames`` (one batch of
    :func:`structure_std`)."""
    return np.array([potential.uncertainty(atoms, forces=False)["energy_std_model"] / len(atoms) for atoms in frames])


def select(potential, candidates: list[Atoms], n: int, criterion: str, gamma_min: float, rng: np.random.Generator,
           cluster: ClusterArg = None, progress: bool = False) -> Selection:
    """Greedy selection of up to ``n`` candidates (see the module docstring).

    ``cluster``: None (this process) or a Dask cluster (:mod:`hybridpot.distributed`) for the candidates' scores (their
    descriptors and, for "std", their predictive std); the greedy choice runs here on them.

    Raises:
        HybridpotError: criterion gamma/std without a MaxVol active set.
    """

    if not candidates:
        return Selection([], [], [], float("nan"), True)
    if criterion == "random":
        idx = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False).tolist()
        return Selection(idx, [float("nan")] * len(idx), [float("nan")] * len(idx), float("nan"), False)
    active = potential.uq_data.active_set if potential.uq_data is not None else None
    if active is None:
        raise HybridpotError("selection by gamma/std needs a MaxVol active set: the training set is too small or too uniform "
                             "for the descriptor (add varied initial structures or reduce nmax/lmax)")
    B, types, owner = descriptors(potential, candidates, progress=progress, cluster=cluster, desc="score candidates")
    per = [np.flatnonzero(owner == s) for s in range(len(candidates))]

    def grades(act) -> np.ndarray:
        g = act.grade(B, types)
        return np.array([g[ix].max() for ix in per])

    g = grades(active)
    seen = float(g.max())
    std = structure_std(potential, candidates, cluster, progress) if criterion == "std" else np.full(len(candidates), np.nan)
    chosen: list[int] = []
    scores_g, scores_s = [], []
    while len(chosen) < n:
        open_ = [s for s in range(len(candidates)) if s not in chosen and g[s] > gamma_min]
        if not open_:
            break
        best = max(open_, key=lambda s: std[s]) if criterion == "std" else max(open_, key=lambda s: g[s])
        chosen.append(best)
        scores_g.append(float(g[best]))
        scores_s.append(float(std[best]))
        active = active.extend(B[per[best]], types[per[best]])
        g = grades(active)
    return Selection(chosen, scores_g, scores_s, seen, converged=not chosen)


# ------------------------------------------------------------------------------- loop


@dataclass
class ActiveResult:
    """The loop's record: one entry per iteration (iteration 0 = the initial fit)."""

    log: list[dict[str, Any]] = field(default_factory=list)
    potential: Any = None
    train: list[Atoms] = field(default_factory=list)
    output_dir: Path | None = None


def fit_potential(config: FitConfig, frames: list[Atoms], progress: bool = False, log: Callable[[str], None] = print,
                  cluster: ClusterArg = None, stop_on_labels: bool = True):
    """Fit a fresh hybrid (as configured) to labelled ``frames`` and attach its uncertainty data.

    ``cluster``: an open :class:`~hybridpot.distributed.Cluster` for the passes over ``frames`` (None: the ``[fit]
    cluster`` of ``config``, opened for this fit alone where set). The labels are checked first as ``hybridpot fit``
    checks them (:func:`hybridpot.fitting.job.check_labels`: single outliers, then units and sign): a finding stops the
    fit where ``stop_on_labels`` (and the key of its check) says so, else it is a warning.

    Returns:
        (potential, summary dict with the solver's diagnostics, the uq summary and the label checks ("data_checks")).

    Raises:
        OutlierError, UnitsError: a finding, with ``stop_on_labels`` and the key of its check true.
    """

    data = from_frames(frames, source="active-learning training set")
    elements = data.elements  # sorted by atomic number, as in hybridpot fit
    baseline = make_baseline(config)
    potential = make_potential(config, elements, baseline)
    with connect(config["fit"]["cluster"] if cluster is None else cluster) as cluster:
        bl = baseline_predictions(baseline, data, progress=progress, cluster=cluster)
        checks = check_labels(config, {"train": (data, bl if baseline is not None else None)}, log, stop=stop_on_labels,
                              section="[active]")
        sol, weights, record = fit_residual(config, potential, data, bl, progress, log, cluster=cluster)
        info = {"lambda": sol.lam, "effective_parameters": sol.dof, "energy_weight": weights.energy} if sol else {}
        info["data_checks"] = checks["train"]
        predictions = predict(potential, data, progress=progress, baseline=bl, cluster=cluster)
        info["uq"] = attach_uq(potential, data, bl, weights, solution=sol, predictions=predictions,
                               committee_resamples=committee_resamples(record), cluster=cluster, progress=progress)
    return potential, info


def _test_errors(potential, test, cluster: ClusterArg = None) -> dict[str, float]:
    p = predict(potential, test, progress=False, cluster=cluster)
    return errors(test, {"energy": p["energy"], "forces": p["forces"]})


def run_active(config: ActiveConfig, progress: bool = False, log: Callable[[str], None] = print, write: bool = True) -> ActiveResult:
    """Run the active-learning loop described by ``config``; see the module docstring.

    Args:
        write: write the log, plot, training set and model to ``[output] dir``.

    Raises:
        HybridpotError: bad structures, oracle or output folder (checked before the loop starts).
    """
    for note in config.fit.notes:
        log(f"warning: {config.fit.source}: {note}")
    if not write:
        with connect(config.fit["fit"]["cluster"]) as cluster:
            return _loop(config, progress, log, None, cluster)

    out = config.fit["output"]
    with OutputDir(out["dir"], "active", out["overwrite"], config.source) as outdir:
        log(f"writing into {outdir.path} while the loop runs; moved to {out['dir']} at the end")
        with connect(config.fit["fit"]["cluster"]) as cluster:
            result = _loop(config, progress, log, outdir.path, cluster)
        try:
            _write_outputs(result, config, outdir.path)
            outdir.commit()
        except OSError as exc:
            raise OutputError(f"{config.source}: writing the outputs to {out['dir']} failed ({type(exc).__name__}: {exc}); "
                              f"{out['dir']} was left as it was") from exc
    result.output_dir = out["dir"]
    return result


def _loop(config: ActiveConfig, progress: bool, log: Callable[[str], None], staging: Path | None, cluster: ClusterArg = None
          ) -> ActiveResult:
    """The loop of :func:`run_active`; the log goes to ``staging`` after every iteration (None: nowhere); the passes over
    data run on ``cluster`` (an open Dask cluster, or None: this process)."""

    a, c = config["active"], config["candidates"]
    rng = np.random.default_rng(a["seed"])
    oracle = make_oracle(config["oracle"], f"{config.source} [oracle]")
    stress = config.fit["fit"]["stress_weight"] > 0
    initial = check_structures(_read_frames(a["initial"]), str(a["initial"]))
    test = read_dataset(a["test"]) if a["test"] else None
    seeds = check_structures(_read_frames(c["structures"]), str(c["structures"])) if c["structures"] else \
        [Atoms(x.numbers, x.positions, cell=x.cell, pbc=x.pbc) for x in initial]
    pool = check_structures(_read_frames(c["pool"]), str(c["pool"])) if c["source"] == "pool" else []
    train = [x for x in initial if is_labelled(x)]
    todo = [x for x in initial if not is_labelled(x)]
    new, calls = label(todo, oracle, stress, log)
    train += new
    if not train:
        raise HybridpotError(f"{config.source}: no labelled initial structure")
    initial_data = from_frames(train, source=f"the labelled initial structures of {a['initial']}")
    baseline = make_baseline(config.fit)
    check_data(config.fit, initial_data, test, baseline)
    if test is not None:  # the training sets are checked by each fit (fit_potential)
        check_labels(config.fit, {"test": (test, baseline_predictions(baseline, test, progress=False) if baseline is not None else None)}, log,
                     section="[active]")
    check_cutoff(config.fit, initial_data, initial_data.elements, float(config.fit["descriptor"]["rcut"]))
    result = ActiveResult(train=train)
    t0 = time.perf_counter()
    potential, info = fit_potential(config.fit, train, progress, log, cluster)
    entry = {"iteration": 0, "oracle_calls": calls, "n_train": len(train), "n_train_atoms": int(sum(len(x) for x in train)),
             "fit": info, "seconds": time.perf_counter() - t0}
    if test is not None:
        entry["test"] = _test_errors(potential, test, cluster)
    result.log.append(entry)
    _report(entry, log)
    for it in range(1, a["iterations"] + 1):
        t0 = time.perf_counter()
        if c["source"] == "pool":
            candidates = pool
        elif c["source"] == "md":
            candidates = md_candidates(potential, seeds, c["temperatures"], c["steps"], c["every"], c["timestep"], c["gamma_break"], rng,
                                       engine=c["engine"])
        else:
            candidates = perturbed_candidates(seeds, c["count"], c["rattle"], c["strain"], rng)
        sel = select(potential, candidates, a["select"], a["criterion"], a["gamma_min"], rng, cluster, progress)
        entry = {"iteration": it, "candidates": len(candidates), "max_gamma_seen": sel.max_gamma_seen}
        if sel.converged:
            entry |= {"converged": True, "oracle_calls": calls, "n_train": len(train)}
            result.log.append(entry)
            log(f"iteration {it}: no candidate with gamma > {a['gamma_min']} among {len(candidates)}: converged")
            break
        picked = [candidates[k] for k in sel.index]
        if c["source"] == "pool":
            pool = [x for k, x in enumerate(pool) if k not in set(sel.index)]
        new, n_calls = label(picked, oracle, stress, log)
        calls += n_calls
        train = train + new
        potential, info = fit_potential(config.fit, train, progress, log, cluster, stop_on_labels=False)
        entry |= {"oracle_calls": calls, "n_train": len(train), "n_train_atoms": int(sum(len(x) for x in train)),
                  "selected": [{"gamma": g, "std_eV_atom": s, "what": x.info.get("candidate", "")}
                               for g, s, x in zip(sel.gamma, sel.std, picked)],
                  "fit": info, "seconds": time.perf_counter() - t0}
        if test is not None:
            entry["test"] = _test_errors(potential, test, cluster)
        result.log.append(entry)
        _report(entry, log)
        if staging is not None:
            _write_log(result.log, config, staging)
    result.potential, result.train = potential, train
    return result


def _read_frames(path: Path) -> list[Atoms]:
    from ase.io import read

    try:
        frames = read(path, index=":")
    except Exception as exc:
        raise HybridpotError(f"{path}: cannot read structures ({type(exc).__name__}: {exc})") from exc
    return [frames] if isinstance(frames, Atoms) else list(frames)


def _report(entry: dict[str, Any], log: Callable[[str], None]) -> None:
    msg = f"iteration {entry['iteration']}: {entry['oracle_calls']} oracle calls, {entry['n_train']} training structures"
    if "max_gamma_seen" in entry:
        msg += f", max gamma among {entry['candidates']} candidates {entry['max_gamma_seen']:.3g}"
    if "test" in entry:
        msg += f"; test E RMSE {entry['test']['energy_rmse_meV_atom']:.2f} meV/atom, F RMSE {entry['test'].get('force_rmse_eV_A', float('nan')):.4f} eV/A"
    log(msg)


def _write_log(log: list[dict[str, Any]], config: ActiveConfig, out_dir: Path) -> None:
    doc = {"config": _jsonable({**config.fit.sections, **config.sections}), "iterations": _jsonable(log)}
    write_text_atomic(out_dir / "active_log.json", json.dumps(doc, indent=1))


def _write_outputs(result: ActiveResult, config: ActiveConfig, out_dir: Path) -> None:
    import io

    from ase.io import write as ase_write


    _write_log(result.log, config, out_dir)
    buf = io.StringIO()
    ase_write(buf, result.train, format="extxyz")
    write_text_atomic(out_dir / "train.xyz", buf.getvalue())
    output = config.fit["output"]
    save(result.potential, out_dir / f"{output['name']}{MODEL_SUFFIX}",
         metadata={"active_learning": {"iterations": len(result.log) - 1, "oracle_calls": result.log[-1]["oracle_calls"]}})
    if output["plots"]:
        learning_curve_plot({"active": result.log}, out_dir / "learning_curve.png")


def learning_curve_plot(runs: dict[str, list[dict[str, Any]]], path: Path, title: str = "") -> Path:
    """Test errors against oracle calls (and the largest candidate gamma per iteration) for one
    or more logs (name -> iterations); written atomically as PNG."""

    fig, axes = _figure(3)
    for name, entries in runs.items():
        done = [e for e in entries if "test" in e]
        if done:
            calls = [e["oracle_calls"] for e in done]
            axes[0][0].plot(calls, [e["test"]["energy_rmse_meV_atom"] for e in done], "o-", label=name)
            axes[0][1].plot(calls, [e["test"].get("force_rmse_eV_A", np.nan) for e in done], "o-", label=name)
        seen = [(e["iteration"], e["max_gamma_seen"]) for e in entries if np.isfinite(e.get("max_gamma_seen", np.nan))]
        if seen:
            axes[0][2].semilogy(*zip(*seen), "o-", label=name)
    axes[0][0].set(xlabel="oracle calls", ylabel="test energy RMSE (meV/atom)", yscale="log")
    axes[0][1].set(xlabel="oracle calls", ylabel="test force RMSE (eV/A)", yscale="log")
    axes[0][2].set(xlabel="iteration", ylabel="largest candidate gamma")
    axes[0][2].axhline(1.0, color="0.6", lw=0.8)
    for ax in axes[0]:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
    return path
