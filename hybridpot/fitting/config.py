"""The ``hybridpot fit`` configuration: TOML, validated completely before anything runs.

Relative paths are resolved against the directory of the configuration file. Unknown sections
or keys, wrong types and out-of-range values are errors naming the file and the key. Example::

    [data]
    train = "train.xyz"          # anything ase.io.read takes, with energies (and forces)
    test = "test.xyz"            # optional
    check_units = true           # stop on labels that look like a unit or sign mistake (hybridpot.fitting.units)
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
    energy_weight = 1.0
    force_weight = 1.0
    stress_weight = 0.0
    train_fraction = 1.0
    seed = 0
    [output]
    dir = "runs/cu"

``energy_weight = "cv"`` (linear and quadratic models) chooses the energy weight among
``energy_weight_candidates`` (default 1, 3, ..., 1000) by k-fold cross-validation over the
training structures (``[model] cv_folds``, seeded by ``seed``): the weight whose held-out energy
and force errors are jointly best (:func:`hybridpot.fitting.linear.choose_energy_weight`; each error
relative to the best any candidate reaches, or to ``energy_weight_targets = [meV/atom, eV/A]``).

Further [fit] keys: ``baseline_stress_weight`` (virial rows with a zero residual target for the
structures without a reference stress: keeps the baseline's stress where the data are silent;
a trade-off against energies, see benchmarks/results/mlearn_search.md), ``config_weights``
(extra weight per config_type), ``batch_atoms`` (atoms per assembly batch: time against memory).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybridpot.dataset import bundled
from hybridpot.descriptors.radial import LAMMPS_MAX_NMAX, LAMMPS_MAX_PANELS, max_lammps_alpha
from hybridpot.errors import ConfigError
from hybridpot.io.toml import read_toml
from hybridpot.prediction import DEFAULT_BATCH_ATOMS
from hybridpot.registry import baselines, descriptors, models
from hybridpot.settings import non_finite

_NUM = (int, float)

#: section -> key -> (accepted types, default, help); default ``...`` marks a required key
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any, str]]] = {
    "data": {
        "train": ((str,), ..., "training structures with energies (and forces, stress): anything ase.io.read takes"),
        "test": ((str,), None, "test structures, same format (optional)"),
        "check_units": ((bool,), True, "stop on labels that look like a unit or sign mistake (hybridpot.fitting.units)"),
    },
    "baseline": {
        "file": ((str,), None, "the empirical potential file; its name says the kind (the baseline types below); the data's "
                               "elements are matched to the file's element names by chemical symbol"),
        "type": ((str,), None, "'none', or a baseline type defined inline with its keys in this table (below)"),
        "refit": ((list,), [], "baseline parameters to co-fit with the residual (names of the potential's parameters)"),
        "refit_range": (_NUM, 0.5, "co-fitted parameters stay within initial * (1 +/- refit_range)"),
        "refit_max_evals": ((int,), 100, "objective evaluations of the co-fit"),
        "refit_algorithm": ((str,), "LN_BOBYQA", "NLopt algorithm of the co-fit"),
    },
    "descriptor": {
        "type": ((str,), "so3", "descriptor type (below)"),
        "basis": ((str,), "lammps", "radial basis: 'lammps' (LAMMPS so3, exportable to ML-IAP) or 'bessel'"),
        "kind": ((str,), "power", "'power' (power spectrum) or 'bispectrum'"),
        "rcut": (_NUM, 5.0, "cutoff, Angstrom"),
        "nmax": ((int,), 4, "radial functions"),
        "lmax": ((int,), 4, "largest angular momentum"),
        "alpha": (_NUM, None, "Gaussian smearing of the lammps basis, 1/Angstrom^2 (default 2.0; not for bessel)"),
        "weights": ((dict,), None, "neighbour weight per element (default 1 each)"),
        "channels": ((bool,), False, "one density channel per element instead of weighted sums"),
    },
    "model": {
        "type": ((str,), "linear", "model type (below)"),
        "regularization": ((str, float, int), "evidence", "linear/quadratic: 'evidence' (Bayesian), 'cv' or a ridge lambda >= 0"),
        "cv_folds": ((int,), 5, "folds of regularization = 'cv' and energy_weight = 'cv'"),
        "hidden": ((list,), [32, 32], "nn: hidden layer widths"),
        "activation": ((str,), "tanh", "nn: tanh, sigmoid, relu or linear (the LAMMPS mliap nn activations)"),
        "epochs": ((int,), 2000, "nn: L-BFGS iterations or Adam epochs"),
        "optimizer": ((str,), "lbfgs", "nn: 'lbfgs' (full batch) or 'adam' (mini-batches)"),
        "learning_rate": (_NUM, None, "nn with adam: step size (default 3e-3)"),
        "patience": ((int,), 200, "nn: stop after this many iterations without a better validation loss"),
        "validation_fraction": (_NUM, 0.1, "nn: structures held out for early stopping"),
        "committee": ((int,), 1, "nn: members of a committee (> 1: its spread is the uncertainty)"),
        "bootstrap": ((bool,), True, "nn committee: members on bootstrap resamples (false: all on the full set)"),
    },
    "fit": {
        "energy_weight": ((int, float, str), 1.0, "weight of the energy rows, or 'cv' (chosen by cross-validation)"),
        "energy_weight_candidates": ((list,), [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0], "the candidates of energy_weight = 'cv'"),
        "energy_weight_targets": ((list,), None, "energy_weight = 'cv': [energy meV/atom, force eV/A] the errors are measured against"),
        "force_weight": (_NUM, 1.0, "weight of the force rows"),
        "stress_weight": (_NUM, 0.0, "weight of the stress (virial) rows"),
        "baseline_stress_weight": (_NUM, 0.0, "keep the baseline's stress where the data have none (weight of those rows)"),
        "train_fraction": (_NUM, 1.0, "use this fraction of the training structures (seeded)"),
        "seed": ((int,), 0, "seed of every random choice (subsets, folds, nn initial weights)"),
        "config_weights": ((dict,), {}, "extra weight per config_type"),
        "batch_atoms": ((int,), DEFAULT_BATCH_ATOMS, "atoms per batch of the design matrix and predictions: time against memory"),
    },
    "output": {
        "dir": ((str,), "runs/fit", "output folder (relative to the configuration file)"),
        "name": ((str,), "model", "the model is written as NAME.hybridpot.json"),
        "plots": ((bool,), True, "write the parity plots"),
        "overwrite": ((bool,), False, "replace an earlier fit's output folder"),
    },
}


@dataclass
class FitConfig:
    """A validated configuration: ``sections[section][key]`` with defaults filled in and
    paths made absolute.

    Attributes:
        kind: what writes the output folder, "fit" or "demo": a demo replaces only an earlier
            demo's output (:class:`hybridpot.io.outdir.OutputDir`).
    """

    sections: dict[str, dict[str, Any]]
    source: str
    kind: str = "fit"

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.sections[section]


def fail(source: str, msg: str) -> ConfigError:
    """A configuration error naming its source (file) first."""
    return ConfigError(f"{source}: {msg}")


def validate_sections(raw: dict[str, Any], schema: dict[str, dict[str, tuple]], source: str) -> dict[str, dict[str, Any]]:
    """The sections of ``schema`` from ``raw`` with types checked and defaults filled in.

    ``schema``: section -> key -> (accepted types, default[, help]), default ``...`` for a required key.
    Sections of ``raw`` that are not in ``schema`` are not looked at (the caller checks them).

    Raises:
        ConfigError: a section that is not a table, an unknown key, a wrong type, a NaN or
            infinite number (TOML has ``nan`` and ``inf``) or a missing required key, naming the
            section and key.
    """
    out: dict[str, dict[str, Any]] = {}
    for section, keys in schema.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise fail(source, f"[{section}] must be a table")
        bad = set(given) - set(keys)
        if bad:
            raise fail(source, f"unknown key(s) {sorted(bad)} in [{section}]; allowed: {sorted(keys)}")
        values = {}
        for key, (types, default, *_) in keys.items():
            if key in given:
                v = given[key]
                if (isinstance(v, bool) and bool not in types) or not isinstance(v, types):
                    raise fail(source, f"[{section}] {key} = {v!r}: expected {' or '.join(t.__name__ for t in types)}")
                if non_finite(v):
                    raise fail(source, f"[{section}] {key} = {v!r}: numbers must be finite (no nan or inf)")
                values[key] = v
            elif default is ...:
                raise fail(source, f"[{section}] {key} is required")
            else:
                values[key] = default
        out[section] = values
    return out


def parse_config(raw: dict[str, Any], base_dir: Path, source: str = "<config>") -> FitConfig:
    """Validate a configuration dictionary (as read from TOML).

    Raises:
        ConfigError: unknown section/key, wrong type, missing required key, bad value, or a
            data/potential file that does not exist.
    """
    unknown = set(raw) - set(SCHEMA)
    if unknown:
        raise fail(source, f"unknown section(s) {sorted(unknown)}; allowed: {sorted(SCHEMA)}")
    raw = dict(raw)
    inline = _split_inline_baseline(raw, source)
    out = validate_sections(raw, SCHEMA, source)
    _check_values(out, base_dir, source)
    _check_inline_baseline(out["baseline"], inline, source)
    return FitConfig(out, source)


def read_config(path: str | Path) -> FitConfig:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    return parse_config(read_toml(path), path.resolve().parent, str(path))


def _check_values(c: dict[str, dict[str, Any]], base: Path, source: str) -> None:
    for key in ("train", "test"):
        if c["data"][key] is not None:
            p = (base / c["data"][key]).resolve()
            if not p.is_file():
                raise fail(source, f"[data] {key}: file not found: {p}")
            c["data"][key] = p
    b = c["baseline"]
    kind = b["type"] or ("file" if b["file"] else None)
    if kind is None:
        raise fail(source, f"[baseline] needs file = '...' or type = 'none' | {' | '.join(repr(n) for n in _inline_types())}")
    if kind not in ("file", "none"):
        baselines.get(kind, f"{source}: [baseline] type")  # unknown types: ConfigError listing the known ones
        if baselines.get(kind).settings is None:
            raise fail(source, f"[baseline] type = {kind!r} is read from a file: give file = '...' (one of "
                               f"{', '.join(baselines.get(kind).suffixes)}) instead of the type")
    if kind == "file":
        if not b["file"]:
            raise fail(source, "[baseline] type = 'file' needs file = '...'")
        p = (base / b["file"]).resolve()
        if not p.is_file():
            raise fail(source, f"[baseline] file not found: {p}")
        b["file"] = p
    elif b["file"]:
        raise fail(source, f"[baseline] file = {b['file']!r} with type = {kind!r}: give one of them")
    if kind == "none" and b["refit"]:
        raise fail(source, "[baseline] refit needs a baseline")
    if not 0 < b["refit_range"] < 1:
        raise fail(source, f"[baseline] refit_range = {b['refit_range']}: expected 0 < value < 1 (relative bound)")
    if b["refit_max_evals"] < 1:
        raise fail(source, f"[baseline] refit_max_evals = {b['refit_max_evals']}: must be >= 1")
    b["type"] = kind
    d = c["descriptor"]
    descriptors.get(d["type"], f"{source}: [descriptor] type")
    if d["basis"] not in ("lammps", "bessel"):
        raise fail(source, f"[descriptor] basis = {d['basis']!r}: expected 'lammps' or 'bessel'")
    if d["kind"] not in ("power", "bispectrum"):
        raise fail(source, f"[descriptor] kind = {d['kind']!r}: expected 'power' or 'bispectrum'")
    if d["basis"] == "lammps" and d["alpha"] is None:
        d["alpha"] = 2.0
    if d["basis"] == "bessel" and d["alpha"] is not None:
        raise fail(source, f"[descriptor] alpha = {d['alpha']}: only basis = 'lammps' has alpha (Gaussian smearing); remove it for 'bessel'")
    for key in ("rcut", "alpha"):
        if d[key] is not None and not d[key] > 0:
            raise fail(source, f"[descriptor] {key} = {d[key]}: must be positive")
    for key in ("nmax", "lmax"):
        if d[key] < 1:
            raise fail(source, f"[descriptor] {key} = {d[key]}: too small (at least 1)")

    if d["basis"] == "lammps" and d["alpha"] > max_lammps_alpha(d["rcut"]):
        raise fail(source, f"[descriptor] alpha = {d['alpha']} with rcut = {d['rcut']}: the Gaussian smearing is too narrow for "
                           f"the radial quadrature (more than {LAMMPS_MAX_PANELS} Gaussian widths across the cutoff; building "
                           f"the basis takes ~10 s at that limit, 90 s at alpha 1000 and rcut 5); use alpha <= {max_lammps_alpha(d['rcut']):.4g} at this rcut "
                           "(typical: 1-5)")
    if d["basis"] == "lammps" and d["nmax"] > LAMMPS_MAX_NMAX:
        raise fail(source, f"[descriptor] nmax = {d['nmax']}: basis = 'lammps' is limited to nmax <= {LAMMPS_MAX_NMAX} (its "
                           "polynomial overlap matrix cannot be orthonormalised accurately beyond); lower nmax or use "
                           "basis = 'bessel'")
    m = c["model"]
    entry = models.get(m["type"], f"{source}: [model] type")
    if entry.build is None:
        raise fail(source, f"[model] type = {m['type']!r} is not fitted directly (a committee is [model] type = 'nn' with "
                           "committee = N)")
    reg = m["regularization"]
    if isinstance(reg, str) and reg not in ("evidence", "cv"):
        raise fail(source, f"[model] regularization = {reg!r}: expected 'evidence', 'cv' or a number >= 0")
    if not isinstance(reg, str) and reg < 0:
        raise fail(source, f"[model] regularization = {reg}: must be >= 0")
    if m["cv_folds"] < 2:
        raise fail(source, f"[model] cv_folds = {m['cv_folds']}: need at least 2")
    if m["activation"] not in ("tanh", "sigmoid", "relu", "linear"):
        raise fail(source, f"[model] activation = {m['activation']!r}: expected tanh, sigmoid, relu or linear (LAMMPS mliap nn)")
    if not all(isinstance(h, int) and h > 0 for h in m["hidden"]):
        raise fail(source, f"[model] hidden = {m['hidden']}: expected a list of positive integers")
    if m["optimizer"] not in ("lbfgs", "adam"):
        raise fail(source, f"[model] optimizer = {m['optimizer']!r}: expected 'lbfgs' or 'adam'")
    if m["learning_rate"] is not None and m["optimizer"] != "adam":
        raise fail(source, "[model] learning_rate applies to optimizer = 'adam' (L-BFGS chooses its steps by line search)")
    if m["learning_rate"] is not None and not m["learning_rate"] > 0:
        raise fail(source, f"[model] learning_rate = {m['learning_rate']}: must be positive")
    if m["epochs"] < 1 or m["patience"] < 1:
        raise fail(source, "[model] epochs and patience must be >= 1")
    if not 0 < m["validation_fraction"] < 1:
        raise fail(source, f"[model] validation_fraction = {m['validation_fraction']}: expected 0 < value < 1")
    if m["committee"] < 1:
        raise fail(source, "[model] committee must be >= 1")
    if m["committee"] > 1 and m["type"] != "nn":
        raise fail(source, f"[model] committee = {m['committee']} applies to nn models; {m['type']} models carry their "
                            "Bayesian posterior instead (set committee = 1)")
    if not m["bootstrap"] and m["committee"] == 1:
        raise fail(source, "[model] bootstrap = false applies to a committee (committee > 1)")
    f = c["fit"]
    if isinstance(f["energy_weight"], str):
        _check_energy_weight_cv(c, source)
    elif f["energy_weight_targets"] is not None:
        raise fail(source, "[fit] energy_weight_targets only applies to energy_weight = 'cv'")
    for key in ("energy_weight", "force_weight", "stress_weight", "baseline_stress_weight"):
        if not isinstance(f[key], str) and f[key] < 0:
            raise fail(source, f"[fit] {key} = {f[key]}: must be >= 0")
    if f["energy_weight"] == 0 and f["force_weight"] == 0:
        raise fail(source, "[fit] energy_weight and force_weight are both 0: nothing to fit")
    if not 0 < f["train_fraction"] <= 1:
        raise fail(source, f"[fit] train_fraction = {f['train_fraction']}: expected 0 < value <= 1")
    if f["batch_atoms"] < 1:
        raise fail(source, "[fit] batch_atoms must be >= 1")
    if f["seed"] < 0:
        raise fail(source, f"[fit] seed = {f['seed']}: must be >= 0 (numpy's random generators refuse negative seeds)")
    for k, v in f["config_weights"].items():
        if not isinstance(v, _NUM) or v < 0:
            raise fail(source, f"[fit] config_weights.{k} = {v!r}: expected a number >= 0")
    name = c["output"]["name"]
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise fail(source, f"[output] name = {name!r}: expected a plain file name (the model is written as NAME.hybridpot.json "
                           "in [output] dir)")
    c["output"]["dir"] = (base / c["output"]["dir"]).resolve()


def _inline_types() -> list[str]:
    """The baseline types that can be defined inside the configuration."""
    return [b.name for b in baselines if b.settings is not None]


def _split_inline_baseline(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Take the keys of an inline baseline's settings out of ``raw["baseline"]`` (the rest is checked by SCHEMA)."""
    table = raw.get("baseline")
    if not isinstance(table, dict):
        return {}
    common = SCHEMA["baseline"]
    raw["baseline"] = {k: v for k, v in table.items() if k in common}
    return {k: v for k, v in table.items() if k not in common}


def _check_inline_baseline(b: dict[str, Any], inline: dict[str, Any], source: str) -> None:
    """Validate an inline baseline's keys with its settings type and put them (defaults filled in) into ``b``."""
    kind = b["type"]
    if kind in ("file", "none"):
        if inline:
            raise fail(source, f"unknown key(s) {sorted(inline)} in [baseline]; allowed: {sorted(SCHEMA['baseline'])}, and "
                               f"the keys of an inline type ({', '.join(_inline_types())}; see hybridpot config)")
        return
    settings = baselines.get(kind).settings.from_table(inline, f"{source}: [baseline]")
    b.update(dataclasses.asdict(settings))


def _check_energy_weight_cv(c: dict[str, dict[str, Any]], source: str) -> None:
    """``energy_weight = "cv"``: what choosing it by cross-validation needs."""
    f = c["fit"]
    if f["energy_weight"] != "cv":
        raise fail(source, f"[fit] energy_weight = {f['energy_weight']!r}: expected a number >= 0 or 'cv'")
    cands = f["energy_weight_candidates"]
    if not cands or not all(isinstance(w, _NUM) and not isinstance(w, bool) and w > 0 for w in cands):
        raise fail(source, f"[fit] energy_weight_candidates = {cands!r}: expected a non-empty list of positive numbers")
    t = f["energy_weight_targets"]
    if t is not None and not (len(t) == 2 and all(isinstance(x, _NUM) and not isinstance(x, bool) and x > 0 for x in t)):
        raise fail(source, f"[fit] energy_weight_targets = {t!r}: expected [energy meV/atom, force eV/A], both positive")
    if c["model"]["type"] == "nn":
        raise fail(source, "[fit] energy_weight = 'cv' needs a linear or quadratic model (the nn model is trained, not solved); "
                           "give a number")
    if c["baseline"]["refit"]:
        raise fail(source, "[fit] energy_weight = 'cv' cannot be combined with [baseline] refit; give a number")
    if f["force_weight"] <= 0:
        raise fail(source, "[fit] energy_weight = 'cv' balances energies against forces: it needs force_weight > 0")


def describe(section: str | None = None) -> str:
    """Every key of the ``hybridpot fit`` configuration (or of one ``section``), with its type, default and meaning,
    and the registered baseline, descriptor and model types (an inline baseline type's keys too): what
    ``hybridpot config`` prints.

    Raises:
        ConfigError: an unknown section.
    """
    if section is not None and section not in SCHEMA:
        raise ConfigError(f"unknown section {section!r}; sections: {', '.join(SCHEMA)}")
    out = []
    for name, keys in SCHEMA.items():
        if section not in (None, name):
            continue
        out.append(f"[{name}]")
        for key, (types, default, text) in keys.items():
            shown = "required" if default is ... else repr(default)
            out.append(f"  {key:<26} {' | '.join(t.__name__ for t in types):<16} {shown:<12} {text}")
        registry = {"baseline": baselines, "descriptor": descriptors, "model": models}.get(name)
        if registry is not None:
            out.append(f"  {name} types:")
            for entry in registry:
                files = f" (files {', '.join(entry.suffixes)})" if getattr(entry, "suffixes", ()) else ""
                out.append(f"    {entry.name:<12} {entry.summary}{files}")
                settings = getattr(entry, "settings", None)
                for key, kind, default, text in (settings.describe() if settings is not None else ()):
                    out.append(f"      {key:<24} {kind:<16} {default:<12} {text}")
        out.append("")
    return "\n".join(out)


def commented_toml(section: str | None = None) -> str:
    """A configuration file with every key (or those of one ``section``): required keys set to a placeholder, the
    others commented out at their default (so the file as written uses the defaults), each with its type and meaning;
    what ``hybridpot config --toml`` prints.

    Raises:
        ConfigError: an unknown section.
    """
    if section is not None and section not in SCHEMA:
        raise ConfigError(f"unknown section {section!r}; sections: {', '.join(SCHEMA)}")
    placeholders = {("data", "train"): '"train.xyz"', ("baseline", "file"): '"baseline.eam.alloy"'}
    out = ["# hybridpot fit configuration (`hybridpot config` lists the types and the keys of inline baselines)"]
    for name, keys in SCHEMA.items():
        if section not in (None, name):
            continue
        out += ["", f"[{name}]"]
        for key, (types, default, text) in keys.items():
            kind = " | ".join(t.__name__ for t in types)
            if (name, key) in placeholders:
                out.append(f"{key} = {placeholders[(name, key)]}  # {kind}: {text}")
            elif default is None:
                out.append(f"# {key} =  # {kind}, not set by default: {text}")
            else:
                out.append(f"# {key} = {_toml_value(default)}  # {kind}: {text}")
    return "\n".join(out) + "\n"


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
