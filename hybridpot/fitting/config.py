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

``energy_weight = "cv"`` (linear and quadratic models) chooses the energy weight among
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
from typing import Any

from hybridpot.dataset import bundled
from hybridpot.errors import ConfigError
from hybridpot.distributed import check_cluster
from hybridpot.io.toml import read_toml
from hybridpot.prediction import DEFAULT_BATCH_ATOMS
from hybridpot.registry import baselines, descriptors, models
from hybridpot.settings import non_finite

_NUM = (int, float)
#: default energy_weight_candidates per weight_scale
CV_CANDIDATES = {"spread": [0.3, 1.0, 3.0, 10.0, 30.0], "rows": [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]}

#: the NLopt algorithms [baseline] refit_algorithm accepts: derivative-free, bounded (the baseline's parameters have no gradient
#: where LAMMPS computes it; every trial solves the residual exactly)
REFIT_ALGORITHMS = ("LN_BOBYQA", "LN_COBYLA", "LN_NELDERMEAD", "LN_SBPLX")
#: how a co-fit with several starts picks one (hybridpot.fitting.cofit)
REFIT_CHOICES = ("objective", "cv")

#: [fit] tune: the largest value the growth of a coordinate may reach (hybridpot.fitting.tune)
TUNE_CAPS: dict[str, int] = {"nmax": 10, "lmax": 8, "zeta": 8, "n_sparse": 4000}

#: section -> key -> (accepted types, default, help); default ``...`` marks a required key
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any, str]]] = {
    "data": {
        "train": ((str,), ..., "training structures with energies (and forces, stress): anything ase.io.read takes"),
        "test": ((str,), None, "test structures, same format (optional)"),
        "check_units": ((bool,), True, "stop on labels that look like a unit or sign mistake (hybridpot.fitting.units)"),
        "check_outliers": ((bool,), True, "stop on structures or atoms whose labels are far outside the rest of their set "
                                         "(hybridpot.fitting.outliers: another DFT setup, unconverged, one structure's units "
                                         "or sign); false: warn, record, fit anyway"),
    },
    "baseline": {
        "file": ((str,), None, "the empirical potential file; its name says the kind (the baseline types below); the data's "
                               "elements are matched to the file's element names by chemical symbol"),
        "type": ((str,), None, "'none', or a baseline type defined inline with its keys in this table (below)"),
        "mode": ((str,), "on", "'on': fit the residual over the baseline; 'off': fit pure ML (the baseline is only compared); "
                               "'auto': keep the better of the two by k-fold CV on the training set (linear and quadratic models)"),
        "check": ((bool,), True, "linear/quadratic: k-fold CV errors of hybrid, pure ML and baseline alone in the log and "
                                 "report.json, with a warning when the baseline makes the fit worse"),
        "refit": ((list,), [], "baseline parameters to co-fit with the residual: names of the potential's parameters (type "
                               "'lammps': 'FILE:PATH' into a potential file, e.g. 'ffield.reax.cho:bond.C.H.1', 'library.meam:Li.b0')"),
        "refit_range": (_NUM, 0.5, "co-fitted parameters stay within initial * (1 +/- refit_range), unless refit_bounds gives theirs"),
        "refit_bounds": ((dict,), {}, "explicit bounds per refitted parameter: {\"NAME\" = [lower, upper]} (in the parameter's "
                                      "units; needed for a parameter that starts at 0)"),
        "refit_max_evals": ((int,), 100, "objective evaluations of the co-fit (per start)"),
        "refit_starts": ((int,), 1, "co-fit local searches: from the initial parameters and from refit_starts - 1 random points "
                                    "in the bounds (seeded by [fit] seed); refit_choose picks one"),
        "refit_choose": ((str,), "objective", "which start's parameters a co-fit keeps: 'objective' (the lowest training objective) "
                                             "or 'cv' (the lowest k-fold held-out error of the residual fitted at each start's "
                                             "parameters, [model] cv_folds)"),
        "refit_algorithm": ((str,), "LN_BOBYQA", f"NLopt derivative-free algorithm of the co-fit: {', '.join(REFIT_ALGORITHMS)}"),
    },
    "descriptor": {
        "type": ((str,), "so3", "descriptor type (below); its keys go in this table too"),
    },
    "model": {
        "type": ((str,), "linear", "model type (below); its keys go in this table too"),
    },
    "fit": {
        "energy_weight": ((int, float, str), 1.0, "weight of the energy rows, or 'cv' (chosen by cross-validation)"),
        "energy_weight_candidates": ((list,), None, "the candidates of energy_weight = 'cv' (factors of the normalised energy weight; "
                                                    f"default {CV_CANDIDATES['spread']}, with weight_scale = 'rows' {CV_CANDIDATES['rows']})"),
        "energy_weight_targets": ((list,), None, "energy_weight = 'cv': [energy meV/atom, force eV/A] the errors are measured against"),
        "force_weight": (_NUM, 1.0, "weight of the force rows"),
        "stress_weight": (_NUM, 0.0, "weight of the stress (virial) rows"),
        "weight_scale": ((str,), "spread", "'spread': each kind's weight is divided by the squared spread of its residual targets "
                                           "(hybridpot.fitting.assembly.target_scales), so 1:1:1 balances the kinds in any units; "
                                           "'rows': only by its number of rows (absolute units, as before)"),
        "baseline_stress_weight": (_NUM, 0.0, "keep the baseline's stress where the data have none (weight of those rows)"),
        "tune": ((bool,), False, "search the descriptor's rcut, invariants (tune_kinds), nmax, lmax (and alpha), the model type (tune_models) and a kernel "
                                 "model's zeta and n_sparse by "
                                 "k-fold CV on train before the fit, each numeric one a line search from the grid value nearest the "
                                 "best so far that stops at the first step not better (models linear in their parameters; hybridpot.fitting.tune; "
                                 "hybridpot fit --tune); the table goes in report.json fit.tune"),
        "tune_budget_s": (_NUM, 300.0, "tune: no further candidate is started after this many seconds"),
        "tune_budget_candidates": ((int,), None, "tune: nor once this many candidates were fitted (a budget that gives the same "
                                                 "search on every machine; none by default)"),
        "tune_rcut_factors": ((list,), [1.9, 2.2, 2.5, 2.8], "tune: rcut candidates, times the median nearest-neighbour distance (the search starts at the one nearest the "
                                                             "configured rcut)"),
        "tune_models": ((list,), ["linear", "quadratic"], "tune: model types searched (those with the configured model's [model] "
                                                          "keys: linear and quadratic share theirs), the whole search once per "
                                                          "type with an equal share of the budget left; the best over all kept"),
        "tune_kinds": ((list,), ["power", "bispectrum"], "tune: the descriptor's invariant kinds searched right after rcut (the "
                                                         "bispectrum's three-neighbour invariants are larger and slower to fit; "
                                                         "benchmarks: README); [] : the configured kind only"),
        "tune_nmax": ((list,), [4, 5, 6], "tune: nmax candidates (at the best rcut); while the largest tried is best, the next "
                                          f"one up (the last spacing) is tried too, up to nmax {TUNE_CAPS['nmax']}"),
        "tune_lmax": ((list,), [3, 4, 5], f"tune: lmax candidates (at the best rcut and nmax); grown like nmax, up to lmax "
                                          f"{TUNE_CAPS['lmax']}"),
        "tune_alpha": ((list,), [1.0, 2.0, 3.0], "tune: alpha candidates, 1/Angstrom^2 (basis = 'lammps' only; after lmax)"),
        "tune_zeta": ((list,), [2, 3, 4], "tune: zeta candidates of a polynomial-kernel model (after the descriptor's settings); "
                                          f"grown like nmax, up to zeta {TUNE_CAPS['zeta']}"),
        "tune_n_sparse": ((list,), [250, 500, 1000], "tune: n_sparse candidates of a kernel model (after zeta; the candidates "
                                                     "before use the smallest); grown like nmax while the basis is not clamped to "
                                                     f"the distinct environments, up to {TUNE_CAPS['n_sparse']}"),
        "train_fraction": (_NUM, 1.0, "use this fraction of the training structures (seeded)"),
        "seed": ((int,), 0, "seed of every random choice (subsets, folds, nn initial weights)"),
        "config_weights": ((dict,), {}, "extra weight per config_type"),
        "batch_atoms": ((int,), DEFAULT_BATCH_ATOMS, "atoms per batch of the design matrix and predictions: time against memory (the design matrix of wide "
                                                        "models, e.g. quadratic, uses fewer: 16 MiB of force rows per batch)"),
        "cluster": ((str,), None, "run the passes over the data on Dask (baseline predictions, design matrix, evaluation, "
                    "uncertainty data, active-learning scoring; nn training stays in this process): 'local:N' (N worker "
                    "processes) or a scheduler address ('tcp://host:8786'); needs hybridpot[dask]"),
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

    def with_settings(self, changes: dict[str, dict[str, Any]]) -> FitConfig:
        """A copy with ``changes`` (section -> key -> value) merged into its sections (not validated again: the caller
        changes only keys it knows, e.g. [fit] tune's chosen settings)."""
        return FitConfig({**self.sections, **{s: {**self.sections[s], **v} for s, v in changes.items()}}, self.source, self.kind)


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
    typed = {section: _split_typed(raw, section) for section in TYPED}
    out = validate_sections(raw, SCHEMA, source)
    _check_values(out, base_dir, source)
    for section, registry in TYPED.items():
        _check_typed(out, section, registry, typed[section], source, base_dir)
    _check_tune_kinds(out, source)
    return FitConfig(out, source)


def _check_tune_kinds(c: dict[str, dict[str, Any]], source: str) -> None:
    """``[fit] tune_kinds``: distinct kinds, each one the descriptor accepts (checked by its own settings)."""
    kinds = c["fit"]["tune_kinds"]
    if not all(isinstance(k, str) for k in kinds) or len(set(kinds)) != len(kinds):
        raise fail(source, f"[fit] tune_kinds = {kinds!r}: expected a list of distinct invariant kinds, e.g. ['power', 'bispectrum']")
    if not kinds or "kind" not in c["descriptor"]:  # a descriptor without kinds: the tune says it searches none
        return
    settings = settings_of(c, "descriptor")
    for kind in kinds:
        dataclasses.replace(settings, kind=kind).check(f"{source}: [fit] tune_kinds:")


def read_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> FitConfig:
    """Read and validate a TOML configuration file, with ``overrides`` (section -> key -> value, e.g. the command line's
    ``--tune``) merged in before the validation."""
    path = Path(path)
    raw = read_toml(path)
    for section, values in (overrides or {}).items():
        table = raw.get(section, {})
        raw[section] = {**table, **values} if isinstance(table, dict) else table  # not a table: the validation says so
    return parse_config(raw, path.resolve().parent, str(path))


def _check_values(c: dict[str, dict[str, Any]], base: Path, source: str) -> None:
    for key in ("train", "test"):
        if c["data"][key] is not None:
            p = (base / c["data"][key]).resolve()
            if not p.is_file():
                raise fail(source, f"[data] {key}: file not found: {p}")
            c["data"][key] = p
    if c["fit"]["cluster"] is not None:
        try:
            check_cluster(c["fit"]["cluster"])
        except ConfigError as exc:
            raise fail(source, str(exc)) from exc
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
    if b["mode"] not in ("on", "off", "auto"):
        raise fail(source, f"[baseline] mode = {b['mode']!r}: expected 'on', 'off' or 'auto'")
    if kind == "none" and b["mode"] != "on":
        raise fail(source, f"[baseline] mode = {b['mode']!r} needs a baseline to compare (type = 'none' is pure ML already)")
    if b["mode"] != "on" and not models.get(c["model"]["type"], f"{source}: [model] type").linear:
        raise fail(source, f"[baseline] mode = {b['mode']!r} compares CV errors from the solver's factors: it needs a linear or "
                           "quadratic model (for nn, fit with type = 'none' and with the baseline and compare the test errors)")
    if kind == "none" and b["refit"]:
        raise fail(source, "[baseline] refit needs a baseline")
    if not 0 < b["refit_range"] < 1:
        raise fail(source, f"[baseline] refit_range = {b['refit_range']}: expected 0 < value < 1 (relative bound)")
    if b["refit_max_evals"] < 1:
        raise fail(source, f"[baseline] refit_max_evals = {b['refit_max_evals']}: must be >= 1")
    if b["refit_starts"] < 1:
        raise fail(source, f"[baseline] refit_starts = {b['refit_starts']}: must be >= 1")
    if b["refit_choose"] not in REFIT_CHOICES:
        raise fail(source, f"[baseline] refit_choose = {b['refit_choose']!r}: expected one of {', '.join(REFIT_CHOICES)}")
    if b["refit_algorithm"] not in REFIT_ALGORITHMS:
        raise fail(source, f"[baseline] refit_algorithm = {b['refit_algorithm']!r}: expected one of {', '.join(REFIT_ALGORITHMS)} "
                           "(NLopt's bounded derivative-free algorithms)")
    if not all(isinstance(x, str) for x in b["refit"]) or len(set(b["refit"])) != len(b["refit"]):
        raise fail(source, f"[baseline] refit = {b['refit']!r}: expected distinct parameter names")
    for name, bounds in b["refit_bounds"].items():
        if name not in b["refit"]:
            raise fail(source, f"[baseline] refit_bounds names {name!r}, which refit does not list ({b['refit']})")
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(x, _NUM) and not isinstance(x, bool) for x in bounds)
                and bounds[0] < bounds[1]):
            raise fail(source, f"[baseline] refit_bounds.{name} = {bounds!r}: expected [lower, upper] with lower < upper")
    b["type"] = kind
    f = c["fit"]
    if f["weight_scale"] not in CV_CANDIDATES:
        raise fail(source, f"[fit] weight_scale = {f['weight_scale']!r}: expected 'spread' or 'rows'")
    if f["energy_weight_candidates"] is None:
        f["energy_weight_candidates"] = list(CV_CANDIDATES[f["weight_scale"]])
    if isinstance(f["energy_weight"], str):
        _check_energy_weight_cv(c, source)
    elif f["energy_weight_targets"] is not None:
        raise fail(source, "[fit] energy_weight_targets only applies to energy_weight = 'cv'")
    for key in ("energy_weight", "force_weight", "stress_weight", "baseline_stress_weight"):
        if not isinstance(f[key], str) and f[key] < 0:
            raise fail(source, f"[fit] {key} = {f[key]}: must be >= 0")
    if f["tune"]:
        if not models.get(c["model"]["type"], f"{source}: [model] type").linear:
            raise fail(source, "[fit] tune scores candidates by CV from the solver's factors: it needs a linear or quadratic model "
                               "(or another linear in its parameters, e.g. kernel)")
        if f["tune_budget_s"] <= 0:
            raise fail(source, f"[fit] tune_budget_s = {f['tune_budget_s']}: must be > 0")
        if f["tune_budget_candidates"] is not None and f["tune_budget_candidates"] < 1:
            raise fail(source, f"[fit] tune_budget_candidates = {f['tune_budget_candidates']}: must be >= 1")
        for key, kind in (("tune_rcut_factors", _NUM), ("tune_nmax", int), ("tune_lmax", int), ("tune_alpha", _NUM), ("tune_zeta", int),
                          ("tune_n_sparse", int)):
            v = f[key]
            if not v or not all(isinstance(x, kind) and not isinstance(x, bool) and x > 0 for x in v) or len(set(v)) != len(v):
                raise fail(source, f"[fit] {key} = {v!r}: expected a non-empty list of distinct positive "
                                   f"{'numbers' if kind is _NUM else 'integers'}")
        v = f["tune_models"]
        if not v or not all(isinstance(x, str) for x in v) or len(set(v)) != len(v):
            raise fail(source, f"[fit] tune_models = {v!r}: expected a non-empty list of distinct model type names")
        for name in v:
            if not models.get(name, f"{source}: [fit] tune_models").linear:
                raise fail(source, f"[fit] tune_models: {name!r} is not linear in its parameters: the tune scores candidates by CV "
                                   "from the solver's factors")
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


#: the sections whose keys depend on their type: section -> its registry
TYPED = {"baseline": baselines, "descriptor": descriptors, "model": models}


def _inline_types() -> list[str]:
    """The baseline types that can be defined inside the configuration."""
    return [b.name for b in baselines if b.settings is not None]


def _split_typed(raw: dict[str, Any], section: str) -> dict[str, Any]:
    """Take the keys of the section's type out of ``raw[section]`` (the rest is checked by SCHEMA)."""
    table = raw.get(section)
    if not isinstance(table, dict):
        return {}
    common = SCHEMA[section]
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
            raise fail(source, f"unknown key(s) {sorted(keys)} in [baseline]; allowed: {sorted(SCHEMA['baseline'])}, and "
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
                           f"{sorted(set(own) | set(SCHEMA[section]))}")
    values.update(dataclasses.asdict(entry.settings.from_table(keys, where, base=base)))


def settings_of(c, section: str):
    """The typed settings of a validated typed section (``[descriptor]``, ``[model]``, an inline ``[baseline]``)."""
    values = c[section]
    entry = TYPED[section].get(values["type"])
    return entry.settings(**{k: values[k] for k in entry.settings.keys()})


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
    if not models.get(c["model"]["type"], f"{source}: [model] type").linear:
        raise fail(source, f"[fit] energy_weight = 'cv' needs a model linear in its parameters (linear, quadratic, kernel); the "
                           f"{c['model']['type']} model is trained, not solved: give a number")
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
                default = " (the default)" if name != "baseline" and keys["type"][1] == entry.name else ""
                out.append(f"    {entry.name:<12} {entry.summary}{files}{default}")
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
            out.append(_toml_line(key, kind, default, text, placeholders.get((name, key))))
        if name in ("descriptor", "model"):
            for entry in TYPED[name]:
                if entry.settings is None:
                    continue
                out.append(f"# with type = {entry.name!r}{' (the default)' if entry.name == keys['type'][1] else ''}:")
                for key, kind, default, text in entry.settings.describe():
                    out.append(_toml_line(key, kind, ... if default == "required" else _parse_repr(default), text, None))
    return "\n".join(out) + "\n"


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
