"""The fit job behind ``hybridpot fit CONFIG.toml``: read, check, fit, evaluate, report, write.

Every check (output folder, configuration, files, labels and their units, elements, cutoff,
memory) runs before the fit; the outputs are staged beside the output folder and moved into it
in one step at the end (:mod:`hybridpot.io.outdir`). With ``[fit] cluster``, one Dask cluster is opened for the whole
job and every pass over the data runs on it (:mod:`hybridpot.distributed`; report.json "cluster" lists the passes).
"""

from __future__ import annotations

import copy
import json
import platform
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from hybridpot import __version__
from hybridpot.arrays import release_memory, reuse_freed_blocks
from hybridpot.dataset import Dataset, read_dataset
from hybridpot.distributed import Cluster, ClusterArg, connect
from hybridpot.empirical import EmpiricalPotential, load
from hybridpot.errors import ConfigError, OutlierError, OutputError, UnitsError
from hybridpot.fitting.assembly import Weights, target_scales
from hybridpot.fitting.checks import (check_baseline_finite, check_cutoff, check_data, check_enough_rows, check_fitted,
                                      check_solve_memory, conflicting_copies, conflicting_copies_findings, conflicting_copies_record,
                                      repeated_structures, shared_structures, shared_structures_message)
from hybridpot.fitting.cofit import cofit
from hybridpot.fitting.config import FitConfig, settings_of
from hybridpot.fitting.linear import fit_linear_joint
from hybridpot.fitting.outliers import check_outliers, outliers_message
from hybridpot.fitting.solver import LinearSolution
from hybridpot.fitting.tune import tune_descriptor
from hybridpot.fitting.units import check_units, units_message
from hybridpot.io.atomic import write_text_atomic
from hybridpot.io.modelfile import save
from hybridpot.io.outdir import OutputDir
from hybridpot.metrics import format_table
from hybridpot.plots import parity_plots, tune_plot
from hybridpot.potential import HybridPotential
from hybridpot.prediction import BaselinePredictions, baseline_predictions, predict, reference_energies
from hybridpot.registry import baselines, descriptors, models
from hybridpot.scoring import (baseline_only, config_type_index, config_type_table, errors, errors_by_config_type,
                               errors_by_extrapolation, extrapolation_text, worst_structures, worst_text)
from hybridpot.uq import attach_uq, extrapolation_grades

MODEL_SUFFIX = ".hybridpot.json"
#: the folder of the output that holds a co-fitted baseline's potential file(s)
REFITTED_BASELINE = "baseline"


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class StageTimer:
    """Wall time and peak memory (so far) at the end of each named stage."""

    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        yield
        release_memory()  # what the stage freed goes back to the system before the next one allocates
        self.stages[name] = {"seconds": time.perf_counter() - t0, "peak_memory_MiB": peak_memory_mib()}

    @property
    def total(self) -> float:
        return sum(s["seconds"] for s in self.stages.values())


@dataclass
class FitResult:
    potential: HybridPotential
    report: dict[str, Any]
    model_path: Path
    output_dir: Path


def make_baseline(config: FitConfig):
    """The baseline potential named by ``[baseline]`` (None for type = 'none'): a file, read by the
    registered type of its name, or an inline type built from its settings."""
    b = config["baseline"]
    if b["type"] == "none":
        return None
    if b["type"] == "file":
        return load(b["file"])
    return baselines.get(b["type"]).build(settings_of(config, "baseline"), f"{config.source} [baseline]")


def weights_from_config(fit: Mapping, scales: Mapping[str, float] | None = None) -> tuple[Weights, dict]:
    """The row weights of a validated ``[fit]`` section, and how to choose the energy weight by
    cross-validation (``energy_weight = "cv"``): keyword arguments ``energy_weights`` (candidates,
    factors of the returned energy weight) and ``energy_weight_targets`` of
    :func:`~hybridpot.fitting.linear.fit_linear`, empty when the energy weight is a fixed number.

    ``scales``: the natural scale of each kind (:func:`~hybridpot.fitting.assembly.target_scales`);
    given, the weights are divided by their squares (``[fit] weight_scale = "spread"``)."""
    cv = fit["energy_weight"] == "cv"
    weights = Weights(energy=1.0 if cv else float(fit["energy_weight"]), force=fit["force_weight"], stress=fit["stress_weight"],
                      config=fit["config_weights"], baseline_stress=fit["baseline_stress_weight"])
    if scales is not None:
        weights = weights.scaled(scales)
    targets = fit["energy_weight_targets"]
    choice = {"energy_weights": [float(w) for w in fit["energy_weight_candidates"]],
              "energy_weight_targets": tuple(map(float, targets)) if targets else None} if cv else {}
    return weights, choice


def config_weights(config: FitConfig, data: Dataset, baseline: BaselinePredictions, elements: list[str]
                   ) -> tuple[Weights, dict, dict[str, Any]]:
    """:func:`weights_from_config` of ``config`` for the residual targets of ``data`` over ``baseline``
    (normalised by their scales where ``[fit] weight_scale = "spread"``), and the record for
    report.json: the weight scale, the scales (eV/atom, eV/A, eV/atom), what the scales leave out (the outliers
    :func:`~hybridpot.fitting.outliers.check_outliers` flags, where the fit goes on with them) and the weights used."""
    f = config["fit"]
    record: dict[str, Any] = {"weight_scale": f["weight_scale"]}
    scales = None
    if f["weight_scale"] == "spread":
        outliers = check_outliers(data, baseline)
        scales = target_scales(data, baseline, elements, outliers)
        if outliers.energy_structures or outliers.force_atoms:
            record["scales_leave_out"] = {"energy_structures": len(outliers.energy_structures),
                                          "force_atoms": len(outliers.force_atoms)}
    weights, choice = weights_from_config(f, scales)
    return weights, choice, record | {"scales": scales, "effective": weights.as_dict()}


def fit_residual(config: FitConfig, potential: HybridPotential, data: Dataset, baseline: BaselinePredictions,
                 progress: bool = True, log: Callable[[str], None] = print, timer: StageTimer | None = None,
                 cluster: ClusterArg = None) -> tuple[LinearSolution | None, Weights, dict[str, Any]]:
    """Fit ``potential.model`` (in place) to the residual of ``data`` over the ``baseline`` predictions, as configured.

    Models that are linear in their parameters (:attr:`hybridpot.registry.ModelType.linear`) are
    solved (:func:`fit_residual_joint` of this one; the solution is kept as ``potential.solution``), the others trained
    by their type's ``train``; ``timer`` records the stage ("design matrix + solve" or "train TYPE").

    Returns:
        (solution of a model linear in its parameters, else None; the row weights used, with the energy
        weight chosen by cross-validation where asked; the record for report.json's "fit").
    """
    f, m, b = config["fit"], config["model"], config["baseline"]
    entry = models.get(m["type"])
    if entry.linear:
        return fit_residual_joint(config, [potential], data, baseline, progress, [log], timer, cluster)[0]
    timer = timer or StageTimer()
    weights, _, weight_record = config_weights(config, data, baseline, list(potential.model.elements))
    with timer(f"train {entry.name}"):
        record = entry.train(potential, data, baseline, weights, settings_of(config, "model"), seed=f["seed"],
                             progress=progress, log=log)
    record["weights"] = weight_record
    if potential.baseline is not None and (b["check"] or b["mode"] != "on"):
        reason = (f"not done for a {entry.name} model (it is trained, not solved: no cheap CV from the solver's factors); "
                  "compare with a [baseline] type = 'none' fit")
        record["baseline_check"] = {"skipped": reason}
        log(f"baseline check {reason}")
    return None, weights, record


def fit_residual_joint(config: FitConfig, potentials: Sequence[HybridPotential], data: Dataset, baseline: BaselinePredictions,
                       progress: bool = True, logs: Sequence[Callable[[str], None]] | None = None, timer: StageTimer | None = None,
                       cluster: ClusterArg = None) -> list[tuple[LinearSolution, Weights, dict[str, Any]]]:
    """Solve each of ``potentials`` (models linear in their parameters; several: what
    :func:`hybridpot.fitting.linear.fit_linear_joint` fits from one design pass, the tune's zeta candidates) in place for
    the residual of ``data`` over the ``baseline`` predictions, as ``config`` says (its model section's keys other than
    those the potentials differ in); each potential's lines go to its own of ``logs`` (None: print).

    With a baseline and ``[baseline] check`` (or ``mode`` other than "on"), each also gets the baseline check
    (:func:`hybridpot.fitting.linear.baseline_check`), logged and in the record's "baseline_check"; where its "used" is
    "pure_ml" the model was fitted to DFT itself and the caller must drop the baseline. Every fit scores its k-fold CV
    folds (``solution.cv_errors`` and the held-out energy errors): the "cv" and "local" noise models and the energy
    intervals of its uncertainty data. The solution is kept as ``potential.solution``.

    ``cluster``: an open :class:`~hybridpot.distributed.Cluster` for the design-matrix pass (None: the ``[fit] cluster``
    of ``config``, opened for this pass alone where set).

    Returns:
        per potential: (its solution; the row weights used, with the energy weight chosen by cross-validation where
        asked; the record for report.json's "fit").
    """
    f, m, b = config["fit"], config["model"], config["baseline"]
    cluster = f["cluster"] if cluster is None else cluster
    logs = [print] * len(potentials) if logs is None else logs
    elements = list(potentials[0].model.elements)
    weights, energy_weight_choice, weight_record = config_weights(config, data, baseline, elements)
    timer = timer or StageTimer()
    check = potentials[0].baseline is not None and (b["check"] or b["mode"] != "on")
    pure_weights = pure_record = None
    if check:  # pure ML: DFT itself as the target, weights normalised by its own spread
        pure_weights, _, pure_record = config_weights(config, data, baseline_predictions(None, data, progress=False), elements)
    with timer("design matrix + solve"):
        solved = fit_linear_joint(potentials, data, baseline, weights, m["regularization"], m["cv_folds"], f["seed"], f["batch_atoms"],
                                  progress, **energy_weight_choice, pure_weights=pure_weights, mode=b["mode"], cv_score=True,
                                  cluster=cluster)
    return [_solved_record(sol, used, potential, data, weight_record, pure_record, b, log)
            for (sol, used), potential, log in zip(solved, potentials, logs)]


def _solved_record(sol: LinearSolution, weights: Weights, potential: HybridPotential, data: Dataset, weight_record: dict[str, Any],
                   pure_record: dict[str, Any] | None, b: Mapping[str, Any],
                   log: Callable[[str], None]) -> tuple[LinearSolution, Weights, dict[str, Any]]:
    """:func:`fit_residual_joint`'s record of one solved potential (and its log lines); keeps ``sol`` as its solution."""
    record: dict[str, Any] = {}
    weight_record = dict(weight_record)
    if sol.baseline_check:
        record["baseline_check"] = sol.baseline_check
        for line in baseline_check_lines(sol.baseline_check, potential, b["mode"], b["refit"]):
            log(line)
        if sol.baseline_check["used"] == "pure_ml":  # the model fits DFT itself: the caller drops the baseline
            weight_record = dict(pure_record)
    weight_record["effective"] = weights.as_dict()  # with the energy weight chosen by CV
    record["weights"] = weight_record
    left_out = weight_record.get("scales_leave_out")
    log("weights (" + ("normalised by the targets' spread " + ", ".join(f"{k} {v:.3g}" for k, v in weight_record["scales"].items())
                       if weight_record["scales"] else "absolute")
        + (f"; the spread leaves out the outliers: {left_out['energy_structures']} structures' energies, "
           f"{left_out['force_atoms']} atoms' forces" if left_out else "")
        + "): " + ", ".join(f"{k} {v:.4g}" for k, v in weights.as_dict().items()))
    if sol.energy_weight_cv:
        cv = record["energy_weight_cv"] = sol.energy_weight_cv
        log(f"energy weight chosen by {cv['n_folds']}-fold CV: {cv['chosen']:g} (candidates {cv['candidates']})"
            + ("; at the edge of the candidates: consider widening [fit] energy_weight_candidates" if cv["at_edge"] else ""))
    record["solver"] = {
        "method": sol.method, "lambda": sol.lam, "alpha": sol.alpha, "beta": sol.beta, "rows": sol.n_rows,
        "effective_parameters": sol.dof, "condition_number": sol.condition, "log_evidence": sol.log_evidence,
    }
    if sol.cv_errors:
        record["cv"] = cv_record(sol, data)
        log("k-fold CV of this fit (held-out structures): " + ", ".join(f"{k} {v:.4g}" for k, v in sol.cv_errors.items())
            + "".join(f"; energy MAE of {t} {v:.4g}" for t, v in record["cv"].get("energy_mae_by_config_type_meV_atom", {}).items()))
    potential.solution = sol
    return sol, weights, record


def cv_record(sol: LinearSolution, data: Dataset) -> dict[str, Any]:
    """report.json's fit.cv: the k-fold CV errors of the fit as solved (``sol.cv_errors``: RMSE per kind, the held-out
    energy MAE, meV/atom) and, where ``data`` (the training set, in the fit's order) has several config_types
    (:func:`hybridpot.scoring.config_type_index`), the held-out energy MAE of each (meV/atom): where the fit
    generalises worst."""
    out: dict[str, Any] = dict(sol.cv_errors)
    groups = config_type_index(data) if sol.cv_energy_errors is not None else {}
    if groups:
        held = 1000.0 * np.abs(sol.cv_energy_errors)
        out["energy_mae_by_config_type_meV_atom"] = {t: float(held[index].mean()) for t, index in groups.items()}
    return out


def baseline_check_lines(check: Mapping[str, Any], potential: HybridPotential, mode: str, refit: Sequence[str] = ()) -> list[str]:
    """The fit log's lines of the baseline check (:func:`hybridpot.fitting.linear.baseline_check`): the three CV
    errors side by side, and a warning with the likely cause and the remedies when the hybrid is worse than pure ML
    (``refit``: the baseline parameters co-fitted in this fit, [baseline] refit)."""
    def fmt(e: Mapping[str, float]) -> str:
        return (f"E {e['energy_rmse_meV_atom']:.3f} meV/atom" if "energy_rmse_meV_atom" in e else "E -") + (
            f", F {e['force_rmse_eV_A']:.4f} eV/A" if "force_rmse_eV_A" in e else "")

    lines = [f"baseline check ({check['n_folds']}-fold CV RMSE on the training set): hybrid {fmt(check['hybrid'])} | "
             f"pure ML {fmt(check['pure_ml'])} | baseline alone {fmt(check['baseline_only'])}"]
    if check["better"] == "pure_ml":
        rc = float(potential.descriptor.rcut)
        lines.append(
            f"warning: the baseline makes the fit worse (hybrid {fmt(check['hybrid'])} against pure ML {fmt(check['pure_ml'])}"
            + (f", with {', '.join(refit)} co-fitted" if refit else "") + "). "
            "Likely cause: DFT - baseline has features the descriptor cannot represent, e.g. the baseline's sharp cutoff "
            f"(Tersoff's R - D .. R + D, a hard lj/cut) or interactions beyond the descriptor's rcut = {rc:g} A. "
            + ("Using pure ML ([baseline] mode = 'auto')." if check["used"] == "pure_ml" else
               "Keeping the baseline ([baseline] mode = 'on'): set mode = 'auto' to keep the better of the two, or use a smoother "
               "baseline or a descriptor that resolves its cutoff.")
            + ("" if refit else " " + _refit_hint(potential.baseline)))
    elif mode == "off":
        lines.append("note: [baseline] mode = 'off': fitted pure ML although the hybrid's CV score is better")
    return lines


def _refit_hint(baseline: EmpiricalPotential) -> str:
    """How to co-fit ``baseline``'s parameters with the residual, the remedy measured on a rough baseline (benchmarks/README.md)."""
    names = sorted(dict(baseline.named_parameters()))  # a native potential's; a LAMMPS baseline's live in its files
    known = f" (its parameters: {', '.join(names)})" if names else " (names as 'FILE:PATH' into its potential file)"
    return ("To make it useful, co-fit its parameters with the residual: [baseline] refit = [...]" + known + ", with "
            "refit_starts = 3 (on mlearn Si, the Tersoff's repulsion, attraction and switch co-fitted so gave a linear hybrid "
            "more accurate than pure ML on every 10% and 25% subset measured: benchmarks/README.md, 'Making the rough Tersoff baseline useful').")


def committee_resamples(record: Mapping[str, Any]) -> list[list[int]] | None:
    """The members' bootstrap resamples from :func:`fit_residual`'s record of an NN committee, else None."""
    committee = record.get("nn_committee")
    return [m["resample"] for m in committee["members"]] if committee and committee["bootstrap"] else None


def make_potential(config: FitConfig, elements: list[str], baseline) -> HybridPotential:
    """Baseline + descriptor + (unfitted) model as configured (each built by its registered type)."""
    try:
        descriptor = descriptors.get(config["descriptor"]["type"]).build(settings_of(config, "descriptor"), elements)
        model = models.get(config["model"]["type"]).build(settings_of(config, "model"), elements, descriptor.n_features)
    except ConfigError as exc:
        raise ConfigError(f"{config.source}: {exc}") from exc
    return HybridPotential(baseline, descriptor, model)


def check_labels(config: FitConfig, sets: Mapping[str, tuple[Dataset, BaselinePredictions | None]],
                 log: Callable[[str], None] = print, stop: bool = True, section: str = "[data]") -> dict[str, Any]:
    """The labels' sanity checks of each data set against its baseline predictions (None: no baseline): first copies of
    one structure with other labels (:func:`hybridpot.fitting.checks.conflicting_copies`), then single
    structures and atoms far outside the rest of their set (:func:`hybridpot.fitting.outliers.check_outliers`), then the
    set's units and sign (:func:`hybridpot.fitting.units.check_units`; without a baseline against typical DFT ranges).
    In that order because one bad structure can move a whole set's comparison with the baseline: it is named as
    itself, not as a unit mistake of the set.

    Returns:
        the record for report.json's "data_checks": per set, the unit comparisons and findings, and the outlier record
        and findings ("outliers"), and the copies of one structure with other labels ("conflicting_copies": positions
        in the file, largest differences).

    Args:
        stop: False: findings are warnings whatever the keys say (active learning's later iterations: the oracle's
            labels are paid for, and the loop goes on).
        section: the table where the user sets the keys, for messages (``hybridpot active``: "[active]").

    Raises:
        OutlierError: copies with other labels or outliers, unless ``[data] check_outliers = false`` or ``stop`` is False;
        UnitsError: a likely unit or sign mistake, unless ``[data] check_units = false`` or ``stop`` is False (in
            both cases the findings are logged as warnings and recorded).
    """
    d = config["data"]
    record: dict[str, Any] = {"check_units": d["check_units"], "check_outliers": d["check_outliers"]}

    def stop_or_warn(findings: list[str], key: str, error: Callable[[], Exception], source: str) -> None:
        if not findings:
            return
        if d[key] and stop:
            raise error()
        log(f"warning: {source}: " + "; ".join(findings) + (f" ({section} {key} = false: fitting anyway)" if stop else ""))

    for name, (data, bl) in sets.items():
        conflicts = conflicting_copies(data, repeated_structures(data))
        contradicting = conflicting_copies_findings(data, conflicts)
        stop_or_warn(contradicting, "check_outliers", lambda: OutlierError(
            f"{data.source}: some labels contradict each other. " + ". ".join(contradicting) + ". Keep the copy whose "
            f"calculation is right and remove the others, or set {section} check_outliers = false to fit them all"), data.source)
        outliers = check_outliers(data, bl)
        stop_or_warn(outliers.findings, "check_outliers", lambda: OutlierError(outliers_message(outliers, section)), data.source)
        check = check_units(data, bl)
        messages = [f.message for f in check.findings]
        record[name] = {"checks": check.record, "findings": messages,
                        "outliers": {"checks": outliers.record, "findings": outliers.findings},
                        "conflicting_copies": conflicting_copies_record(data, conflicts)}
        stop_or_warn(messages, "check_units", lambda: UnitsError(units_message(check, section)), data.source)
    return record


def run_fit(config: FitConfig, progress: bool = True, log: Callable[[str], None] = print) -> FitResult:
    """Run the whole fit described by ``config`` and write its outputs.

    Order: the output folder (locked, checked: :class:`~hybridpot.io.outdir.OutputDir`), the data
    (read and checked), the potential and the checks that need it (cutoff, memory), the baseline's
    predictions and the labels' unit checks; only then the fit. Everything is written into the
    staging folder and moved into ``[output] dir`` at the end, in one step. With ``[fit] cluster``, one Dask cluster
    serves every pass over the data (baseline, design matrix, evaluation, uncertainty data). The process's C heap
    keeps freed blocks up to 1 GiB for reuse from here on (:func:`~hybridpot.arrays.reuse_freed_blocks`).
    """
    reuse_freed_blocks()
    out = config["output"]
    with OutputDir(out["dir"], config.kind, out["overwrite"], config.source) as outdir:
        with connect(config["fit"]["cluster"]) as cluster:
            potential, report, preds, base_preds, sets = _fit_and_report(config, progress, log, cluster)
        try:
            _write_outputs(potential, report, preds, base_preds, sets, outdir.path / f"{out['name']}{MODEL_SUFFIX}", out["plots"])
            outdir.commit()
        except OSError as exc:
            raise OutputError(f"{config.source}: writing the outputs to {out['dir']} failed ({type(exc).__name__}: {exc}); "
                              f"{out['dir']} was left as it was") from exc
    model_path = out["dir"] / f"{out['name']}{MODEL_SUFFIX}"
    rows = {}
    fitted = "hybrid" if report["fit"]["baseline_mode"] == "hybrid" else "pure ML"
    for name in sets:
        rows[f"baseline only {name}"] = report["baseline_only"][name]
        rows[f"{fitted} {name}"] = report[name]
    log(format_table(rows))
    shown = "test" if "test" in report["by_config_type"] else "train"  # the other set's are in report.json
    for name, by_type in ((k, v) for k, v in report["by_config_type"].items() if k == shown):
        log(f"{name} by config_type:")
        log(config_type_table(by_type))
    worst_set = "test" if "test" in report["worst"] else "train"
    log(f"largest {worst_set} errors (report.json worst):\n{worst_text(report['worst'][worst_set])}")
    log("stages: " + ", ".join(f"{k} {v['seconds']:.1f} s" for k, v in report["timings"].items())
        + f"; total {report['total_seconds']:.1f} s, peak memory {report['peak_memory_MiB']:.0f} MiB")
    log(f"wrote {model_path}")
    if "refitted_baseline" in report["fit"].get("cofit", {}):
        log(f"wrote the refitted baseline {out['dir'] / report['fit']['cofit']['refitted_baseline']}")
    return FitResult(potential, report, model_path, out["dir"])


def _fit_and_report(config: FitConfig, progress: bool, log: Callable[[str], None], cluster: Cluster | None = None) -> tuple:
    """Read, check, fit and evaluate: (potential, report, predictions, baseline-only predictions and
    the data sets, each by set name). ``cluster``: the open Dask cluster of ``[fit] cluster`` for every pass over the data."""
    timer = StageTimer()
    for note in config.notes:
        log(f"warning: {config.source}: {note}")
    f = config["fit"]
    torch.manual_seed(f["seed"])
    with timer("read data"):
        train_all = read_dataset(config["data"]["train"])
        test = read_dataset(config["data"]["test"]) if config["data"]["test"] else None
        baseline = make_baseline(config)
        check_data(config, train_all, test, baseline)
        train = train_all
        if f["train_fraction"] < 1:
            rng = np.random.default_rng(f["seed"])
            n = max(1, int(round(f["train_fraction"] * len(train_all))))
            train = train_all.subset(np.sort(rng.choice(len(train_all), size=n, replace=False)))
        elements = sorted(set(train.elements) | set(test.elements if test else []), key=_z)
        potential = make_potential(config, elements, baseline)
        check_cutoff(config, train, elements, potential.descriptor.rcut)
        check_solve_memory(config, potential, train)
        if not f["tune"]:  # a tune refuses such candidates itself and tries others
            check_enough_rows(config, potential, train)
    log(f"training on {len(train)} structures ({int(train.n_atoms.sum())} atoms)"
        + (f", testing on {len(test)} ({int(test.n_atoms.sum())} atoms)" if test else ""))
    if cluster is not None:
        log(f"passes over the data on the Dask cluster {cluster.spec} ({cluster.n_workers} workers)"
            + ("" if models.get(config["model"]["type"]).linear else f"; the {config['model']['type']} model trains in this process"))
    fit_info: dict[str, Any] = {}
    with timer("baseline"):
        bl_train = baseline_predictions(potential.baseline, train, f["batch_atoms"], progress, cluster, "baseline train")
        bl_test = baseline_predictions(potential.baseline, test, f["batch_atoms"], progress, cluster, "baseline test") if test else None
    if baseline is not None:
        for data, bl in ((train, bl_train), (test, bl_test)):
            if data is not None:
                check_baseline_finite(data, bl, baseline.source)
    data_checks = check_labels(config, {"train": (train, bl_train if baseline else None)}
                               | ({"test": (test, bl_test if baseline else None)} if test else {}), log)
    repeats = repeated_structures(train)
    data_checks["train_repeats"] = [{"structure": int(train.index[a]), "first": int(train.index[b])} for a, b in repeats]
    if repeats:
        shown = "; ".join(f"{train.describe(a)} = {train.describe(b)}" for a, b in repeats[:3])
        log(f"warning: {len(repeats)} of the {len(train)} training structures of {train.source} repeat earlier ones ({shown}"
            f"{f' and {len(repeats) - 3} more' if len(repeats) > 3 else ''}): each copy adds its rows again, so the structure "
            "weighs as many times; keep one copy unless that is meant")
    if test is not None:
        shared = shared_structures(train.structure_keys, test)
        data_checks["test_in_train"] = [{"test": int(test.index[a]), "train": int(train.index[b])} for a, b in shared]
        if shared:
            log("warning: " + shared_structures_message(test, shared, f"the training set {train.source}",
                                                        lambda b: f"training {train.describe(b)}"))
        relabelled = conflicting_copies(test, shared, train)
        data_checks["test_in_train_other_labels"] = conflicting_copies_record(test, relabelled, train)
        if relabelled:
            log(f"warning: {test.source}: " + "; ".join(conflicting_copies_findings(
                test, relabelled, original=train, consequence="its test error is against labels the fit was given otherwise")))
    if config["baseline"]["refit"]:
        with timer("co-fit baseline"):
            fit_info["cofit"] = cofit(potential, train, config_weights(config, train, bl_train, elements)[0], config, progress=progress,
                                      log=log)
        with timer("baseline (co-fitted)"):
            bl_train = baseline_predictions(potential.baseline, train, f["batch_atoms"], progress, cluster, "baseline train")
            bl_test = baseline_predictions(potential.baseline, test, f["batch_atoms"], progress, cluster, "baseline test") if test else None
    tuned = None
    if f["tune"]:
        with timer("tune descriptor"):
            fit_info["tune"], tuned = tune_descriptor(
                config, train, lambda cfg: make_potential(cfg, elements, potential.baseline),
                lambda cfg, pots, logs: fit_residual_joint(cfg, pots, train, bl_train, False, logs, None, cluster), log, cluster)
        config = config.with_settings(fit_info["tune"]["chosen"])  # section -> the settings the search chose
        potential = tuned.potential if tuned is not None else make_potential(config, elements, potential.baseline)
    if tuned is not None:  # the chosen candidate's fit, as fit_residual made it during the search
        sol, weights, record = tuned.solution, tuned.weights, tuned.record
        for line in tuned.log:
            log(line)
    else:
        sol, weights, record = fit_residual(config, potential, train, bl_train, progress, log, timer, cluster)
    fit_info["baseline_mode"] = record.get("baseline_check", {}).get("used", "hybrid" if baseline is not None else "pure_ml")
    bl_fit_train, bl_fit_test = bl_train, bl_test  # what the model was fitted over (zeros once the baseline is dropped)
    if baseline is not None and fit_info["baseline_mode"] == "pure_ml":
        # pure ML chosen: the model loads, exports and evaluates without the baseline
        solution, potential = potential.solution, HybridPotential(None, potential.descriptor, potential.model)
        potential.solution = solution
        bl_fit_train = baseline_predictions(None, train, progress=False)
        bl_fit_test = baseline_predictions(None, test, progress=False) if test else None
    check_fitted(potential)
    fit_info.update(record)
    report: dict[str, Any] = {"config": _jsonable(config.sections), "config_notes": list(config.notes), "fit": fit_info,
                              "data_checks": data_checks}
    ref = reference_energies(train, bl_train, elements)
    with timer("evaluate"):
        sets = {"train": train} | ({"test": test} if test else {})
        preds, base_preds = {}, {}
        for name, data in sets.items():
            bl = bl_train if name == "train" else bl_test
            preds[name] = predict(potential, data, f["batch_atoms"], progress, desc=f"evaluate {name}",
                                  baseline=bl_fit_train if name == "train" else bl_fit_test, cluster=cluster)
            base_preds[name] = baseline_only(data, bl, dict(zip(elements, map(float, ref))))
            report[name] = errors(data, preds[name])
        report["baseline_only"] = {name: errors(data, base_preds[name]) for name, data in sets.items()}
        report["baseline_only"]["reference_energies_eV"] = dict(zip(elements, map(float, ref)))
        report["worst"] = {name: worst_structures(data, preds[name]) for name, data in sets.items()}
        report["by_config_type"] = {}
        for name, data in sets.items():
            hybrid = errors_by_config_type(data, preds[name])
            if hybrid:
                report["by_config_type"][name] = {"hybrid": hybrid, "baseline only": errors_by_config_type(data, base_preds[name])}
    # --- uncertainty data (hybridpot.uq): posterior + noise, MaxVol active set, reference energies

    with timer("uncertainty data"):
        report["uq"] = attach_uq(potential, train, bl_fit_train, weights, solution=sol, predictions=preds["train"],
                                 reference_energies=dict(zip(elements, map(float, ref))), batch_atoms=f["batch_atoms"],
                                 committee_resamples=committee_resamples(record), cluster=cluster, progress=progress)
    uq = report["uq"]
    if uq.get("energy_interval_factors"):
        local = uq.get("local_noise")
        log(f"uncertainty: energy intervals +- {', '.join(f'{q:.3g} std ({k}%)' for k, q in uq['energy_interval_factors'].items())}, "
            f"calibrated on the training structures' held-out errors"
            + (f"; each structure's energy noise from its {local['neighbours']} nearest training structures" if local else ""))
    if "error" in report["uq"]["active_set"]:
        which = report["uq"]["active_set"].get("missing_elements", "any element")
        log(f"note: no extrapolation grade (MaxVol active set) for {which}: {report['uq']['active_set']['error']}")
    elif test is not None:  # are the large test errors where the model says it extrapolates?
        with timer("test extrapolation"):
            report["test_extrapolation"] = errors_by_extrapolation(test, preds["test"], extrapolation_grades(potential, test.frames))
        log(f"test extrapolation (MaxVol): {extrapolation_text(report['test_extrapolation'])}")
    # ---
    report["data"] = {
        "train": {"path": str(config["data"]["train"]), "sha256": train_all.checksum(), "n_used": len(train)},
        **({"test": {"path": str(config["data"]["test"]), "sha256": test.checksum()}} if test else {}),
    }
    if cluster is not None:  # where the passes ran: the scheduler, its workers, each pass's batches and wall time
        report["cluster"] = cluster.record()
    report["written_by"] = written_by()
    report["timings"] = {k: v for k, v in timer.stages.items()}
    report["total_seconds"] = timer.total
    report["peak_memory_MiB"] = peak_memory_mib()
    return potential, report, preds, base_preds, sets


def _z(symbol: str) -> int:
    from ase.data import atomic_numbers

    return atomic_numbers[symbol]


def written_by() -> dict[str, Any]:
    """What wrote a report: hybridpot's version, the time (UTC, ISO 8601), the host and the versions of the packages
    the numbers depend on."""
    versions = {"python": platform.python_version()}
    for package in ("torch", "numpy", "ase", "lammps"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"hybridpot_version": __version__, "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "platform": platform.platform(), "versions": versions}


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    return x


def _write_outputs(potential, report, preds, base_preds, sets, model_path: Path, plots: bool) -> None:
    """Model file, report.json, the parity plots and (after a tune) tune.png, into the folder of ``model_path`` (the staging
    folder)."""

    out_dir = model_path.parent
    cofit_record = report["fit"].get("cofit")
    if cofit_record is not None and potential.baseline is not None:
        # the refitted baseline as its own potential file(s), usable without hybridpot (a copy: the potential keeps its own path)
        written = copy.deepcopy(potential.baseline).write(out_dir / REFITTED_BASELINE / potential.baseline.file_name)
        cofit_record["refitted_files"] = sorted(p.relative_to(out_dir).as_posix() for p in (out_dir / REFITTED_BASELINE).iterdir())
        cofit_record["refitted_baseline"] = written.relative_to(out_dir).as_posix()
    metadata = {k: report[k] for k in ("data", "fit", "config")}
    # the training structures' digests (not in report.json): hybridpot eval names them among the structures it evaluates
    metadata["data"] = {**report["data"], "train": {**report["data"]["train"], "structure_keys": sets["train"].structure_keys}}
    metadata["reference_energies_eV"] = report["baseline_only"]["reference_energies_eV"]
    save(potential, model_path, metadata=metadata)
    write_text_atomic(out_dir / "report.json", json.dumps(report, indent=1))
    if plots:
        parity_plots(sets, preds, base_preds, out_dir)
        if report["fit"].get("tune"):
            tune_plot(report["fit"]["tune"], out_dir)
