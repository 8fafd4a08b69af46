"""Export a fitted hybrid to LAMMPS: the model files, the baseline, pair lines, an input deck, a manifest.

``export_lammps(potential, outdir, name, format=...)`` writes a deck into ``outdir`` in one of the registered
deck formats (:data:`hybridpot.registry.export_formats`, each an :class:`~hybridpot.registry.ExportFormat` that
writes the residual's files and its pair style; this module writes everything else). The built-in ones:

* ``"plugin"`` (default): ``NAME.hybridpot.lmp``, the model file of hybridpot's own LAMMPS pair style
  ``hpot`` (the plugin ``pip install "hybridpot[lammps]"`` builds; :mod:`hybridpot.export.plugin_file`).
  It runs everything hybridpot fits (both radial bases, power spectrum and bispectrum, linear /
  quadratic / nn / committee models, the EAM, LJ or Tersoff baseline in the same pass, the per-atom
  fallback, the extrapolation grade as ``compute hpot/gamma``). ``pair.NAME.lmp`` holds
  ``pair_style hpot NAME.hybridpot.lmp``; with a baseline, ``pair.NAME.overlay.lmp`` runs LAMMPS's own
  baseline under ``hybrid/overlay`` with the residual alone (``hpot ... baseline no``). A baseline the
  plugin does not evaluate itself (any other registered baseline, e.g. ``sw``) is always run that way:
  ``pair.NAME.lmp`` is then the overlay.
* ``"mliap"``: ``NAME.mliap.descriptor`` and ``NAME.mliap.model`` for LAMMPS's ``pair_style mliap``
  (``so3`` power spectrum with the LAMMPS radial basis; :mod:`hybridpot.export.mliap`), with the baseline
  under ``hybrid/overlay``, for LAMMPS builds that cannot load the plugin.

Both write the baseline potential file (current parameters), ``NAME.hybridpot.json`` (the model file,
from which :func:`read_lammps` rebuilds the potential), ``NAME.data`` (an example structure, types in the
model's element order), ``in.NAME.lmp`` (a short NVT run of it), ``README.md`` (the commands and what
each format supports) and ``manifest.json`` (versions, parameters, type order, checksums of every
file, of the baseline and of the training data).

One folder holds one deck, written as a unit (:class:`hybridpot.io.outdir.OutputDir`): everything is
staged in a hidden folder beside it and moved into place at the end, under a lock, so the folder holds
the previous deck or the new one, never a mix, and no file of an earlier export survives. Exporting
another name into a folder that holds a deck is refused, and so is a folder with files hybridpot did
not write (a deck of the same name is replaced). Everything is checked before the first file is written.

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
from ase import Atoms

from hybridpot import __version__
from hybridpot.descriptors.radial import LAMMPS_EXPORT_MIN_DISTANCE
from hybridpot.empirical import load as load_empirical
from hybridpot.errors import HybridpotError, NotExportableError
from hybridpot.export.commands import CPU_COMMAND
from hybridpot.io.atomic import write_text_atomic
from hybridpot.io.modelfile import save
from hybridpot.io.outdir import OutputDir
from hybridpot.lammps_run import mass_commands
from hybridpot.registry import ExportFormat, export_formats

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "hybridpot-lammps-export"


# ------------------------------------------------------------------------------ checks


def deck_format(format: str) -> ExportFormat:
    """The registered deck format ``format`` (:data:`hybridpot.registry.export_formats`).

    Raises:
        HybridpotError: an unknown format (the message lists the known ones).
    """
    return export_formats.get(format, "export format")


def check_exportable(potential, min_distance: float = LAMMPS_EXPORT_MIN_DISTANCE, format: str = "plugin") -> None:
    """Raise :class:`HybridpotError` (reason + alternative) for what the chosen format cannot run identically."""
    deck_format(format).check(potential, min_distance)
    deck_types(potential)


# ------------------------------------------------------------------------------ pair lines


def pair_lines(potential, model_path: str, type_elements: Sequence[str], baseline_dir: str | Path | None = None,
               format: str = "plugin", overlay: bool = False) -> list[str]:
    """The ``pair_style``/``pair_coeff`` commands that run the exported hybrid.

    Args:
        potential: the exported HybridPotential.
        model_path: the deck's model files as LAMMPS should open them, without suffix: ``NAME``
            (relative to LAMMPS's working directory) or ``DIR/NAME``.
        type_elements: the element of each LAMMPS atom type (type 1 first), in any order; every
            one must be an element of the model.
        baseline_dir: directory put before the baseline file's name (e.g. the export directory);
            default: the baseline file's own path (where it was last read or written).
        format: a registered deck format: "plugin" (``pair_style hpot``) or "mliap".
        overlay: LAMMPS's own baseline style under ``hybrid/overlay`` with the residual alone (always so
            for a baseline the format's pair style does not evaluate itself, and for every baseline under mliap).

    Returns:
        The commands; without a baseline, ``pair_style hpot ...`` or ``pair_style mliap ...`` and one
        ``pair_coeff * * El ...``.
    """
    unknown = [e for e in type_elements if e not in potential.elements]
    if unknown or not type_elements:
        raise HybridpotError(
            f"atom types {list(type_elements)}: every type must be an element of the model ({', '.join(potential.elements)})"
        )
    spec = potential.baseline.lammps_pair(list(type_elements)) if potential.baseline is not None else None
    paths = [str(model_path)]
    if spec is not None:
        paths += [str(Path(baseline_dir) / f.name if baseline_dir is not None else f) for f in spec.files]
    for path in paths:
        if any(c.isspace() for c in path):
            raise HybridpotError(f"LAMMPS cannot open {path!r}: paths in pair_style/pair_coeff lines cannot contain spaces "
                                 "(rename the file or the folder)")
    elems = " ".join(type_elements)
    fmt = deck_format(format)
    if spec is None or (not overlay and fmt.runs_baseline(potential.baseline)):
        return [f"pair_style {fmt.residual_style(potential, model_path, False)}", f"pair_coeff * * {elems}"]
    return spec.overlay_lines(fmt.residual_style(potential, model_path, True), elems, directory=baseline_dir)


def deck_types(potential) -> list[str]:
    """The element of each LAMMPS atom type of the deck: the baseline's own type order where its pair lines are written
    for one (:attr:`~hybridpot.empirical.base.EmpiricalPotential.type_order`), else the model's elements.

    Raises:
        NotExportableError: a baseline type order with elements the model was not fitted on.
    """
    baseline = potential.baseline
    order = getattr(baseline, "type_order", None) if baseline is not None else None
    if order is None:
        return list(potential.elements)
    extra = [e for e in order if e not in potential.elements]
    if extra:
        raise NotExportableError(f"the baseline {baseline.source} has LAMMPS atom types of {extra}, which the model was not fitted "
                                 f"on (it has {', '.join(potential.elements)}): list only those elements in the baseline's "
                                 "elements and pair_coeff lines")
    return list(order)


# ------------------------------------------------------------------------------- export


def export_lammps(potential, outdir: str | Path, name: str = "hybrid", structure: Atoms | None = None,
                  steps: int = 100, temperature: float = 300.0,
                  min_distance: float = LAMMPS_EXPORT_MIN_DISTANCE, format: str = "plugin") -> dict[str, Path]:
    """Write the LAMMPS deck of ``potential`` into ``outdir`` (see the module docstring).

    Everything is checked before the first file is written. ``potential`` itself is not changed:
    the deck is written from a copy whose baseline file is the exported one.

    Args:
        potential: a HybridPotential.
        outdir: output directory (created if needed; see the module docstring for what it may hold).
        name: file stem (letters, digits, '-' and '_').
        structure: the example structure for ``NAME.data``: a 3D-periodic cell of the model's
            elements (default: a cubic crystal of the first element from ASE's reference data,
            about 100 atoms).
        steps, temperature: the example NVT run of ``in.NAME.lmp`` (steps of 1 fs; K).
        min_distance: (mliap) the shortest pair distance (Angstrom) the exported model is expected
            to see; LAMMPS's so3 radial functions are checked down to it.
        format: a registered deck format (:data:`hybridpot.registry.export_formats`): "plugin" (default) or "mliap".

    Returns:
        Written files by role: the format's model files (plugin: model; mliap: descriptor and model), baseline (if any),
        pair (and overlay), model_json, data, input, readme, manifest.

    Raises:
        HybridpotError: a model the format cannot run identically (reason and alternative), a bad
            name, structure, step count or temperature, or a folder holding other files.
    """
    check_exportable(potential, min_distance, format)
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
    _check_deck_folder(outdir, name)
    with OutputDir(outdir, "export", overwrite=True, source="hybridpot export") as out:
        staged = _write_deck(potential, out.path, name, format, atoms, steps, temperature, min_distance)
        final = out.commit()
    return {role: final / path.name for role, path in staged.items()}


def _write_deck(potential, folder: Path, name: str, format: str, atoms: Atoms, steps: int, temperature: float,
                min_distance: float) -> dict[str, Path]:
    """Every file of the deck into ``folder`` (the staging folder); the manifest last."""
    files: dict[str, Path] = {}
    elements = deck_types(potential)
    spec = None
    if potential.baseline is not None:
        # first: the deck's model files describe the potential whose baseline is the exported file (several funcfl
        # files become one setfl file, whose densities above the last knot follow setfl's rule)
        files["baseline"] = potential.baseline.write(folder / potential.baseline.file_name)
        spec = potential.baseline.lammps_pair(elements)
        for f in spec.files:  # the potential files a baseline definition names (a LAMMPS baseline's)
            if f.resolve() != files["baseline"].resolve():
                files[f"baseline:{f.name}"] = f
    units, atom_style = (spec.units, spec.atom_style) if spec is not None else ("metal", "atomic")
    fmt = deck_format(format)
    for role, (file_name, text) in fmt.model_files(potential, name).items():
        files[role] = _write(folder / file_name, text)
    lines = pair_lines(potential, name, elements, baseline_dir=Path("."), format=format)
    header = f"# hybridpot export {name} ({format}): atom types {' '.join(elements)}\n"
    files["pair"] = _write(folder / f"pair.{name}.lmp", header + "\n".join(lines) + "\n")
    overlay = None
    if potential.baseline is not None and fmt.runs_baseline(potential.baseline):
        overlay = pair_lines(potential, name, elements, baseline_dir=Path("."), format=format, overlay=True)
        files["overlay"] = _write(folder / f"pair.{name}.overlay.lmp", header.replace("):", ", LAMMPS's own baseline + residual):")
                                  + "\n".join(overlay) + "\n")

    files["model_json"] = save(potential, folder / f"{name}.hybridpot.json", metadata=getattr(potential, "metadata", None))
    files["data"] = _write(folder / f"{name}.data", _data_text(atoms, elements, units, atom_style))
    try:
        masses = mass_commands(atoms, elements)
    except ValueError as exc:
        raise HybridpotError(f"example structure: {exc}") from exc
    files["input"] = _write(folder / f"in.{name}.lmp", _input_text(name, steps, temperature, masses, units, atom_style))
    files["readme"] = _write(folder / "README.md", _readme(potential, name, format))
    files["manifest"] = folder / MANIFEST
    write_text_atomic(files["manifest"], json.dumps(_manifest(potential, name, format, files, lines, overlay, min_distance), indent=1))
    return files


def _write(path: Path, text: str) -> Path:
    write_text_atomic(path, text)
    return path


def _check_deck_folder(outdir: Path, name: str) -> None:
    """Refuse a folder that holds a deck of another name (one folder, one deck: pair lines, baselines and data
    files of two models would mix). Files hybridpot did not write are refused by the output folder itself."""
    manifest = outdir / MANIFEST
    if not manifest.is_file():
        return
    try:
        old = json.loads(manifest.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return  # not ours: the output folder refuses it as foreign
    if isinstance(old, dict) and old.get("format") == MANIFEST_FORMAT and old.get("name") != name:
        raise HybridpotError(
            f"{outdir} holds the hybridpot LAMMPS deck {old.get('name')!r}; one folder holds one deck (their pair "
            f"lines, baseline and data files would mix): export {name!r} into another folder"
        )


def deck_pair_lines(outdir: str | Path, name: str, type_elements: Sequence[str], overlay: bool = False) -> list[str]:
    """Pair lines of an exported deck with absolute file paths, for running it from anywhere.

    The deck is read back (:func:`read_lammps`, checksums verified), so the lines describe exactly
    the files in ``outdir``.
    """
    outdir = Path(outdir).resolve()
    manifest = _read_manifest(outdir, name)
    return pair_lines(read_lammps(outdir, name), str(outdir / name), type_elements, baseline_dir=outdir,
                      format=manifest.get("deck_format", "mliap"), overlay=overlay)


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


def _data_text(atoms: Atoms, elements: list[str], units: str = "metal", atom_style: str = "atomic") -> str:
    """A LAMMPS data file (masses, triclinic box, types in ``elements`` order; charges: the atoms' initial charges) written
    through ASE."""
    from ase.io import write

    buf = io.StringIO()
    write(buf, atoms, format="lammps-data", specorder=elements, masses=True, atom_style=atom_style, units=units)
    return buf.getvalue()


#: the example run's time step and thermostat damping in each unit system's time unit (1 fs, 100 fs)
_TIME = {"metal": ("0.001", "0.1"), "real": ("1.0", "100.0")}


def _input_text(name: str, steps: int, temperature: float, masses: list[str], units: str = "metal", atom_style: str = "atomic") -> str:
    """The deck's example run. ``masses``: the structure's ``mass`` commands, restated after the pair lines because some
    baselines' ``pair_coeff`` sets the masses from its own file (``eam/alloy``: the setfl masses), so that every pair
    file of the deck (``pair.NAME.lmp``, ``pair.NAME.overlay.lmp``) runs the same dynamics as the data file says."""
    timestep, damping = _TIME[units]
    mass_lines = "\n".join(["# the structure's masses again (a pair_coeff may have set its file's)", *masses])
    return f"""# hybridpot export {name}: a short NVT run of the example structure (run it in this directory)
units           {units}
atom_style      {atom_style}
boundary        p p p
read_data       {name}.data
include         pair.{name}.lmp
{mass_lines}
neighbor        1.0 bin
velocity        all create {temperature!r} 4928459 mom yes rot no dist gaussian
fix             nvt all nvt temp {temperature!r} {temperature!r} {damping}
timestep        {timestep}
thermo_style    custom step temp pe ke etotal press
thermo_modify   format float %20.15g
thermo          10
run             {steps}
"""


def _readme(potential, name: str, format: str) -> str:
    kind = potential.model.kind
    types = deck_types(potential)
    spec = potential.baseline.lammps_pair(types) if potential.baseline is not None else None
    baseline = spec.name if spec is not None else None
    descriptor = potential.descriptor
    what = (f"{f'`{baseline}` baseline + ' if baseline else ''}SO(3) {descriptor.kind} ({descriptor.radial_basis.name} basis, "
            f"nmax {descriptor.nmax}, lmax {descriptor.lmax}, rcut {descriptor.rcut:g} A) with a `{kind}` model, elements "
            f"{', '.join(potential.elements)}")
    fmt = deck_format(format)
    files, run = fmt.readme(potential, name)
    files += [f"| `{potential.baseline.file_name}` | the baseline potential file (current parameters) |"] if baseline else []
    files += [f"| `{f.name}` | a potential file of the baseline (current parameters) |" for f in (spec.files if spec else [])
              if f.name != potential.baseline.file_name]
    files += [f"| `pair.{name}.lmp` | `pair_style`/`pair_coeff` lines: `include` it in your own input |"]
    if baseline and not fmt.runs_baseline(potential.baseline):
        files[-1] = (f"| `pair.{name}.lmp` | `pair_style`/`pair_coeff` lines (LAMMPS's own `{baseline}` + the residual under "
                     f"`hybrid/overlay`: the {format} deck does not evaluate this baseline in its own pair style): `include` it "
                     "in your own input |")
    elif baseline:
        files += [f"| `pair.{name}.overlay.lmp` | the same hybrid as LAMMPS's own `{baseline}` + the residual under `hybrid/overlay` |"]
    files += [f"| `{name}.hybridpot.json` | the hybridpot model file (Python: `hybridpot.load`) |",
              f"| `{name}.data`, `in.{name}.lmp` | an example structure and a short NVT run of it |",
              "| `manifest.json` | versions, parameters, type order, checksums of these files, of the baseline and of the training data |"]
    return f"""# LAMMPS deck exported by hybridpot: `{name}` ({format} format)

Hybrid potential: {what}.
Units: LAMMPS `{spec.units if spec else "metal"}` ({"kcal/mol, Angstrom, fs: the baseline's force field is in kcal/mol; the plugin converts the residual's eV with LAMMPS's own factor" if spec and spec.units == "real" else "eV, Angstrom, ps"}). LAMMPS reports pressure
({"atm" if spec and spec.units == "real" else "bar"}, positive = compressive); hybridpot's stress has the opposite sign (eV/Angstrom^3, positive = tensile).

| file | what |
|---|---|
{chr(10).join(files)}

Run the commands below in this directory (file names in `pair.{name}.lmp` are relative to it).

{run}
## Atom types

Atom type t is the t-th element of `pair_coeff * * ... {" ".join(types)}` (as in `{name}.data`). For a data
file with another type order, change the element lists of every `pair_coeff` line to match, e.g. with hybridpot:
`hybridpot.export.lammps.pair_lines(potential, "{name}", ["El_type1", "El_type2", ...], format="{format}")`{
" (not for this baseline: its pair_coeff lines are written for this type order)" if getattr(potential.baseline, "type_order", None) else ""}.
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lammps_package_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("lammps")
    except metadata.PackageNotFoundError:
        return None


def _manifest(potential, name: str, format: str, files: dict[str, Path], lines: list[str], overlay: list[str] | None,
              min_distance: float) -> dict[str, Any]:

    meta = getattr(potential, "metadata", {}) or {}
    model = {"type": potential.model.kind, "elements": list(potential.model.elements), "n_descriptors": potential.model.n_descriptors}
    if potential.model.kind == "nn":
        model |= {"hidden": list(potential.model.hidden), "activation": potential.model.activation}
    out = {
        "format": MANIFEST_FORMAT,
        "deck_format": format,
        "hybridpot_version": __version__,
        "lammps_package_version": _lammps_package_version(),
        "name": name,
        "units": "metal (eV, Angstrom, eV/Angstrom, ps); LAMMPS pressure = -stress",
        "type_elements": deck_types(potential),
        "pair_lines": lines,
        "descriptor": potential.descriptor.to_dict(),
        "model": model,
        "baseline": None,
        "files": {role: {"file": p.name, "sha256": _sha256(p)} for role, p in files.items() if p.exists()},
        "training_data": meta.get("data"),
        "commands": {"cpu": CPU_COMMAND.format(name=name)},
    }
    extra = deck_format(format).manifest(potential, name, min_distance)
    out["commands"] |= extra.pop("commands", {})
    out |= extra
    if overlay is not None:
        out["overlay_pair_lines"] = overlay
    if "baseline" in files:
        spec = potential.baseline.lammps_pair(deck_types(potential))
        out["baseline"] = {"file_name": files["baseline"].name, "sha256": _sha256(files["baseline"]), "pair_style": spec.style,
                           "files": {f.name: _sha256(f) for f in spec.files}, "commands": spec.command_lines(Path(".")),
                           "units": spec.units, "atom_style": spec.atom_style}
    if out["baseline"] and out["baseline"]["units"] == "real":
        out["units"] = ("real (kcal/mol, Angstrom, fs: the baseline's units; the plugin converts the residual from eV with LAMMPS's "
                        "factor); LAMMPS pressure = -stress")
    return out


# -------------------------------------------------------------------------------- reading


def _read_manifest(outdir: Path, name: str) -> dict[str, Any]:
    manifest_path = outdir / MANIFEST
    if not manifest_path.is_file():
        raise HybridpotError(f"{outdir}: no manifest.json (not a hybridpot LAMMPS export)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise HybridpotError(f"{manifest_path}: invalid JSON ({exc})") from exc
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("name") != name:
        raise HybridpotError(f"{manifest_path}: not the manifest of a hybridpot LAMMPS export named {name!r}")
    return manifest


def read_lammps(outdir: str | Path, name: str = "hybrid"):
    """Read an exported deck back into a :class:`~hybridpot.potential.HybridPotential`.

    The files are checked against the manifest's checksums, then the deck's format rebuilds the residual
    (a plugin deck from its ``NAME.hybridpot.json``, whose ``NAME.hybridpot.lmp`` must be exactly what that
    model exports to; an mliap deck from the files LAMMPS reads) and the baseline is the deck's file.

    Raises:
        HybridpotError: a missing or malformed file, or a file that differs from the manifest.
    """

    outdir = Path(outdir)
    manifest = _read_manifest(outdir, name)
    for role in ["descriptor", "model", "baseline", "model_json"] + [r for r in manifest["files"] if r.startswith("baseline:")]:
        entry = manifest["files"].get(role)
        if entry is None:
            continue
        path = outdir / entry["file"]
        if not path.is_file():
            raise HybridpotError(f"{path}: file listed in the manifest is missing")
        if _sha256(path) != entry["sha256"]:
            raise HybridpotError(f"{path}: differs from the exported file (sha256 mismatch with {MANIFEST})")
    # the exported baseline file, as in the deck's pair lines
    baseline = load_empirical(outdir / manifest["baseline"]["file_name"]) if manifest.get("baseline") else None
    return deck_format(manifest.get("deck_format", "mliap")).read(outdir, name, manifest, baseline)
