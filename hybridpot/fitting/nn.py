"""Training per-element neural networks on residual energies, forces (and stresses).

Descriptors and their pair-form gradients are computed once for every training structure;
each pass over the data then costs only the networks: E = sum_i net(B_i), g_i = dE/dB_i (kept in the
autograd graph), h_p = g_{i_p} . dB_p, forces F = sum_{p: i_p = a} h_p - sum_{p: j_p = a} h_p
and virials W = -sum_p r_p (x) h_p. The loss uses the same normalised weights as the linear
fit. Structures are split (seeded, one by one) into training and validation sets; training stops early
when the validation loss has not improved for ``patience`` iterations (L-BFGS) or epochs (Adam)
and the best state is kept.

Two optimisers: full-batch L-BFGS (the default; on the mlearn sets it reaches 4-6x lower held-out
force errors than mini-batch Adam, benchmarks/results/mlearn_search.md) and mini-batch Adam
(cheaper per step, for data sets where one pass is expensive).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from hybridpot.dataset import Dataset
from hybridpot.fitting.assembly import Weights
from hybridpot.models.committee import CommitteeModel
from hybridpot.models.nn import NNModel, NNSettings
from hybridpot.neighbors import build_graph
from hybridpot.potential import HybridPotential, voigt_to_matrix
from hybridpot.prediction import BaselinePredictions, reference_energies
from hybridpot.registry import ModelType
from hybridpot.system import AtomicSystem


@dataclass
class _Batch:
    """Precomputed inputs and residual targets of a group of structures."""

    B: torch.Tensor  # (N, K)
    dB: torch.Tensor  # (P, K, 3)
    i: torch.Tensor  # (P,) local centre index
    j: torch.Tensor  # (P,)
    r: torch.Tensor  # (P, 3)
    types: torch.Tensor  # (N,)
    batch: torch.Tensor  # (N,) local structure index
    n_atoms: torch.Tensor  # (S,)
    energy: torch.Tensor  # (S,) residual target, eV
    forces: torch.Tensor  # (N, 3) residual target (NaN rows: no reference)
    virial: torch.Tensor  # (S, 3, 3) residual virial target, eV (NaN: no reference)
    cw: torch.Tensor  # (S,) config weights


def precompute(potential: HybridPotential, data: Dataset, baseline: BaselinePredictions, weights: Weights,
               structures_per_batch: int = 8, progress: bool = True) -> list[_Batch]:
    """Descriptors, pair gradients and residual targets for groups of structures."""
    out = []
    ptr = data.ptr
    cw = weights.per_structure(data)
    volume = np.array([abs(a.cell.volume) for a in data.frames])
    groups = [np.arange(k, min(k + structures_per_batch, len(data))) for k in range(0, len(data), structures_per_batch)]
    for idx in tqdm(groups, desc="descriptors", unit="batch", disable=not progress, leave=False):
        system = AtomicSystem.from_atoms([data.frames[s] for s in idx])
        graph = build_graph(system, potential.cutoff).within(float(potential.descriptor.rcut))
        with torch.no_grad():
            B, dB = potential.descriptor.pair_form(graph)
        rows = slice(ptr[idx[0]], ptr[idx[-1] + 1])
        virial_ref = -voigt_to_matrix(data.stress[idx]) * volume[idx, None, None] - baseline.virial[idx]
        out.append(_Batch(
            B=B, dB=dB, i=graph.i, j=graph.j, r=graph.vectors.detach(), types=potential.types(graph.numbers), batch=graph.batch,
            n_atoms=torch.as_tensor(data.n_atoms[idx], dtype=torch.float64),
            energy=torch.as_tensor(data.energy[idx] - baseline.energy[idx]),
            forces=torch.as_tensor(data.forces[rows] - baseline.forces[rows]),
            virial=torch.as_tensor(virial_ref), cw=torch.as_tensor(cw[idx]),
        ))
    return out


def _predict(model, b: _Batch, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    B = b.B.detach().requires_grad_(True)
    e_atom = model(B, b.types)
    energy = torch.zeros_like(b.energy).index_add(0, b.batch, e_atom)
    (g,) = torch.autograd.grad(e_atom.sum(), B, create_graph=create_graph)
    h = torch.einsum("pk,pkd->pd", g[b.i], b.dB)
    forces = torch.zeros_like(b.forces).index_add(0, b.i, h).index_add(0, b.j, -h)
    w = torch.zeros_like(b.virial).index_add(0, b.batch[b.i], -b.r[:, :, None] * h[:, None, :])
    return energy, forces, 0.5 * (w + w.transpose(1, 2))


def _loss(model, b: _Batch, weights: Weights, norms: Mapping[str, float], create_graph: bool) -> torch.Tensor:
    energy, forces, virial = _predict(model, b, create_graph)
    loss = weights.energy / norms["energy"] * torch.sum(b.cw * ((energy - b.energy) / b.n_atoms) ** 2)
    if weights.force > 0:
        ok = torch.isfinite(b.forces).all(dim=1)
        fw = b.cw[b.batch][ok]
        loss = loss + weights.force / norms["force"] * torch.sum(fw[:, None] * (forces[ok] - b.forces[ok]) ** 2)
    ok = torch.isfinite(b.virial).all(dim=(1, 2))
    iu = torch.triu_indices(3, 3)
    if weights.stress > 0:
        dv = (virial[ok] - b.virial[ok])[:, iu[0], iu[1]] / b.n_atoms[ok, None]
        loss = loss + weights.stress / norms["stress"] * torch.sum(b.cw[ok, None] * dv**2)
    if weights.baseline_stress > 0:  # no reference stress: pull the residual's virial to zero
        dv = virial[~ok][:, iu[0], iu[1]] / b.n_atoms[~ok, None]
        loss = loss + weights.baseline_stress / norms["baseline_stress"] * torch.sum(b.cw[~ok, None] * dv**2)
    return loss


def _norms(group: list[_Batch]) -> dict[str, float]:
    """Row counts of each kind, so that each kind's loss is a mean."""
    return {
        "energy": max(float(sum(b.energy.numel() for b in group)), 1.0),
        "force": max(float(sum(torch.isfinite(b.forces).all(1).sum() * 3 for b in group)), 1.0),
        "stress": max(float(sum(torch.isfinite(b.virial).all((1, 2)).sum() * 6 for b in group)), 1.0),
        "baseline_stress": max(float(sum((~torch.isfinite(b.virial).all((1, 2))).sum() * 6 for b in group)), 1.0),
    }


#: L-BFGS iterations between two validation checks
LBFGS_ROUND = 10
#: Adam's learning rate when the settings give none
DEFAULT_ADAM_LR = 3e-3


def _full_loss(model, batches: list[_Batch], weights: Weights, norms: Mapping[str, float]) -> float:
    """The loss over all ``batches``, gradients accumulated batch by batch (one batch's graph held at a time)."""
    total = 0.0
    for b in batches:
        loss = _loss(model, b, weights, norms, create_graph=True)
        loss.backward()
        total += loss.item()
    return total


def _adam_rounds(model, train: list[_Batch], weights: Weights, norms: Mapping[str, float], settings: NNSettings,
                 rng: np.random.Generator) -> Iterator[tuple[int, float]]:
    """Mini-batch Adam: one round per epoch (every batch once, in a seeded random order).

    Yields (epochs done, summed training loss of the epoch); the caller passes the validation loss
    back with ``send`` (it drives the learning-rate schedule).
    """
    opt = torch.optim.Adam(model.parameters(), lr=float(settings.learning_rate or DEFAULT_ADAM_LR))
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(settings.patience // 4, 1))
    for epoch in range(settings.epochs):
        total = 0.0
        for k in rng.permutation(len(train)):
            opt.zero_grad()
            loss = _loss(model, train[k], weights, norms, create_graph=True)
            loss.backward()
            opt.step()
            total += loss.item()
        val_loss = yield epoch + 1, total
        sched.step(val_loss)


def _lbfgs_rounds(model, train: list[_Batch], weights: Weights, norms: Mapping[str, float], settings: NNSettings,
                  rng: np.random.Generator) -> Iterator[tuple[int, float]]:
    """Full-batch L-BFGS (strong Wolfe line search, history 50): one round per ``LBFGS_ROUND`` iterations.

    Yields (iterations done, training loss at the start of the round's last iteration); stops at
    ``settings.epochs`` iterations or when L-BFGS converges (no iteration made in a round).
    ``rng`` is unused (the signature of :func:`_adam_rounds`, which shuffles).
    """
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=LBFGS_ROUND, history_size=50,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-15)
    last = [float("nan")]

    def closure() -> float:
        opt.zero_grad()
        last[0] = _full_loss(model, train, weights, norms)
        return last[0]

    done = 0
    while done < settings.epochs:
        opt.param_groups[0]["max_iter"] = min(LBFGS_ROUND, settings.epochs - done)
        opt.step(closure)
        now = opt.state[opt.param_groups[0]["params"][0]]["n_iter"]
        if now == done:
            return
        done = now
        yield done, last[0]


def fit_nn(potential: HybridPotential, data: Dataset, baseline: BaselinePredictions, weights: Weights, settings: NNSettings,
           seed: int = 0, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the :class:`~hybridpot.models.nn.NNModel` of ``potential`` in place.

    Args:
        settings: ``optimizer`` ("lbfgs": full-batch L-BFGS, ``epochs`` counts its iterations;
            "adam": mini-batch Adam over groups of 8 structures at ``learning_rate`` (None: 3e-3),
            ``epochs`` counts passes), ``patience`` (iterations or epochs without a better
            validation loss before stopping), ``validation_fraction``.

    Returns:
        Training record: loss curve (iteration or epoch, train, validation), best one, timings, the
        indices of the validation structures in ``data``.
    """
    model = potential.model
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # validation structures drawn one by one (data files are often ordered by configuration type, and held-out
    # consecutive groups were whole types: validation then measured extrapolation); the copies of a structure that a
    # bootstrap resample repeats stay on one side
    copies: dict[int, list[int]] = {}
    for s, atoms in enumerate(data.frames):
        copies.setdefault(id(atoms), []).append(s)
    distinct = list(copies.values())
    n_val = max(1, int(round(settings.validation_fraction * len(distinct)))) if len(distinct) > 1 else 0
    order = rng.permutation(len(distinct))
    val_idx = np.sort([s for k in order[:n_val] for s in distinct[k]]).astype(int)
    train_idx = np.sort([s for k in order[n_val:] for s in distinct[k]]).astype(int)
    t0 = time.perf_counter()
    train = precompute(potential, data.subset(train_idx), baseline.subset(data, train_idx), weights, progress=progress)
    val = precompute(potential, data.subset(val_idx), baseline.subset(data, val_idx), weights, progress=progress) if n_val else []
    t_pre = time.perf_counter() - t0
    allB = torch.cat([b.B for b in train])
    alltypes = torch.cat([b.types for b in train])
    model.set_input_scaling(allB, alltypes)
    model.set_output_bias(reference_energies(data, baseline, model.elements))
    norms, val_norms = _norms(train), _norms(val)
    optimizer = settings.optimizer
    rounds = {"adam": _adam_rounds, "lbfgs": _lbfgs_rounds}[optimizer](model, train, weights, norms, settings, rng)
    unit = "iteration" if optimizer == "lbfgs" else "epoch"
    best = (float("inf"), 0, {k: v.clone() for k, v in model.state_dict().items()})
    curve = []
    bar = tqdm(total=settings.epochs, desc=f"train nn ({optimizer})", unit=unit, disable=not progress, leave=False)
    val_loss = None
    while True:
        try:
            step, train_loss = rounds.send(val_loss)
        except StopIteration:
            break
        val_loss = sum(_loss(model, b, weights, val_norms, create_graph=False).item() for b in val) if val else train_loss
        curve.append((step, train_loss, val_loss))
        if val_loss < best[0]:
            best = (val_loss, step, {k: v.clone() for k, v in model.state_dict().items()})
        bar.update(step - bar.n)
        bar.set_postfix(train=f"{train_loss:.3e}", val=f"{val_loss:.3e}")
        if step - best[1] >= settings.patience:
            break
    bar.close()
    model.load_state_dict(best[2])
    log(f"nn ({optimizer}): best validation loss {best[0]:.4e} at {unit} {best[1]} of {curve[-1][0] if curve else 0}")
    return {
        "optimizer": optimizer, "unit": unit, "best_step": best[1], "steps_run": curve[-1][0] if curve else 0,
        "best_validation_loss": best[0], "curve": curve, "precompute_seconds": t_pre,
        "train_seconds": time.perf_counter() - t0 - t_pre, "n_validation_structures": int(sum(b.energy.numel() for b in val)),
        "validation_structures": val_idx.tolist(),
    }


def fit_nn_committee(potential: HybridPotential, data: Dataset, baseline: BaselinePredictions, weights: Weights,
                     settings: NNSettings, n_members: int, seed: int = 0, bootstrap: bool = True, progress: bool = True,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train a committee of ``n_members`` NN models and set it as ``potential.model`` (in place).

    Member c is a fresh copy of ``potential.model``'s architecture trained by :func:`fit_nn` with
    seed ``seed + c`` (initial weights and train/validation split) on a bootstrap resample of the
    structures (drawn with replacement, seeded; ``bootstrap=False`` uses all structures). The
    committee mean is the prediction, the spread the uncertainty (:mod:`hybridpot.uq`).

    Returns:
        {"members": [fit_nn record of each member, with "resample": the indices into ``data`` of the
        structures it was trained and validated on], "bootstrap": bool}.
    """

    template = potential.model
    if not isinstance(template, NNModel):
        raise TypeError(f"fit_nn_committee needs an NNModel, got {type(template).__name__}")
    if n_members < 2:
        raise ValueError(f"a committee needs at least 2 members, got {n_members}")
    members, records = [], []
    for c in range(n_members):
        rng = np.random.default_rng([seed, c])
        index = np.sort(rng.integers(0, len(data), size=len(data))) if bootstrap else np.arange(len(data))
        sub, bl = data.subset(index), baseline.subset(data, index)
        member = NNModel(template.elements, template.n_descriptors, template.hidden, template.activation)
        trainee = HybridPotential(potential.baseline, potential.descriptor, member)
        log(f"committee member {c + 1}/{n_members}: {len(np.unique(index))} distinct structures")
        records.append({**fit_nn(trainee, sub, bl, weights, settings, seed=seed + c, progress=progress, log=log),
                        "resample": index.tolist()})
        members.append(member)
    potential.model = CommitteeModel(members)
    return {"members": records, "bootstrap": bootstrap}


def train(potential: HybridPotential, data: Dataset, baseline: BaselinePredictions, weights: Weights, settings: NNSettings,
          seed: int = 0, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The ``train`` of the nn model type: one network (:func:`fit_nn`), or a committee of ``settings.committee``
    members (:func:`fit_nn_committee`). Returns the record for report.json's "fit" (key "nn" or "nn_committee")."""
    if settings.committee > 1:
        return {"nn_committee": fit_nn_committee(potential, data, baseline, weights, settings, settings.committee, seed=seed,
                                                 bootstrap=settings.bootstrap, progress=progress, log=log)}
    return {"nn": fit_nn(potential, data, baseline, weights, settings, seed=seed, progress=progress, log=log)}


#: registry entry (:mod:`hybridpot.registry`): the model (:class:`~hybridpot.models.nn.NNModel`) with its trainer
NN = ModelType("nn", NNSettings, lambda settings, elements, n_features: NNModel(elements, n_features, hidden=settings.hidden,
                                                                                activation=settings.activation),
               lambda d, nested: NNModel.from_dict(d), linear=False, train=train,
               summary="per-element multilayer perceptron (LAMMPS mliap nn activations); a committee with committee = N")
