"""Error report of a fitted model on any labelled data set (``hybridpot eval``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from hybridpot.dataset import read_dataset
from hybridpot.distributed import ClusterArg, connect
from hybridpot.errors import DataError
from hybridpot.fitting.checks import (conflicting_copies, conflicting_copies_findings, conflicting_copies_record, repeated_structures,
                                      shared_structures, shared_structures_message)
from hybridpot.fitting.outliers import check_outliers
from hybridpot.io.atomic import write_text_atomic
from hybridpot.io.modelfile import load
from hybridpot.metrics import format_table
from hybridpot.plots import parity_plots
from hybridpot.prediction import baseline_predictions, predict
from hybridpot.scoring import (baseline_only, config_type_table, errors, errors_by_config_type, errors_by_extrapolation,
                               extrapolation_text, worst_structures, worst_text)
from hybridpot.uq import extrapolation_grades


def evaluate_model(model_path: str | Path, data_path: str | Path, progress: bool = True, log: Callable[[str], None] = print,
                   accept_edited: bool = False, json_path: str | Path | None = None, plots_dir: str | Path | None = None,
                   cluster: ClusterArg = None) -> dict:
    """Errors of the hybrid and of its baseline alone (with the fit's reference energies), as ``hybridpot fit`` reports them.

    Args:
        accept_edited: evaluate a model file that fails its checksum (see :func:`hybridpot.io.modelfile.load`).
        json_path: also write the report (the rows, per config_type where the data have several) to this JSON file.
        plots_dir: also write the parity plots (energy, forces, stress) into this folder (created if needed).
        cluster: None (this process) or a Dask cluster (``"local:N"``, a scheduler address or an open
            :class:`~hybridpot.distributed.Cluster`) for the baseline's and the model's predictions; the report then
            says where they ran ("cluster").

    Returns:
        {"baseline only": metrics (when the model file has the fit's reference energies), "hybrid": metrics,
        "by_config_type": {"hybrid": {...}, "baseline only": {...}} (empty without several config_types),
        "worst": the structures with the largest errors (:func:`hybridpot.scoring.worst_structures`),
        "outliers": the labels' outlier check against the model's baseline (:func:`hybridpot.fitting.outliers.check_outliers`:
        structures or atoms far outside the rest, which the errors above include; a warning is logged for them),
        "conflicting_copies": copies of one structure with other labels (:func:`hybridpot.fitting.checks.conflicting_copies`,
        by position in the file; warned likewise)}.

    Raises:
        ModelFileError: a corrupt, edited or non-finite model file.
        DataError: a bad data file, or elements the model does not cover (naming the first structure with them).
    """
    potential = load(model_path, accept_edited=accept_edited)
    data = read_dataset(data_path)
    missing = [e for e in data.elements if e not in potential.elements]
    if missing:
        first = next(s for s, a in enumerate(data.frames) if set(a.get_chemical_symbols()) & set(missing))
        raise DataError(f"{data.source}: element(s) {missing} are not covered by the model {model_path} (it has "
                        f"{potential.elements}); first in {data.describe(first)}: evaluate structures of its elements only")
    with connect(cluster) as opened:
        bl = baseline_predictions(potential.baseline, data, progress=progress, cluster=opened)
        pred = predict(potential, data, progress=progress, baseline=bl, cluster=opened)
        where = {"cluster": opened.record()} if opened is not None else {}
    conflicts = conflicting_copies(data, repeated_structures(data))
    if conflicts:
        log(f"warning: {data.source}: " + "; ".join(conflicting_copies_findings(data, conflicts)) + " (the errors below include both)")
    outliers = check_outliers(data, bl if potential.baseline is not None else None)
    if outliers.findings:
        log(f"warning: {data.source}: " + "; ".join(outliers.findings) + " (the errors below include them)")
    train_keys = potential.metadata.get("data", {}).get("train", {}).get("structure_keys")  # None: a model file before them
    shared = shared_structures(train_keys, data) if train_keys else []
    if shared:
        log("warning: " + shared_structures_message(data, shared, f"the training set of {model_path}",
                                                    lambda b: f"its training structure {b}") + " (the errors below include them)")
    rows: dict[str, Any] = {"hybrid": errors(data, pred)}
    by_type = {"hybrid": errors_by_config_type(data, pred)}
    ref = potential.metadata.get("reference_energies_eV")
    base = None
    if ref is not None:
        base = baseline_only(data, bl, ref)
        rows = {"baseline only": errors(data, base)} | rows
        by_type["baseline only"] = errors_by_config_type(data, base)
    worst = worst_structures(data, pred)
    split = None  # the errors of the structures that extrapolate and of the rest, where the model has an active set
    uq = getattr(potential, "uq_data", None)  # None: a model file without uncertainty data (version 1)
    if uq is not None and uq.active_set is not None:
        split = errors_by_extrapolation(data, pred, extrapolation_grades(potential, data.frames))
    log(f"{data_path}: {len(data)} structures, {int(data.n_atoms.sum())} atoms")
    log(format_table(rows))
    if by_type["hybrid"]:
        log("by config_type:")
        log(config_type_table(by_type))
    log(f"largest errors:\n{worst_text(worst)}")
    if split is not None:
        log(f"extrapolation (MaxVol): {extrapolation_text(split)}")
    report = {"model": str(model_path), "data": str(data_path), **rows, "by_config_type": by_type if by_type["hybrid"] else {},
              "worst": worst, "outliers": {"checks": outliers.record, "findings": outliers.findings},
              "conflicting_copies": conflicting_copies_record(data, conflicts),
              "training_structures": None if train_keys is None else [int(data.index[a]) for a, _ in shared],
              "extrapolation": split, **where}
    if json_path is not None:
        write_text_atomic(Path(json_path), json.dumps(report, indent=1))
        log(f"wrote {json_path}")
    if plots_dir is not None:
        Path(plots_dir).mkdir(parents=True, exist_ok=True)
        name = Path(data_path).stem
        paths = parity_plots({name: data}, {name: pred}, {name: base} if base is not None else None, Path(plots_dir))
        log(f"wrote {', '.join(str(p) for p in paths)}")
    return report
