"""Export a fitted hybrid to LAMMPS: ML-IAP files, the baseline, pair lines, an input deck, a manifest.

``export_lammps(potential, outdir, name)`` writes into ``outdir``:

* ``NAME.mliap.descriptor`` and ``NAME.mliap.model`` (``so3`` descriptor; ``linear``,
  ``quadratic`` or ``nn`` model), in the formats LAMMPS ML-IAP reads;
* the baseline potential file (current parameters) and ``pair.NAME.lmp``: ``pair_style
  hybrid/overlay BASELINE mliap ...`` with its ``pair_coeff`` lines (``pair_style mliap`` alone
  without a baseline);
* ``NAME.data`` (an example structure), ``in.NAME.lmp`` (a short runnable MD input),
  ``README.md`` (CPU and Kokkos GPU commands) and ``manifest.json`` (versions, parameters, units,
  checksums of the baseline file, of every written file and of the training data).

What LAMMPS cannot run identically is refused with the reason and the alternative.
:func:`read_lammps` reads such a directory back into a HybridPotential.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from ase import Atoms

from hybridpot.errors import HybridpotError
from hybridpot.io.atomic import write_text_atomic

#: LAMMPS ML-IAP's nn reader accepts at most this many numbers per line
NN_VALUES_PER_LINE = 30

KOKKOS_COMMAND = "lmp -k on g 1 -sf kk -pk kokkos newton on neigh half -in in.{name}.lmp"
CPU_COMMAND = "lmp -in in.{name}.lmp"


def check_exportable(potential) -> None:
    """Raise :class:`HybridpotError` (reason + alternative) where LAMMPS cannot reproduce the model."""
    try:
        potential.descriptor.check_lammps_exportable()
    except HybridpotError as exc:
        raise HybridpotError(
            f"cannot export to LAMMPS: {exc}. Alternatives: refit with a descriptor LAMMPS computes exactly "
            "([descriptor] basis = 'lammps', kind = 'power', integer weights, nmax <= 5 and an lmax/alpha in LAMMPS's "
            "stable range), or run this model in Python with hybridpot.Calculator (ASE)"
        ) from exc
    kind = potential.model.kind
    if kind not in ("linear", "quadratic", "nn"):
        raise HybridpotError(f"cannot export model type {kind!r}; LAMMPS ML-IAP runs linear, quadratic and nn models")


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
    """``NAME.mliap.model`` for a linear, quadratic or nn model (one block per element)."""
    T = len(model.elements)
    if model.kind in ("linear", "quadratic"):
        coef = model.coef.detach().cpu().numpy()
        lines = [f"# hybridpot {model.kind} model, elements {' '.join(model.elements)}", f"{T} {coef.shape[1]}"]
        for t, e in enumerate(model.elements):
            lines.append(f"{float(coef[t, 0])!r} # {e}")
            lines += [repr(float(v)) for v in coef[t, 1:]]
        return "\n".join(lines) + "\n"
    nets = [[m for m in net if isinstance(m, torch.nn.Linear)] for net in model.nets]
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


def pair_lines(potential, name: str, type_elements: Sequence[str], baseline_dir: Path | None = None) -> list[str]:
    """``pair_style``/``pair_coeff`` commands of the exported hybrid (files referenced by name)."""
    mliap = f"mliap model {potential.model.kind} {name}.mliap.model descriptor so3 {name}.mliap.descriptor"
    elems = " ".join(type_elements)
    if potential.baseline is None:
        return [f"pair_style {mliap}", f"pair_coeff * * {elems}"]
    spec = potential.baseline.lammps_pair(type_elements)
    lines = [f"pair_style hybrid/overlay {spec.style} {mliap}"]
    lines += spec.coeff_lines(substyle=True, directory=baseline_dir)
    lines.append(f"pair_coeff * * mliap {elems}")
    return lines


def export_lammps(potential, outdir: str | Path, name: str = "hybrid", structure: Atoms | None = None,
                  steps: int = 100, temperature: float = 300.0) -> dict[str, Path]:
    """Write the LAMMPS deck of ``potential`` into ``outdir`` (see module docstring).

    Args:
        potential: a fitted HybridPotential.
        name: file stem.
        structure: the example structure for ``NAME.data`` (default: an fcc/bcc/diamond crystal of
            the first element from ASE's reference data, about 100 atoms).
        steps, temperature: the example MD run (NVT, K).

    Returns:
        Written files by role.
    """
    check_exportable(potential)
    if not name.replace("_", "").replace("-", "").isalnum():
        raise HybridpotError(f"export name {name!r}: use letters, digits, '-' and '_'")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    elements = list(potential.elements)
    files: dict[str, Path] = {}
    files["descriptor"] = outdir / f"{name}.mliap.descriptor"
    write_text_atomic(files["descriptor"], descriptor_text(potential.descriptor))
    files["model"] = outdir / f"{name}.mliap.model"
    write_text_atomic(files["model"], model_text(potential.model))
    if potential.baseline is not None:
        files["baseline"] = outdir / potential.baseline.file_name
        potential.baseline.write(files["baseline"])
    lines = pair_lines(potential, name, elements, baseline_dir=Path("."))
    files["pair"] = outdir / f"pair.{name}.lmp"
    write_text_atomic(files["pair"], f"# hybridpot: {name}\n" + "\n".join(lines) + "\n")
    atoms = structure if structure is not None else example_structure(elements[0])
    files["data"] = outdir / f"{name}.data"
    _write_data(files["data"], atoms, elements)
    files["input"] = outdir / f"in.{name}.lmp"
    write_text_atomic(files["input"], _input_text(name, steps, temperature))
    files["readme"] = outdir / "README.md"
    write_text_atomic(files["readme"], _readme(potential, name))
    files["manifest"] = outdir / "manifest.json"
    write_text_atomic(files["manifest"], json.dumps(_manifest(potential, name, files), indent=1))
    return files


def read_lammps(outdir: str | Path, name: str = "hybrid"):
    """Read an exported deck back into a :class:`~hybridpot.potential.HybridPotential`."""
    from hybridpot.descriptors import SO3
    from hybridpot.empirical import load as load_empirical
    from hybridpot.potential import HybridPotential

    outdir = Path(outdir)
    manifest = json.loads((outdir / "manifest.json").read_text())
    d = _read_keywords(outdir / f"{name}.mliap.descriptor")
    elements = d["elems"]
    weights = dict(zip(elements, map(float, d["welems"])))
    descriptor = SO3(rcut=float(d["rcutfac"][0]), nmax=int(d["nmax"][0]), lmax=int(d["lmax"][0]), alpha=float(d["alpha"][0]),
                     basis="lammps", kind="power", elements=elements, weights=weights)
    model = _read_model(outdir / f"{name}.mliap.model", manifest["model"]["type"], elements, descriptor.n_features, manifest["model"])
    baseline = None
    if manifest.get("baseline"):
        baseline = load_empirical(outdir / manifest["baseline"]["file_name"])
    return HybridPotential(baseline, descriptor, model)


def example_structure(element: str, min_atoms: int = 100) -> Atoms:
    """A cubic crystal of ``element`` (ASE reference structure and lattice constant), >= min_atoms."""
    from ase.build import bulk

    atoms = bulk(element, cubic=True)
    n = int(np.ceil((min_atoms / len(atoms)) ** (1 / 3)))
    return atoms.repeat(n)


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _wrap(values: np.ndarray) -> list[str]:
    values = [repr(float(v)) for v in np.ravel(values)]
    return [" ".join(values[k : k + NN_VALUES_PER_LINE]) for k in range(0, len(values), NN_VALUES_PER_LINE)]


def _write_data(path: Path, atoms: Atoms, elements: list[str]) -> None:
    """A LAMMPS data file (atom_style atomic, masses, triclinic box) written through ASE."""
    import io

    from ase.io import write

    buf = io.StringIO()
    write(buf, atoms, format="lammps-data", specorder=elements, masses=True, atom_style="atomic", units="metal")
    write_text_atomic(path, buf.getvalue())


def _input_text(name: str, steps: int, temperature: float) -> str:
    return f"""# hybridpot export {name}: a short NVT run of the example structure
units           metal
atom_style      atomic
boundary        p p p
read_data       {name}.data
include         pair.{name}.lmp
neighbor        1.0 bin
velocity        all create {temperature} 4928459 mom yes rot yes dist gaussian
fix             nvt all nvt temp {temperature} {temperature} 0.1
timestep        0.001
thermo_style    custom step temp pe ke etotal press
thermo          10
run             {steps}
"""


def _readme(potential, name: str) -> str:
    kind = potential.model.kind
    baseline = potential.baseline.lammps_pair(potential.elements).name if potential.baseline is not None else None
    gpu = (
        "Under Kokkos, `mliap` with the `so3` descriptor and a **linear** model runs fully on the GPU"
        if kind == "linear"
        else f"Under Kokkos, the `so3` descriptor runs on the GPU but the **{kind}** model is evaluated on the host (only linear models have a Kokkos path in ML-IAP), so expect host-device transfers each step"
    )
    return f"""# LAMMPS deck exported by hybridpot: `{name}`

Hybrid potential: {f"`{baseline}` baseline + " if baseline else ""}ML-IAP `so3` power spectrum with a `{kind}` model, elements {", ".join(potential.elements)}.
Units: LAMMPS `metal` (eV, Angstrom, ps). LAMMPS reports pressure (bar, positive = compressive); hybridpot's stress has the opposite sign (eV/Angstrom^3, positive = tensile).

| file | what |
|---|---|
| `{name}.mliap.descriptor` | so3 descriptor parameters |
| `{name}.mliap.model` | {kind} model coefficients, one block per element in `elems` order |
| `pair.{name}.lmp` | `pair_style`/`pair_coeff` lines: include it in your own input |
| `{name}.data`, `in.{name}.lmp` | an example structure and a short NVT run |
| `manifest.json` | hybridpot version, parameters, checksums of these files, the baseline and the training data |

## Run on CPU

    {CPU_COMMAND.format(name=name)}

## Run on a GPU (LAMMPS built with KOKKOS and ML-IAP)

    {KOKKOS_COMMAND.format(name=name)}

{gpu}. The baseline (`{baseline or "none"}`) and `hybrid/overlay` have Kokkos versions. ML-IAP needs `newton pair on` (the default;
the Kokkos flag above keeps it on).

Atom types map to elements in the order of `pair_coeff * * ... {" ".join(potential.elements)}`; for your own data file keep that type order.
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(potential, name: str, files: dict[str, Path]) -> dict[str, Any]:
    from hybridpot import __version__

    meta = getattr(potential, "metadata", {}) or {}
    model = {"type": potential.model.kind, "elements": potential.model.elements, "n_descriptors": potential.model.n_descriptors}
    if potential.model.kind == "nn":
        model |= {"hidden": potential.model.hidden, "activation": potential.model.activation}
    out = {
        "format": "hybridpot-lammps-export",
        "hybridpot_version": __version__,
        "name": name,
        "units": "metal (eV, Angstrom, eV/Angstrom; LAMMPS pressure = -stress)",
        "descriptor": potential.descriptor.to_dict(),
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


def _read_keywords(path: Path) -> dict[str, list[str]]:
    out = {}
    for line in path.read_text().splitlines():
        words = line.split("#")[0].split()
        if words:
            out[words[0]] = words[1:]
    return out


def _read_numbers(path: Path) -> list[list[float]]:
    rows = []
    for line in path.read_text().splitlines():
        words = line.split("#")[0].split()
        if words and words[0] != "NET":
            rows.append([float(w) for w in words])
    return rows


def _read_model(path: Path, kind: str, elements: list[str], K: int, info: dict[str, Any]):
    rows = _read_numbers(path)
    T, nparams = int(rows[0][0]), int(rows[0][1])
    values = np.array([v for row in rows[1:] for v in row])
    if kind in ("linear", "quadratic"):
        from hybridpot.models.polynomial import PolynomialModel

        model = PolynomialModel(elements, K, quadratic=kind == "quadratic")
        with torch.no_grad():
            model.coef.copy_(torch.from_numpy(values.reshape(T, nparams)))
        return model
    from hybridpot.models.nn import NNModel

    model = NNModel(elements, K, info["hidden"], info["activation"])
    per = 2 * K + nparams
    with torch.no_grad():
        for t in range(T):
            block = values[t * per : (t + 1) * per]
            model.shift[t] = torch.from_numpy(block[:K])
            model.scale[t] = torch.from_numpy(block[K : 2 * K])
            k = 2 * K
            for m in (m for m in model.nets[t] if isinstance(m, torch.nn.Linear)):
                n_out, n_in = m.weight.shape
                node = block[k : k + n_out * (n_in + 1)].reshape(n_out, n_in + 1)
                m.bias.copy_(torch.from_numpy(node[:, 0]))
                m.weight.copy_(torch.from_numpy(node[:, 1:]))
                k += n_out * (n_in + 1)
    return model
