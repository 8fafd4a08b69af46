"""The ``hybridpot fit`` configuration: TOML, validated completely before anything runs.

Relative paths are resolved against the directory of the configuration file. Unknown sections
or keys, wrong types and out-of-range values are errors naming the file and the key. Example::

    [data]
    train = "train.xyz"          # anything ase.io.read takes, with energies (and forces)
    test = "test.xyz"            # optional
    check_units = true           # stop on labels that look like a unit or sign mistake (hybridpot.fitting.units)
    check_outliers = true        # stop on single structures or atoms whose labels are far outside the rest
    [baseline]
    file = "Cu_mishin1.eam.alloy"   # or type = "none", or type = "lj" with lj/cut parameters
    [descriptor]
    basis = "lammps"             # or "bessel"
    kind = "power"               # or "bispectrum"
    rcut = 5.0
    nmax = 4
    lmax = 4
    alpha = 2.0
    [model]
    type = "linear"              # "quadratic" | "nn"
    [fit]
    energy_weight = 1.0          # relative to each kind's natural scale (weight_scale = "spread")
    force_weight = 1.0
    stress_weight = 0.0
    train_fraction = 1.0
    seed = 0
    [output]
    dir = "runs/cu"

Weights: with ``weight_scale = "spread"`` (the default) each kind's weight is divided by the
squared RMS spread of its residual targets on the training set (energies per atom after the
per-element reference energies, force components, virial per atom;
:func:`hybridpot.fitting.assembly.target_scales`), so that 1:1:1 balances the kinds whatever the
units; the effective weights are in report.json's ``fit.weights``. ``weight_scale = "rows"``
keeps the absolute weights (each kind normalised only by its number of rows).

``energy_weight = "cv"`` (models linear in their parameters) chooses the energy weight among
``energy_weight_candidates`` (factors of the normalised weight; default 0.3 ... 30) by k-fold cross-validation over the
training structures (``[model] cv_folds``, seeded by ``seed``): the weight whose held-out energy
and force errors are jointly best (:func:`hybridpot.fitting.linear.choose_energy_weight`; each error
relative to the best any candidate reaches, or to ``energy_weight_targets = [meV/atom, eV/A]``).

Further [fit] keys: ``baseline_stress_weight`` (virial rows with a zero residual target for the
structures without a reference stress: keeps the baseline's stress where the data are silent;
a trade-off against energies, see benchmarks/results/mlearn_search.md), ``config_weights``
(extra weight per config_type), ``batch_atoms`` (atoms per assembly batch: time against memory).
"""

from __future__ import annotations

import ast
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from hybridpot.dataset import bundled
from hybridpot.errors import ConfigError
from hybridpot.fitting.sections import SECTIONS
from hybridpot.io.toml import read_toml
from hybridpot.registry import baselines, descriptors, models
from hybridpot.settings import Settings, read_sections


@dataclass
class FitConfig:
    """A validated configuration: ``sections[section][key]`` with defaults filled in and
    paths made absolute.

    Attributes:
        kind: what writes the output folder, "fit" or "demo": a demo replaces only an earlier
            demo's output (:class:`hybridpot.io.outdir.OutputDir`).
        notes: what the configuration says that has no effect (keys of a switch that is off: :func:`inert_keys`); the
            fit logs them as warnings and keeps them in report.json ``config_notes``.
    """

    sections: dict[str, dict[str, Any]]
    source: str
    kind: str = "fit"
    notes: list[str] = dataclasses.field(default_factory=list)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.sections[section]

    def with_settings(self, changes: dict[str, dict[str, Any]]) -> FitConfig:
        """A copy with ``changes`` (section -> key -> value) merged into its sections (not validated again: the caller
        changes only keys it knows, e.g. [fit] tune's chosen settings)."""
        return FitConfig({**self.sections, **{s: {**self.sections[s], **v} for s, v in changes.items()}}, self.source, self.kind,
                         self.notes)


def fail(source: str, msg: str) -> ConfigError:
    """A configuration error naming its source (file) first."""
    return ConfigError(f"{source}: {msg}")


def parse_config(raw: dict[str, Any], base_dir: Path, source: str = "<config>",
                 sections: Mapping[str, type[Settings]] = SECTIONS) -> FitConfig:
    """Validate a configuration dictionary (as read from TOML): each section by its settings
    (:mod:`hybridpot.fitting.sections`; a baseline, descriptor or model type's own keys by the type's), then what
    involves several sections. ``sections``: the fit's sections, or a variant with the same names (``hybridpot active``'s
    ``[output]`` has defaults of its own).

    Raises:
        ConfigError: unknown section/key, wrong type, missing required key, bad value, or a
            data/potential file that does not exist.
    """
    unknown = set(raw) - set(sections)
    if unknown:
        raise fail(source, f"unknown section(s) {sorted(unknown)}; allowed: {sorted(sections)}")
    raw = dict(raw)
    given = {name: set(table) for name, table in raw.items() if isinstance(table, dict)}
    typed = {section: _split_typed(raw, section) for section in TYPED}
    out = {name: dataclasses.asdict(s) for name, s in read_sections(raw, sections, source, base_dir).items()}
    _check_baseline(out, source)
    for section, registry in TYPED.items():
        _check_typed(out, section, registry, typed[section], source, base_dir)
    _check_fit(out, source)
    return FitConfig(out, source, notes=inert_keys(given, out))


#: keys that act only while a switch is on: (section, the keys' prefix, is the switch on, how to turn it on)
_SWITCHED = (
    ("fit", "tune_", lambda s: s["tune"], "tune = true (or hybridpot fit --tune)"),
    ("baseline", "refit_", lambda s: bool(s["refit"]), "refit = [the names of the parameters to co-fit]"),
)


def inert_keys(given: Mapping[str, set[str]], sections: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One note per section whose keys ``given`` (section -> the keys the configuration sets) have no effect because
    their switch is off in the validated ``sections`` (e.g. [fit] tune_budget_s without tune: kept in a file that
    sometimes runs with ``--tune``, so a note, not an error)."""
    notes = []
    for section, prefix, on, how in _SWITCHED:
        keys = sorted(k for k in given.get(section, ()) if k.startswith(prefix))
        if keys and section in sections and not on(sections[section]):
            notes.append(f"[{section}] {', '.join(keys)} {'has' if len(keys) == 1 else 'have'} no effect without {how}: ignored")
    return notes


def _check_fit(c: dict[str, dict[str, Any]], source: str) -> None:
    """What [fit]'s settings need of the model and the baseline."""
    f = c["fit"]
    linear = models.get(c["model"]["type"]).linear
    if f["energy_weight"] == "cv":
        if not linear:
            raise fail(source, f"[fit] energy_weight = 'cv' needs a model linear in its parameters (linear, quadratic, kernel); the "
                               f"{c['model']['type']} model is trained, not solved: give a number")
        if c["baseline"]["refit"]:
            raise fail(source, "[fit] energy_weight = 'cv' cannot be combined with [baseline] refit; give a number")
    if f["tune"]:
        if not linear:
            raise fail(source, "[fit] tune scores candidates by CV from the solver's factors: it needs a model linear in its parameters "
                               "(linear, quadratic, kernel)")
        for name in f["tune_models"]:
            if not models.get(name, f"{source}: [fit] tune_models").linear:
                raise fail(source, f"[fit] tune_models: {name!r} is not linear in its parameters: the tune scores candidates by CV "
                                   "from the solver's factors")
    if f["tune_kinds"] and "kind" in c["descriptor"]:  # a descriptor without kinds: the tune says it searches none
        settings = settings_of(c, "descriptor")
        for kind in f["tune_kinds"]:
            dataclasses.replace(settings, kind=kind).check_values(f"{source}: [fit] tune_kinds:")


def read_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> FitConfig:
    """Read and validate a TOML configuration file, with ``overrides`` (section -> key -> value, e.g. the command line's
    ``--tune``) merged in before the validation."""
    path = Path(path)
    raw = read_toml(path)
    for section, values in (overrides or {}).items():
        table = raw.get(section, {})
        raw[section] = {**table, **values} if isinstance(table, dict) else table  # not a table: the validation says so
    return parse_config(raw, path.resolve().parent, str(path))


def _check_baseline(c: dict[str, dict[str, Any]], source: str) -> None:
    """[baseline]: its kind ('file', 'none' or an inline type, put in ``type``) and what the mode and refit need of it."""
    b = c["baseline"]
    kind = b["type"] or ("file" if b["file"] else None)
    if kind is None:
        raise fail(source, f"[baseline] needs file = '...' or type = 'none' | {' | '.join(repr(n) for n in _inline_types())}")
    if kind not in ("file", "none"):
        baselines.get(kind, f"{source}: [baseline] type")  # unknown types: ConfigError listing the known ones
        if baselines.get(kind).settings is None:
            raise fail(source, f"[baseline] type = {kind!r} is read from a file: give file = '...' (one of "
                               f"{', '.join(baselines.get(kind).suffixes)}) instead of the type")
    if kind == "file" and not b["file"]:
        raise fail(source, "[baseline] type = 'file' needs file = '...'")
    if kind != "file" and b["file"]:
        raise fail(source, f"[baseline] file = {str(b['file'])!r} with type = {kind!r}: give one of them")
    if kind == "none" and b["mode"] != "on":
        raise fail(source, f"[baseline] mode = {b['mode']!r} needs a baseline to compare (type = 'none' is pure ML already)")
    if b["mode"] != "on" and not models.get(c["model"]["type"], f"{source}: [model] type").linear:
        raise fail(source, f"[baseline] mode = {b['mode']!r} compares CV errors from the solver's factors: it needs a model linear "
                           "in its parameters (linear, quadratic, kernel; for nn, fit with type = 'none' and with the baseline "
                           "and compare the test errors)")
    if kind == "none" and b["refit"]:
        raise fail(source, "[baseline] refit needs a baseline")
    if c["fit"]["baseline_stress_weight"] > 0 and (kind == "none" or b["mode"] != "on"):
        why = "there is none" if kind == "none" else f"with mode = {b['mode']!r} the residual may be fitted without it"
        raise fail(source, f"[fit] baseline_stress_weight = {c['fit']['baseline_stress_weight']} keeps the baseline's stress "
                           f"where the data have none: it needs a baseline under the residual ([baseline] mode = 'on'); {why} "
                           "(its rows would pull the ML stress of those structures to zero)")
    b["type"] = kind


#: the sections whose keys depend on their type: section -> its registry
TYPED = {"baseline": baselines, "descriptor": descriptors, "model": models}


def _inline_types() -> list[str]:
    """The baseline types that can be defined inside the configuration."""
    return [b.name for b in baselines if b.settings is not None]


def _split_typed(raw: dict[str, Any], section: str) -> dict[str, Any]:
    """Take the keys of the section's type out of ``raw[section]`` (the rest is checked by SECTIONS)."""
    table = raw.get(section)
    if not isinstance(table, dict):
        return {}
    common = SECTIONS[section].keys()
    raw[section] = {k: v for k, v in table.items() if k in common}
    return {k: v for k, v in table.items() if k not in common}


def _check_typed(c: dict[str, dict[str, Any]], section: str, registry, keys: dict[str, Any], source: str, base: Path) -> None:
    """Validate the keys of the section's type with its settings (file paths relative to ``base``, the configuration's
    folder) and put them (defaults filled in) into ``c[section]``."""
    values = c[section]
    kind = values["type"]
    where = f"{source}: [{section}]"
    if section == "baseline" and kind in ("file", "none"):
        if keys:
            raise fail(source, f"unknown key(s) {sorted(keys)} in [baseline]; allowed: {sorted(SECTIONS['baseline'].keys())}, and "
                               f"the keys of an inline type ({', '.join(_inline_types())}; see hybridpot config)")
        return
    entry = registry.get(kind, f"{where} type")
    if section == "model" and entry.build is None:
        raise fail(source, f"[model] type = {kind!r} is not fitted directly (a committee is [model] type = 'nn' with "
                           "committee = N)")
    own = entry.settings.keys()
    for key in sorted(set(keys) - set(own)):  # a key of another type: say which
        others = [e.name for e in registry if e.settings is not None and key in e.settings.keys()]
        if others:
            raise fail(source, f"[{section}] {key} = {keys[key]!r} applies to {' and '.join(others)} {section}s, not to "
                               f"type = {kind!r} (its keys: {', '.join(own) or 'none'})")
    unknown = sorted(set(keys) - set(own))
    if unknown:
        raise fail(source, f"unknown key(s) {unknown} in [{section}]; allowed with type = {kind!r}: "
                           f"{sorted(set(own) | set(SECTIONS[section].keys()))}")
    values.update(dataclasses.asdict(entry.settings.from_table(keys, where, base=base)))


def settings_of(c, section: str):
    """The typed settings of a validated typed section (``[descriptor]``, ``[model]``, an inline ``[baseline]``)."""
    values = c[section]
    entry = TYPED[section].get(values["type"])
    return entry.settings(**{k: values[k] for k in entry.settings.keys()})


def describe(section: str | None = None, sections: Mapping[str, type[Settings]] = SECTIONS) -> str:
    """Every key of a configuration (by default ``hybridpot fit``'s; ``sections``: name -> settings, e.g.
    ``hybridpot active``'s) or of one ``section``, with its type, default and meaning, and the registered baseline,
    descriptor and model types (an inline baseline type's keys too): what ``hybridpot config`` prints.

    Raises:
        ConfigError: an unknown section.
    """
    _check_section(section, sections)
    out = []
    for name, settings in sections.items():
        if section not in (None, name):
            continue
        out.append(f"[{name}]")
        for key, kind, default, text in settings.describe():
            out.append(f"  {key:<26} {kind:<20} {default:<12} {text}")
        registry = {"baseline": baselines, "descriptor": descriptors, "model": models}.get(name)
        if registry is not None:
            out.append(f"  {name} types:")
            for entry in registry:
                files = f" (files {', '.join(entry.suffixes)})" if getattr(entry, "suffixes", ()) else ""
                default = " (the default)" if name != "baseline" and _default_type(name) == entry.name else ""
                out.append(f"    {entry.name:<12} {entry.summary}{files}{default}")
                settings = getattr(entry, "settings", None)
                for key, kind, default, text in (settings.describe() if settings is not None else ()):
                    out.append(f"      {key:<24} {kind:<20} {default:<12} {text}")
        out.append("")
    return "\n".join(out)


#: the values :func:`commented_toml` writes for the fit's required keys: (section, key) -> TOML value
PLACEHOLDERS = {("data", "train"): '"train.xyz"', ("baseline", "file"): '"baseline.eam.alloy"'}


def commented_toml(section: str | None = None, sections: Mapping[str, type[Settings]] = SECTIONS,
                   placeholders: Mapping[tuple[str, str], str] = PLACEHOLDERS, command: str = "fit") -> str:
    """A configuration file (by default ``hybridpot fit``'s; see :func:`describe`) with every key (or those of one
    ``section``): required keys set to their placeholder (a TOML value), the others commented out at their default (so
    the file as written uses the defaults), each with its type and meaning; what ``hybridpot config --toml`` prints.

    Raises:
        ConfigError: an unknown section.
    """
    _check_section(section, sections)
    out = [f"# hybridpot {command} configuration (`hybridpot config` lists the types and the keys of inline baselines)"]
    for name, settings in sections.items():
        if section not in (None, name):
            continue
        out += ["", f"[{name}]"]
        out += _toml_lines(settings, {key: text for (table, key), text in placeholders.items() if table == name})
        if name in ("descriptor", "model"):
            for entry in TYPED[name]:
                if entry.settings is None:
                    continue
                out.append(f"# with type = {entry.name!r}{' (the default)' if entry.name == _default_type(name) else ''}:")
                out += _toml_lines(entry.settings, {})
    return "\n".join(out) + "\n"


def _check_section(section: str | None, sections: Mapping[str, type[Settings]]) -> None:
    if section is not None and section not in sections:
        raise ConfigError(f"unknown section {section!r}; sections: {', '.join(sections)}")


def _default_type(section: str) -> str:
    """The ``type`` a typed section has when the configuration does not say."""
    return SECTIONS[section].keys()["type"].default


def _toml_lines(settings: type[Settings], placeholders: dict[str, str]) -> list[str]:
    """The keys of ``settings`` as :func:`commented_toml` writes them (``placeholders``: key -> the value written for a
    required key)."""
    return [_toml_line(key, kind, ... if default == "required" else _parse_repr(default), text, placeholders.get(key))
            for key, kind, default, text in settings.describe()]


def _toml_line(key: str, kind: str, default: Any, text: str, placeholder: str | None) -> str:
    """One key of :func:`commented_toml`: set to the placeholder, or commented out at its default."""
    if placeholder is not None:
        return f"{key} = {placeholder}  # {kind}: {text}"
    if default is None or default is ...:
        return f"# {key} =  # {kind}, {'required' if default is ... else 'not set by default'}: {text}"
    return f"# {key} = {_toml_value(default)}  # {kind}: {text}"


def _parse_repr(text: str) -> Any:
    """The value of a :meth:`Settings.describe` default (a repr of a literal)."""
    return ast.literal_eval(text)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def demo_config(out_dir: str | Path, plots: bool = True) -> FitConfig:
    """The configuration of ``hybridpot demo``: the bundled Cu data, the Mishin EAM and a linear
    residual on the LAMMPS so3 power spectrum (nmax = lmax = 4, rcut 5 A, alpha 2), output in ``out_dir``."""

    raw = {
        "data": {"train": str(bundled("Cu_train.xyz")), "test": str(bundled("Cu_test.xyz"))},
        "baseline": {"file": str(bundled("Cu_mishin1.eam.alloy"))},
        "descriptor": {"basis": "lammps", "kind": "power", "rcut": 5.0, "nmax": 4, "lmax": 4, "alpha": 2.0},
        "model": {"type": "linear"},
        # energy weight 300: chosen by 5-fold CV on the full mlearn Cu training set (a superset of the
        # bundled training structures; the bundled test structures come from the mlearn test split)
        "fit": {"energy_weight": 300.0, "force_weight": 1.0, "seed": 0},
        # overwrite: a demo replaces the previous demo's output, and only that (FitConfig.kind)
        "output": {"dir": str(Path(out_dir).resolve()), "overwrite": True, "plots": plots},
    }
    config = parse_config(raw, Path.cwd(), "hybridpot demo")
    config.kind = "demo"
    return config
