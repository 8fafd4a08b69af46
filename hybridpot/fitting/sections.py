"""The sections of the ``hybridpot fit`` configuration, each a :class:`hybridpot.settings.Settings`: one field per key
(type, default, help) and the checks of its own values. What involves several sections or the registries (the
baseline's kind, the model a setting needs) is checked by :mod:`hybridpot.fitting.config`; the keys of a baseline,
descriptor or model *type* are that type's own settings (the registries).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hybridpot.distributed import check_cluster
from hybridpot.errors import ConfigError
from hybridpot.prediction import DEFAULT_BATCH_ATOMS
from hybridpot.settings import Settings, option, required

#: default energy_weight_candidates per weight_scale
CV_CANDIDATES = {"spread": [0.3, 1.0, 3.0, 10.0, 30.0], "rows": [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]}

#: the NLopt algorithms [baseline] refit_algorithm accepts: derivative-free, bounded (the baseline's parameters have no gradient
#: where LAMMPS computes it; every trial solves the residual exactly)
REFIT_ALGORITHMS = ("LN_BOBYQA", "LN_COBYLA", "LN_NELDERMEAD", "LN_SBPLX")
#: how a co-fit with several starts picks one (hybridpot.fitting.cofit)
REFIT_CHOICES = ("objective", "cv")

#: [fit] tune: the largest value the growth of a coordinate may reach (hybridpot.fitting.tune)
TUNE_CAPS: dict[str, int] = {"nmax": 10, "lmax": 8, "zeta": 8, "n_sparse": 4000}
#: the largest rcut the tune's growth reaches, times the median nearest-neighbour distance (Si 7.2 A, Cu 7.5 A)
TUNE_RCUT_CAP_FACTOR = 3.4


def positive_distinct(values: list, where: str, what: str) -> None:
    """ConfigError unless ``values`` is a non-empty list of distinct positive numbers (``what``: 'numbers' or 'integers')."""
    if not values or not all(v > 0 for v in values) or len(set(values)) != len(values):
        raise ConfigError(f"{where} = {values!r}: expected a non-empty list of distinct positive {what}")


@dataclass
class DataSettings(Settings):
    """[data]: the labelled structures."""

    file_keys = ("train", "test")

    train: str = required("training structures with energies (and forces, stress): anything ase.io.read takes")
    test: str | None = option(None, "test structures, same format (optional)")
    check_units: bool = option(True, "stop on labels that look like a unit or sign mistake (hybridpot.fitting.units)")
    check_outliers: bool = option(True, "stop on structures or atoms whose labels are far outside the rest of their set "
                                        "(hybridpot.fitting.outliers: another DFT setup, unconverged, one structure's units "
                                        "or sign), and on copies of one structure with other labels; false: warn, record, "
                                        "fit anyway")


@dataclass
class BaselineSettings(Settings):
    """[baseline]: the keys of every baseline (an inline type's own keys are its settings in the registry)."""

    file_keys = ("file",)

    file: str | None = option(None, "the empirical potential file; its name says the kind (the baseline types below); the data's "
                                    "elements are matched to the file's element names by chemical symbol")
    type: str | None = option(None, "'none', or a baseline type defined inline with its keys in this table (below)")
    mode: str = option("on", "'on': fit the residual over the baseline; 'off': fit pure ML (the baseline is only compared); "
                             "'auto': keep the better of the two by k-fold CV on the training set (linear, quadratic and kernel models)")
    check: bool = option(True, "linear/quadratic: k-fold CV errors of hybrid, pure ML and baseline alone in the log and "
                               "report.json, with a warning when the baseline makes the fit worse")
    refit: list[str] = option([], "baseline parameters to co-fit with the residual: names of the potential's parameters (type "
                                  "'lammps': 'FILE:PATH' into a potential file, e.g. 'ffield.reax.cho:bond.C.H.1', 'library.meam:Li.b0')")
    refit_range: float = option(0.5, "co-fitted parameters stay within initial * (1 +/- refit_range), unless refit_bounds gives theirs")
    refit_bounds: dict = option({}, "explicit bounds per refitted parameter: {\"NAME\" = [lower, upper]} (in the parameter's "
                                    "units; needed for a parameter that starts at 0)")
    refit_max_evals: int = option(100, "objective evaluations of the co-fit (per start)")
    refit_starts: int = option(1, "co-fit local searches: from the initial parameters and from refit_starts - 1 random points "
                                  "in the bounds (seeded by [fit] seed); refit_choose picks one")
    refit_choose: str = option("objective", "which start's parameters a co-fit keeps: 'objective' (the lowest training objective) "
                                            "or 'cv' (the lowest k-fold held-out error of the residual fitted at each start's "
                                            "parameters, [model] cv_folds)")
    refit_algorithm: str = option("LN_BOBYQA", f"NLopt derivative-free algorithm of the co-fit: {', '.join(REFIT_ALGORITHMS)}")

    def check_values(self, where: str) -> None:
        if self.mode not in ("on", "off", "auto"):
            raise ConfigError(f"{where} mode = {self.mode!r}: expected 'on', 'off' or 'auto'")
        if not 0 < self.refit_range < 1:
            raise ConfigError(f"{where} refit_range = {self.refit_range}: expected 0 < value < 1 (relative bound)")
        for name in ("refit_max_evals", "refit_starts"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where} {name} = {getattr(self, name)}: must be >= 1")
        if self.refit_choose not in REFIT_CHOICES:
            raise ConfigError(f"{where} refit_choose = {self.refit_choose!r}: expected one of {', '.join(REFIT_CHOICES)}")
        if self.refit_algorithm not in REFIT_ALGORITHMS:
            raise ConfigError(f"{where} refit_algorithm = {self.refit_algorithm!r}: expected one of {', '.join(REFIT_ALGORITHMS)} "
                              "(NLopt's bounded derivative-free algorithms)")
        if len(set(self.refit)) != len(self.refit):
            raise ConfigError(f"{where} refit = {self.refit!r}: expected distinct parameter names")
        for name, bounds in self.refit_bounds.items():
            if name not in self.refit:
                raise ConfigError(f"{where} refit_bounds names {name!r}, which refit does not list ({self.refit})")
            if not (isinstance(bounds, list) and len(bounds) == 2
                    and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in bounds) and bounds[0] < bounds[1]):
                raise ConfigError(f"{where} refit_bounds.{name} = {bounds!r}: expected [lower, upper] with lower < upper")


@dataclass
class DescriptorSection(Settings):
    """[descriptor]: its type (the type's own keys are its settings in the registry)."""

    type: str = option("so3", "descriptor type (below); its keys go in this table too")


@dataclass
class ModelSection(Settings):
    """[model]: its type (the type's own keys are its settings in the registry)."""

    type: str = option("linear", "model type (below); its keys go in this table too")


@dataclass
class FitSettings(Settings):
    """[fit]: weights, the tune, subsets and seeds, batches and the cluster."""

    energy_weight: float | str = option(1.0, "weight of the energy rows, or 'cv' (chosen by cross-validation)")
    energy_weight_candidates: list[float] | None = option(
        None, "the candidates of energy_weight = 'cv' (factors of the normalised energy weight; "
              f"default {CV_CANDIDATES['spread']}, with weight_scale = 'rows' {CV_CANDIDATES['rows']})")
    energy_weight_targets: list[float] | None = option(
        None, "energy_weight = 'cv': [energy meV/atom, force eV/A] the errors are measured against")
    force_weight: float = option(1.0, "weight of the force rows")
    stress_weight: float = option(0.0, "weight of the stress (virial) rows")
    weight_scale: str = option("spread", "'spread': each kind's weight is divided by the squared spread of its residual targets "
                                         "(hybridpot.fitting.assembly.target_scales), so 1:1:1 balances the kinds in any units; "
                                         "'rows': only by its number of rows (absolute units, as before)")
    baseline_stress_weight: float = option(0.0, "keep the baseline's stress where the data have none (weight of those rows)")
    tune: bool = option(False, "search the descriptor's rcut, invariants (tune_kinds), nmax, lmax (and alpha), the model type "
                               "(tune_models) and a kernel model's zeta and n_sparse by k-fold CV on train before the fit, each "
                               "numeric one a line search from the grid value nearest the best so far that stops at the first step "
                               "not better (models linear in their parameters; hybridpot.fitting.tune; hybridpot fit --tune); the "
                               "table goes in report.json fit.tune")
    tune_budget_s: float = option(300.0, "tune: no further candidate is started after this many seconds")
    tune_budget_candidates: int | None = option(None, "tune: nor once this many candidates were fitted (a budget that gives the same "
                                                      "search on every machine; none by default)")
    tune_rcut_factors: list[float] = option([1.9, 2.2, 2.5, 2.8], "tune: rcut candidates, times the median nearest-neighbour distance "
                                                                  "(the search starts at the one nearest the configured rcut); grown like nmax, up to "
                                                                  f"{TUNE_RCUT_CAP_FACTOR:g} times that distance")
    tune_models: list[str] = option(["linear", "quadratic"], "tune: model types searched (those with the configured model's [model] "
                                     "keys: linear and quadratic share theirs), the whole search once per "
                                     "type with an equal share of the budget left; the best over all kept")
    tune_kinds: list[str] = option(["power", "bispectrum"], "tune: the descriptor's invariant kinds searched right after rcut (the "
                                    "bispectrum's three-neighbour invariants are larger and slower to fit; "
                                    "benchmarks/README.md); [] : the configured kind only")
    tune_nmax: list[int] = option([4, 5, 6], "tune: nmax candidates (at the best rcut); while the largest tried is best, the next "
                                             f"one up (the last spacing) is tried too, up to nmax {TUNE_CAPS['nmax']}")
    tune_lmax: list[int] = option([4, 5, 6], f"tune: lmax candidates (at the best rcut and nmax); grown like nmax, up to lmax "
                                             f"{TUNE_CAPS['lmax']} (none of the 18 mlearn tunes that tried lmax 3 chose it: "
                                             "mlearn_search.md)")
    tune_alpha: list[float] = option([1.0, 2.0, 3.0], "tune: alpha candidates, 1/Angstrom^2 (basis = 'lammps' only; after lmax)")
    tune_zeta: list[int] = option([2, 3, 4], "tune: zeta candidates of a polynomial-kernel model (after the descriptor's settings); "
                                             f"grown like nmax, up to zeta {TUNE_CAPS['zeta']}")
    tune_n_sparse: list[int] = option([250, 500, 1000], "tune: n_sparse candidates of a kernel model (after zeta; the candidates "
                                                        "before use the smallest); grown like nmax while the basis is not clamped to "
                                                        f"the distinct environments, up to {TUNE_CAPS['n_sparse']}")
    train_fraction: float = option(1.0, "use this fraction of the training structures (seeded)")
    seed: int = option(0, "seed of every random choice (subsets, folds, nn initial weights)")
    config_weights: dict = option({}, "extra weight per config_type")
    batch_atoms: int = option(DEFAULT_BATCH_ATOMS, "atoms per batch of the design matrix and predictions: time against memory (the "
                                                   "design matrix of wide models, e.g. quadratic, uses fewer: 16 MiB of force rows "
                                                   "per batch)")
    cluster: str | None = option(None, "run the passes over the data on Dask (baseline predictions, design matrix, evaluation, "
                                       "uncertainty data, active-learning scoring; nn training stays in this process): 'local:N' (N "
                                       "worker processes) or a scheduler address ('tcp://host:8786'); needs hybridpot[dask]")

    def check_values(self, where: str) -> None:
        """The values of [fit] alone; what depends on the model is :mod:`hybridpot.fitting.config`'s."""
        if self.cluster is not None:
            try:
                check_cluster(self.cluster)
            except ConfigError as exc:
                raise ConfigError(f"{where} {exc}") from exc
        if self.weight_scale not in CV_CANDIDATES:
            raise ConfigError(f"{where} weight_scale = {self.weight_scale!r}: expected 'spread' or 'rows'")
        if not isinstance(self.energy_weight, str):
            for name in ("energy_weight_candidates", "energy_weight_targets"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"{where} {name} only applies to energy_weight = 'cv'")
        if self.energy_weight_candidates is None:
            self.energy_weight_candidates = list(CV_CANDIDATES[self.weight_scale])
        if isinstance(self.energy_weight, str):
            if self.energy_weight != "cv":
                raise ConfigError(f"{where} energy_weight = {self.energy_weight!r}: expected a number >= 0 or 'cv'")
            if not self.energy_weight_candidates or not all(w > 0 for w in self.energy_weight_candidates):
                raise ConfigError(f"{where} energy_weight_candidates = {self.energy_weight_candidates!r}: expected a non-empty "
                                  "list of positive numbers")
            t = self.energy_weight_targets
            if t is not None and not (len(t) == 2 and all(x > 0 for x in t)):
                raise ConfigError(f"{where} energy_weight_targets = {t!r}: expected [energy meV/atom, force eV/A], both positive")
            if self.force_weight <= 0:
                raise ConfigError(f"{where} energy_weight = 'cv' balances energies against forces: it needs force_weight > 0")
        for name in ("energy_weight", "force_weight", "stress_weight", "baseline_stress_weight"):
            value = getattr(self, name)
            if not isinstance(value, str) and value < 0:
                raise ConfigError(f"{where} {name} = {value}: must be >= 0")
        if self.energy_weight == 0 and self.force_weight == 0:
            raise ConfigError(f"{where} energy_weight and force_weight are both 0: nothing to fit")
        if self.tune:
            if self.tune_budget_s <= 0:
                raise ConfigError(f"{where} tune_budget_s = {self.tune_budget_s}: must be > 0")
            if self.tune_budget_candidates is not None and self.tune_budget_candidates < 1:
                raise ConfigError(f"{where} tune_budget_candidates = {self.tune_budget_candidates}: must be >= 1")
            for name in ("tune_rcut_factors", "tune_alpha"):
                positive_distinct(getattr(self, name), f"{where} {name}", "numbers")
            for name in ("tune_nmax", "tune_lmax", "tune_zeta", "tune_n_sparse"):
                positive_distinct(getattr(self, name), f"{where} {name}", "integers")
            if not self.tune_models or len(set(self.tune_models)) != len(self.tune_models):
                raise ConfigError(f"{where} tune_models = {self.tune_models!r}: expected a non-empty list of distinct model type names")
        if len(set(self.tune_kinds)) != len(self.tune_kinds):
            raise ConfigError(f"{where} tune_kinds = {self.tune_kinds!r}: expected a list of distinct invariant kinds, e.g. "
                              "['power', 'bispectrum']")
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(f"{where} train_fraction = {self.train_fraction}: expected 0 < value <= 1")
        if self.batch_atoms < 1:
            raise ConfigError(f"{where} batch_atoms = {self.batch_atoms}: must be >= 1")
        if self.seed < 0:
            raise ConfigError(f"{where} seed = {self.seed}: must be >= 0 (numpy's random generators refuse negative seeds)")
        for name, value in self.config_weights.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{where} config_weights.{name} = {value!r}: expected a number >= 0")


@dataclass
class OutputSettings(Settings):
    """[output]: where the fit writes."""

    dir: str = option("runs/fit", "output folder (relative to the configuration file)")
    name: str = option("model", "the model is written as NAME.hybridpot.json")
    plots: bool = option(True, "write the parity plots")
    overwrite: bool = option(False, "replace an earlier run's output folder")

    def check_values(self, where: str) -> None:
        if not self.name or self.name in (".", "..") or "/" in self.name or "\\" in self.name:
            raise ConfigError(f"{where} name = {self.name!r}: expected a plain file name (the model is written as "
                              "NAME.hybridpot.json in [output] dir)")

    def resolve(self, base: Path, where: str) -> None:
        self.dir = (base / self.dir).resolve()


#: the sections of the fit configuration, in the order ``hybridpot config`` lists them
SECTIONS: dict[str, type[Settings]] = {"data": DataSettings, "baseline": BaselineSettings, "descriptor": DescriptorSection,
                                       "model": ModelSection, "fit": FitSettings, "output": OutputSettings}
