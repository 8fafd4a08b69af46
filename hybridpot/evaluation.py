"""Error report of a fitted model on any labelled data set (``hybridpot eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from hybridpot.dataset import read_dataset
from hybridpot.errors import DataError
from hybridpot.io.modelfile import load
from hybridpot.metrics import error_metrics, format_table
from hybridpot.prediction import baseline_predictions, predict


def evaluate_model(model_path: str | Path, data_path: str | Path, progress: bool = True, log: Callable[[str], None] = print,
                   accept_edited: bool = False) -> dict:
    """Errors of the hybrid and of its baseline alone (with the fit's reference energies).

    Args:
        accept_edited: evaluate a model file that fails its checksum (see :func:`hybridpot.io.modelfile.load`).

    Returns:
        {"hybrid": metrics, "baseline_only": metrics}.

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
    pred = predict(potential, data, progress=progress)
    rows = {"hybrid": error_metrics(pred["energy"], data.energy, data.n_atoms, pred["forces"], data.forces, pred["stress"], data.stress)}
    ref = potential.metadata.get("reference_energies_eV")
    if ref is not None:
        bl = baseline_predictions(potential.baseline, data, progress=progress)
        energy = bl.energy + data.composition(list(ref)) @ np.array(list(ref.values()))
        rows = {"baseline only": error_metrics(energy, data.energy, data.n_atoms, bl.forces, data.forces)} | rows
    log(f"{data_path}: {len(data)} structures, {int(data.n_atoms.sum())} atoms")
    log(format_table(rows))
    return rows
