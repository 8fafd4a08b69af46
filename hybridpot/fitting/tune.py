"""``[fit] tune = true`` (``hybridpot fit --tune``): a small, budgeted search of the descriptor's and the model's settings.

Coordinate search scored by k-fold cross-validation on the training set only (never the test set). A numeric
coordinate is searched outward from its grid value nearest the best settings so far (:func:`coordinate_search`): one grid
step down at a time while each step gives the best candidate so far; where the first step down does not, one step up at a
time, on past the top of the grid for the coordinates that grow. A line search that stops at the first step that is not
better assumes the CV error has one minimum along each coordinate; it saves the candidates beyond that step (on the mlearn
kernel tunes, none to two per element, of 7-10 fitted: a kernel candidate costs 10-150 s). A categorical coordinate (the invariants'
kind) tries every candidate. The coordinates, in order, each searched at the best settings found so far
(:func:`tune_coordinates`):

1. ``rcut``: ``tune_rcut_factors`` times the typical nearest-neighbour distance of the training structures; grows
   (below) up to :data:`~hybridpot.fitting.sections.TUNE_RCUT_CAP_FACTOR` times that distance: the Si and Li tunes chose the
   top of the grid every time;
2. ``kind`` over ``tune_kinds`` (the invariants: power spectrum and bispectrum by default; the configured kind first): before nmax, whose best value differs by kind (the bispectrum has 380 features at nmax = lmax
   = 4 against the power spectrum's 50, and a kernel candidate on it costs several times as much to fit);
3. ``nmax`` over ``tune_nmax``, then ``lmax`` over ``tune_lmax``; these *grow*: while the best value is the largest
   tried, the next one up (one more step of the candidates' last spacing) is tried, up to :data:`hybridpot.fitting.sections.TUNE_CAPS`;
4. ``alpha`` (the Gaussian smearing of the LAMMPS radial basis, 1/A^2) over ``tune_alpha``, where the descriptor has one;
5. the model's own settings (:data:`MODEL_COORDINATES`): for the kernel model ``zeta`` over ``tune_zeta`` (polynomial
   kernel; grows) and ``n_sparse`` over ``tune_n_sparse`` (grows, but not beyond the distinct environments: growth stops once
   a candidate's basis was clamped). The zeta candidates are fitted together (a ``joint`` coordinate): the first one's
   design pass also fits every other value the line search could try (the grid and its growth up to the cap, as many
   as the memory check allows; :meth:`hybridpot.models.kernel.KernelModel.joint`), since the pass's costly part, the
   kernel's pair gradients' product with the descriptors' derivatives, does not depend on zeta; the line search then
   takes those rows as it asks for them (``fitted_with``), each the fit its settings get alone. Linear and quadratic models have none (their ridge is chosen per fit, by the
   evidence or CV). Where there are model coordinates, the descriptor's start no candidate after
   :data:`DESCRIPTOR_SHARE` of the budget, which leaves the rest to the model's. Until ``n_sparse`` is searched, every
   candidate uses its smallest value (``cheapest_first``): a kernel candidate's cost grows with its sparse points, so
   the descriptor and zeta are ranked on the cheapest basis and the search reaches further in its budget.

The model ``type`` is searched over the configured one and those of ``tune_models`` that take the same ``[model]`` keys
(linear and quadratic: one is the other with the K(K+1)/2 products of the descriptors) as an outer loop
(:func:`search_each`): the whole search above once per type, in order, each with an equal share of the budget left,
and the best candidate over all of them kept. Not as one more coordinate: the best descriptor differs by type (on
mlearn Cu the linear model's CV is best at nmax 10, where a quadratic candidate costs too much to try, and is
better there than the quadratic model's at 4/4, which a greedy search over the type first would keep).

Each candidate is fitted as the job fits the chosen settings (:func:`hybridpot.fitting.job.fit_residual`: one streamed
assembly with per-fold, per-kind QR factors, :func:`hybridpot.fitting.linear.fit_linear` with ``cv_score``), and the
best candidate's fit so far is kept: where it is the one chosen, the job uses it instead of fitting it again. The ridge
strength is chosen per fit as configured (evidence or CV), the energy weight too where ``energy_weight = "cv"``, and
with ``[baseline] mode = "auto"`` each candidate is scored in the mode it would use. A candidate is scored by
E_cv / min E_cv + F_cv / min F_cv over every candidate tried. A candidate that cannot be fitted (the descriptor
refuses its settings, its solve would not fit in memory: :func:`hybridpot.fitting.checks.check_solve_memory`, or it
has more parameters than the data have rows: :func:`~hybridpot.fitting.checks.check_enough_rows`) is skipped with
its reason (``refused``). No candidate is started once ``tune_budget_s`` has passed, or once
``tune_budget_candidates`` candidates were fitted where that is set (the first always runs): a budget in candidates
makes the search the same on every machine, one in seconds does not. Nor is a candidate started that would end after the
budget by its predicted time (:func:`predicted_seconds`: a fixed cost plus one growing with the square of the number
of model parameters, the QR solve's scaling, fitted to the candidates so far): a quadratic candidate of a grown
descriptor can cost several times the one before it. The record says, per coordinate, whether the chosen value is at
an edge of what was tried and why the growth stopped.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from ase.neighborlist import neighbor_list

from hybridpot.dataset import Dataset
from hybridpot.distributed import ClusterArg
from hybridpot.errors import ConfigError, HybridpotError
from hybridpot.fitting.assembly import Weights
from hybridpot.fitting.checks import check_enough_rows, check_solve_memory
from hybridpot.fitting.config import FitConfig
from hybridpot.fitting.linear import prepare_basis
from hybridpot.fitting.sections import TUNE_CAPS, TUNE_RCUT_CAP_FACTOR
from hybridpot.fitting.solver import LinearSolution
from hybridpot.potential import HybridPotential
from hybridpot.registry import models
from hybridpot.settings import in_words

#: the CV errors a candidate is scored by
SCORED = ("energy_rmse_meV_atom", "force_rmse_eV_A")


@dataclasses.dataclass(frozen=True)
class Coordinate:
    """One searched setting.

    Attributes:
        section: the configuration table it belongs to, "descriptor" or "model".
        key: its key there (unique over the coordinates of a search).
        candidates: the values tried, in order, at the best settings so far.
        grow: while the best value is the largest tried, try the next one up (the candidates' last spacing, so at
            least two candidates are needed), up to ``cap``.
        cap: the largest value growth may reach (None: no cap; the budget still bounds it).
        saturates: a candidate may use less than asked (a kernel basis clamped to the distinct environments: the row's
            ``used[key]`` is below its value); growth stops there, as larger values give the same model.
        share: the fraction of the budget after which this coordinate starts no candidate (1: the whole budget; less
            leaves the rest to the coordinates after it).
        cheapest_first: until this coordinate is searched, the others are fitted at its smallest candidate, not at
            the configured value (a kernel model's sparse points: a candidate's cost grows with them, and the other
            coordinates are ranked on the cheaper model).
        joint: its candidates can be fitted together in one pass (a polynomial kernel's zeta: the pass's costly part
            does not depend on it); the search announces every value its line search could try before it starts
            (:func:`coordinate_search`'s ``announce``).
    """

    section: str
    key: str
    candidates: tuple[Any, ...]
    grow: bool = False
    cap: float | None = None
    saturates: bool = False
    share: float = 1.0
    cheapest_first: bool = False
    joint: bool = False

    @property
    def step(self) -> Any:
        """The growth step: the last spacing of the sorted candidates (None with fewer than two)."""
        values = sorted(set(self.candidates))
        return values[-1] - values[-2] if len(values) >= 2 else None

    def reachable(self) -> list[Any]:
        """Every value its line search could try: the grid, and where it grows up to a cap, the steps past its top."""
        values = sorted(set(self.candidates))
        if self.grow and self.step is not None and self.cap is not None:
            while round(values[-1] + self.step, 6) <= self.cap:
                values.append(round(values[-1] + self.step, 6))
        return values


#: model type -> its coordinates: (key, [fit] key of its candidates, grows, saturates, cheapest_first, joint); zeta only
#: for the polynomial kernel
MODEL_COORDINATES: dict[str, tuple[tuple[str, str, bool, bool, bool, bool], ...]] = {
    "kernel": (("zeta", "tune_zeta", True, False, False, True), ("n_sparse", "tune_n_sparse", True, True, True, False)),
}


#: with model coordinates (a kernel model's), the descriptor's start no candidate after this fraction of the budget, so
#: that the model's are searched too (a kernel candidate costs 30-80 s on an mlearn set: 480 s ran out in the descriptor's)
DESCRIPTOR_SHARE = 0.5


#: a candidate fitted with another in one design pass (a kernel's zeta) costs about this fraction of one fitted alone
#: (the Ni tune's kernel, bispectrum nmax 5 / lmax 4, 250 sparse points: zeta 3 alone 82 s, with five other zetas 150 s,
#: under cProfile): the product of the pass (the pair form and the kernel's pair gradients with dB) is shared, the scaling
#: and scatter of each zeta's columns, their QR and solve are not
JOINT_MEMBER_COST = 0.17


#: :func:`predicted_seconds` predicts no further than this factor beyond the largest candidate fitted
MAX_EXTRAPOLATION = 4.0


@dataclasses.dataclass
class TunedFit:
    """A candidate's fit as the search made it (the fit a plain ``hybridpot fit`` of its settings makes): kept for the
    best candidate so far, so that the job need not fit the chosen settings again.

    Attributes:
        settings: the candidate's settings (coordinate key -> value);
        potential: fitted (``potential.solution`` set); solution, weights, record: what
        :func:`hybridpot.fitting.job.fit_residual` returned; log: the lines it wrote (replayed by the job).
    """

    settings: dict[str, Any]
    potential: HybridPotential
    solution: LinearSolution
    weights: Weights
    record: dict[str, Any]
    log: list[str]

    @property
    def nbytes(self) -> int:
        """The memory its solution's arrays hold (coefficients, posterior covariance, training descriptors, energy rows)."""
        def size(x: Any) -> int:
            if isinstance(x, (np.ndarray, torch.Tensor)):
                return int(x.nbytes)
            return sum(size(v) for v in x) if isinstance(x, (tuple, list)) else 0
        return sum(size(v) for v in vars(self.solution).values())


class Refused(Exception):
    """A candidate that cannot be fitted (its settings are refused, or its solve would not fit in memory)."""


def nearest_neighbour_distance(data: Dataset, n_structures: int = 50, search: float = 6.0) -> float:
    """The median over (up to ``n_structures``) training structures of each one's shortest interatomic distance, Angstrom."""
    shortest = []
    for atoms in data.frames[:n_structures]:
        d = neighbor_list("d", atoms, search)
        if d.size:
            shortest.append(float(d.min()))
    if not shortest:
        raise ConfigError(f"{data.source}: no two atoms within {search} A in the first {n_structures} structures: "
                          "[fit] tune cannot scale its rcut candidates")
    return float(np.median(shortest))


def scores(table: list[dict[str, Any]]) -> list[float]:
    """Each row's E / min E + F / min F over the table (the kinds every row has)."""
    keys = [k for k in SCORED if all(k in r for r in table)]
    best = {k: max(min(r[k] for r in table), 1e-300) for k in keys}
    return [float(sum(r[k] / best[k] for k in keys)) for r in table]


def coordinate_search(coordinates: Sequence[Coordinate], start: dict[str, Any], evaluate: Callable[[dict[str, Any]], dict[str, Any]],
                      budget_s: float, log: Callable[[str], None] = print,
                      clock: Callable[[], float] = time.perf_counter, budget_candidates: int | None = None,
                      size: Callable[[dict[str, Any]], float] | None = None,
                      announce: Callable[[dict[str, Any], str, list[Any], float, float | None], None] | None = None) -> dict[str, Any]:
    """Search ``coordinates`` one after the other, each at the best settings so far.

    A categorical coordinate (candidates not all numbers) tries its candidates in order. A numeric one is a line search
    on its sorted candidates (the grid), from the grid value nearest its value in the best settings so far (the
    smaller of two equally near): one step down at a time while each step gives the best candidate (the lowest score
    over the table); where the first step down does not (or there is none, or it was refused), one step up at a time
    likewise, past the grid's top by ``step`` while the coordinate ``grow``s, up to its ``cap``, and not beyond a value
    the fit could not use in full (``saturates``).

    Args:
        coordinates: what to search, in order (keys unique).
        start: a value of every coordinate's key (the configured settings), used until a coordinate is searched.
        evaluate: settings (key -> value) -> the row's measurements: the CV errors (:data:`SCORED`, lower is
            better), anything else to record, and optionally ``used`` (key -> the value the fit could use, for
            coordinates that saturate); raises :class:`Refused` for settings that cannot be fitted.
        budget_s: no candidate is started after this many seconds of ``clock`` (the first always runs).
        budget_candidates: nor once this many were fitted (None: no limit); a coordinate's ``share`` applies to both.
        size: settings -> the candidate's size (its number of model parameters; raises :class:`Refused` like
            ``evaluate``), recorded in its row; with it, a candidate whose :func:`predicted_seconds` would end after
            the budget is not started (None: no prediction).
        announce: ``(settings, key, values, left_s, single_s)``, called before a ``joint`` coordinate is searched: its
            line search will try candidates ``{**settings, key: v}`` for some of ``values`` (:meth:`Coordinate.reachable`),
            which ``evaluate`` may fit together when it is asked for the first, within ``left_s`` (the seconds left of
            the coordinate's share of the budget; ``single_s``: the seconds the candidate at ``settings`` took, or None
            where it was not fitted alone). A row ``evaluate`` fitted with others says so (``fitted_together`` on the
            first, ``fitted_with`` on the rest, whose seconds are those of handing it out); the time prediction leaves
            them out.

    Returns:
        {"chosen": key -> value, "table": one row per candidate (settings, measurements, "seconds", "score"),
        "coordinates": per coordinate, at the end of its own search: the values tried (at the best settings of the
        other coordinates then), the "best" of them, "edge" ("top", "bottom" or None: where the best lies among those
        tried) and "stop" (why its line search ended: "not better", "budget", "refused", "saturated", "cap N", or None at
        an end of the grid and for a categorical coordinate; the final "chosen" can differ where a later coordinate's
        rows changed the scores),
        "refused": candidates skipped with their reason, "skipped": candidates not tried for the budget (with
        "predicted_s" where their predicted time stopped them),
        "stopped_by_budget", "seconds"}.
    """
    keys = [c.key for c in coordinates]
    if len(set(keys)) != len(keys) or set(keys) - set(start):
        raise ValueError(f"coordinate keys {keys} must be unique and all in the start settings {sorted(start)}")
    t0 = clock()
    table: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []

    def share_left(share: float) -> float:
        """Seconds left of ``share`` of the budget."""
        return share * budget_s - (clock() - t0)

    def best() -> dict[str, Any]:
        if not table:
            return dict(start)
        row = table[int(np.argmin(scores(table)))]
        return {k: row[k] for k in keys}

    def trial(settings: dict[str, Any], share: float = 1.0) -> str | None:
        """Fit one candidate (unless done before) unless ``share`` of the budget has passed; None when it was fitted, else
        why not ("budget", "refused")."""
        if any(all(r[k] == settings[k] for k in keys) for r in table):
            return None
        if any(r["settings"] == settings for r in refused):
            return "refused"
        if any(all(r[k] == settings[k] for k in keys) for r in skipped):  # a grid value tried again by growth
            return "budget"
        if table and (clock() - t0 > share * budget_s or (budget_candidates is not None and len(table) >= share * budget_candidates)):
            skipped.append(settings)
            return "budget"
        begin = clock()
        try:
            extent = {} if size is None else {"size": size(settings)}
            predicted = predicted_seconds(table, extent["size"]) if extent else None
            if table and predicted is not None and begin - t0 + predicted > share * budget_s:
                skipped.append({**settings, "predicted_s": predicted})
                log(f"tune: not started {in_words(settings)}: predicted {predicted:.0f} s, past the budget")
                return "budget"
            measured = evaluate(settings)
        except Refused as exc:
            refused.append({"settings": settings, "reason": str(exc)})
            log(f"tune: skipped {in_words(settings)}: {exc}")
            return "refused"
        row = {**settings, **measured, **extent, "seconds": clock() - begin}
        table.append(row)
        log(f"tune: {in_words(settings)}: CV " + ", ".join(f"{k} {row[k]:.4g}" for k in SCORED if k in row)
            + (f" (fitted with {in_words(row['fitted_with'])})" if "fitted_with" in row else f" ({row['seconds']:.1f} s)"))
        return None

    def line(at: dict[str, Any], key: str) -> list[dict[str, Any]]:
        """The rows that differ from ``at`` in ``key`` alone."""
        return [r for r in table if all(r[k] == at[k] for k in keys if k != key)]

    def walk(c: Coordinate, at: dict[str, Any], origin: Any, direction: int) -> tuple[bool, str | None]:
        """Step from ``origin`` along ``c`` (direction -1: down the grid; +1: up it, and past its top by ``c.step`` where
        ``c`` grows) while each step becomes the best candidate. Returns (whether a step was best, why the walk ended:
        None at the end of the grid, "not better", "budget", "refused", "saturated" or "cap N")."""
        grid = sorted(set(c.candidates))
        value, moved = origin, False
        while True:
            if direction > 0 and c.saturates and any(r.get("used", {}).get(c.key, value) < value for r in line(at, c.key) if r[c.key] == value):
                return moved, "saturated"  # a larger value gives the same model
            k = grid.index(value) + direction if value in grid else len(grid)
            if 0 <= k < len(grid):
                value = grid[k]
            elif direction < 0 or not c.grow or c.step is None:
                return moved, None
            elif c.cap is not None and value + c.step > c.cap:
                return moved, f"cap {c.cap:g}"
            else:
                value = round(value + c.step, 6)  # 5.93 + 0.63 is 6.56, not 6.5600000000000005
            why = trial({**at, c.key: value}, c.share)
            if why is not None:
                return moved, why
            if best() != {**at, c.key: value}:
                return moved, "not better"
            moved = True

    record: list[dict[str, Any]] = []
    for c in coordinates:
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in c.candidates)
        stop = None  # why the search along c ended (None: at the end of its grid, or a categorical coordinate)
        if not numeric:  # a categorical coordinate (the invariants' kind, a model type): every candidate
            for value in c.candidates:
                trial({**best(), c.key: value}, c.share)
        else:  # outward from the grid value nearest the best so far: down while better, else up (and past the top)
            at = best()
            if c.joint and announce is not None:
                here = next(r for r in table if all(r[k] == at[k] for k in keys)) if table else {}
                alone = None if not here or "fitted_with" in here or "fitted_together" in here else here["seconds"]
                announce(at, c.key, c.reachable(), share_left(c.share), alone)
            origin = min(sorted(set(c.candidates)), key=lambda v: abs(v - at[c.key]))
            stop = trial({**at, c.key: origin}, c.share)
            if stop != "budget":
                at = {**at, c.key: origin}
                moved, stop = walk(c, at, origin, -1)
                if not moved and stop != "budget":
                    _, stop = walk(c, at, origin, +1)
        at = best()
        tried = {r[c.key] for r in line(at, c.key)}
        values = sorted(tried) if numeric else [v for v in c.candidates if v in tried]
        edge = None
        if numeric and len(values) > 1 and at[c.key] == values[-1]:
            edge = "top"
        elif numeric and len(values) > 1 and at[c.key] == values[0]:
            edge = "bottom"
        record.append({"section": c.section, "key": c.key, "tried": values, "best": at[c.key], "edge": edge, "stop": stop})
    for row, score in zip(table, scores(table) if table else []):
        row["score"] = score
    return {"chosen": best(), "table": table, "coordinates": record, "refused": refused, "skipped": skipped,
            "stopped_by_budget": bool(skipped), "seconds": clock() - t0}


def search_each(key: str, values: Sequence[Any], coordinates: Sequence[Coordinate], start: dict[str, Any],
                evaluate: Callable[[dict[str, Any]], dict[str, Any]], budget_s: float, log: Callable[[str], None] = print,
                clock: Callable[[], float] = time.perf_counter, budget_candidates: int | None = None,
                size: Callable[[dict[str, Any]], float] | None = None,
                announce: Callable[[dict[str, Any], str, list[Any], float, float | None], None] | None = None) -> dict[str, Any]:
    """:func:`coordinate_search` of ``coordinates`` once for each of ``values`` of ``key`` (a setting not among them),
    in order, each with an equal share of the budget left (seconds and candidates; the first candidate of each search
    always runs), the best row over all kept.

    Returns:
        :func:`coordinate_search`'s record over all rows (each with ``key``; "score" over the whole table), with
        "coordinates" those of the chosen value's search, and "searches": value -> {"chosen", "coordinates",
        "stopped_by_budget", "seconds"} of each search.
    """
    t0 = clock()
    table: list[dict[str, Any]] = []
    refused: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    searches: dict[Any, dict[str, Any]] = {}
    for k, value in enumerate(values):
        share = 1.0 / (len(values) - k)
        left_s = budget_s - (clock() - t0)
        left_n = None if budget_candidates is None else budget_candidates - len(table)
        log(f"tune: {key} {value}")
        rec = coordinate_search(coordinates, start, lambda s, v=value: evaluate({**s, key: v}), share * left_s, log, clock,
                                None if left_n is None else max(1, int(share * left_n)),
                                None if size is None else (lambda s, v=value: size({**s, key: v})),
                                None if announce is None else (lambda s, *rest, v=value: announce({**s, key: v}, *rest)))
        table += [{key: value, **r} for r in rec["table"]]
        refused += [{**r, "settings": {key: value, **r["settings"]}} for r in rec["refused"]]
        skipped += [{key: value, **r} for r in rec["skipped"]]
        searches[value] = {n: rec[n] for n in ("chosen", "coordinates", "stopped_by_budget", "seconds")}
    for row, score in zip(table, scores(table)):
        row["score"] = score
    best = table[int(np.argmin([r["score"] for r in table]))]
    keys = [key] + [c.key for c in coordinates]
    return {"chosen": {k: best[k] for k in keys}, "table": table, "coordinates": searches[best[key]]["coordinates"],
            "refused": refused, "skipped": skipped, "stopped_by_budget": bool(skipped), "seconds": clock() - t0,
            "searches": searches}


def predicted_seconds(table: list[dict[str, Any]], size: float) -> float | None:
    """A candidate's predicted time, s: t = a + b size^2 (a fixed cost and the QR solve's), a, b >= 0 fitted by least
    squares to the rows so far (their ``size`` and ``seconds``; not those of a joint fit: ``fitted_with``, ``fitted_together``); None with fewer than two distinct sizes to fit, or
    for a size more than :data:`MAX_EXTRAPOLATION` times the largest fitted (timing noise of small fits would be
    extrapolated too far)."""
    rows = [(float(r["size"]), float(r["seconds"])) for r in table if "size" in r and not {"fitted_with", "fitted_together"} & set(r)]
    if len({x for x, _ in rows}) < 2 or size > MAX_EXTRAPOLATION * max(x for x, _ in rows):
        return None
    x2, t = np.array([x * x for x, _ in rows]), np.array([y for _, y in rows])
    (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(x2), x2]), t, rcond=None)
    if b < 0:  # no growth with size seen: the mean time
        a, b = float(t.mean()), 0.0
    elif a < 0:  # no fixed cost: through the origin
        a, b = 0.0, float(t @ x2 / (x2 @ x2))
    return float(a + b * size * size)


def tune_coordinates(config: FitConfig, nearest_neighbour_A: float) -> tuple[list[Coordinate], list[str]]:
    """The coordinates :func:`tune_descriptor` searches for ``config`` (module docstring), and notes on what it leaves out.

    Raises:
        ConfigError: a descriptor without rcut, nmax and lmax.
    """
    f, d, m = config["fit"], config["descriptor"], config["model"]
    if any(d.get(k) is None for k in ("rcut", "nmax", "lmax")):
        raise ConfigError(f"{config.source}: [fit] tune searches rcut, nmax and lmax; descriptor type {d['type']!r} has not all of them")
    coords, notes = [], []
    settings = models.get(m["type"]).settings
    types = [m["type"]] + [t for t in f["tune_models"] if t != m["type"] and models.get(t).settings is settings]
    if len(types) > 1:  # an outer loop (search_each), not a coordinate of the search
        coords.append(Coordinate("model", "type", tuple(types)))
    other = [t for t in f["tune_models"] if t not in types]
    if other:
        notes.append(f"model types {other} not searched: their [model] keys differ from those of {m['type']!r}")
    coords += [
        Coordinate("descriptor", "rcut", tuple(round(x * nearest_neighbour_A, 2) for x in f["tune_rcut_factors"]), grow=True,
                   cap=round(TUNE_RCUT_CAP_FACTOR * nearest_neighbour_A, 2)),
        *([Coordinate("descriptor", "kind", (d["kind"], *(k for k in f["tune_kinds"] if k != d["kind"])))]
          if f["tune_kinds"] and d.get("kind") is not None else []),
        Coordinate("descriptor", "nmax", tuple(f["tune_nmax"]), grow=True, cap=TUNE_CAPS["nmax"]),
        Coordinate("descriptor", "lmax", tuple(f["tune_lmax"]), grow=True, cap=TUNE_CAPS["lmax"]),
    ]
    if d.get("alpha") is not None:
        coords.append(Coordinate("descriptor", "alpha", tuple(f["tune_alpha"])))
    else:
        notes.append(f"alpha not searched: the {d.get('basis', d['type'])} descriptor has no Gaussian smearing")
    for key, candidates, grows, saturates, cheapest_first, joint in MODEL_COORDINATES.get(m["type"], ()):
        if key == "zeta" and m.get("kernel") != "polynomial":
            notes.append(f"zeta not searched: the {m.get('kernel')!r} kernel has no exponent")
            continue
        coords.append(Coordinate("model", key, tuple(f[candidates]), grow=grows, cap=TUNE_CAPS.get(key) if grows else None,
                                 saturates=saturates, cheapest_first=cheapest_first, joint=joint))
    if m["type"] not in MODEL_COORDINATES:
        notes.append(f"the {m['type']} model's ridge is not searched: it is chosen per fit ({m.get('regularization')})")
    if d.get("kind") is None:
        notes.append(f"the invariants are not searched: descriptor type {d['type']!r} has no kinds")
    elif not f["tune_kinds"]:
        notes.append(f"the invariants are not searched (tune_kinds is empty): {d['kind']} only")
    if m["type"] in MODEL_COORDINATES:  # the model's own coordinates come last: keep part of the budget for them
        coords = [dataclasses.replace(c, share=DESCRIPTOR_SHARE) if c.section == "descriptor" else c for c in coords]
    return coords, notes


def tune_descriptor(config: FitConfig, train: Dataset, build: Callable[[FitConfig], HybridPotential],
                    fit: Callable[[FitConfig, list[HybridPotential], list[Callable[[str], None]]],
                                  list[tuple[LinearSolution, Weights, dict[str, Any]]]],
                    log: Callable[[str], None] = print, cluster: ClusterArg = None) -> tuple[dict[str, Any], TunedFit | None]:
    """Search the descriptor's (and the model's) settings as described in the module docstring.

    Args:
        build: the potential of a configuration (baseline + descriptor + unfitted model).
        fit: ``(config, potentials, logs) -> [(solution, weights, record)]``: fits each potential in place, as the
            job fits the chosen settings (:func:`hybridpot.fitting.job.fit_residual_joint` with the data bound, no
            progress bars), scoring its k-fold CV folds (``solution.cv_errors``), each potential's lines to its own
            of ``logs``. Several potentials: the candidates of a ``joint`` coordinate's line (a kernel's zeta),
            fitted in one design pass when the first of them is evaluated (as many as the memory check of their joint
            solve allows), the rest handed out as the line search asks for them (``fitted_with``; the first row's
            ``fitted_together`` lists the values).
        cluster: None (this process) or a Dask cluster (:mod:`hybridpot.distributed`) for a kernel candidate's basis
            descriptors (``fit`` has its own for the design pass).

    Returns:
        (the record for report.json's "fit.tune": :func:`coordinate_search`'s record with "chosen" by section
        ({"descriptor": {...}, "model": {...}}: what the fit then uses), each row's "baseline_mode" used (and a kernel
        row's "n_basis" per element), plus "nearest_neighbour_A", "budget_s", "notes" (coordinates not searched) and
        "reused" (whether the chosen candidate's fit is returned); the chosen candidate's :class:`TunedFit`, or None
        where the best candidate kept during the search is not the one chosen at the end (the scores are relative to
        the best errors of all candidates, so a later candidate can reorder earlier ones): the job then fits it again).
        Only the best candidate so far is kept, beside the one being fitted (and the rows of a joint fit not yet asked
        for): its solution (posterior covariance, training descriptors) is in memory until a better one replaces it,
        and the memory check of each candidate counts it and those rows' (:attr:`TunedFit.nbytes`).
    """
    f, m = config["fit"], config["model"]
    if not models.get(m["type"]).linear:
        raise ConfigError(f"{config.source}: [fit] tune (--tune) scores candidates by CV from the solver's factors: it needs a model "
                          f"linear in its parameters (linear, quadratic, kernel), not {m['type']!r}")
    t0 = time.perf_counter()
    d1 = nearest_neighbour_distance(train)
    coords, notes = tune_coordinates(config, d1)
    for note in notes:
        log(f"tune: {note}")

    def by_section(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {s: {c.key: settings[c.key] for c in coords if c.section == s} for s in ("descriptor", "model")}

    last: dict[tuple, tuple[FitConfig, HybridPotential]] = {}  # the latest candidate built: size() then evaluate() use it
    fitted: list[dict[str, Any]] = []  # every candidate's row, in order: the kept fit is the best of them by scores()
    kept: list[TunedFit] = []
    announced: list[tuple[dict[str, Any], str, list[Any], float, float | None]] = []  # the joint line search about to start
    ready: dict[tuple, tuple[dict[str, Any], TunedFit]] = {}  # rows fitted with an earlier candidate, not yet asked for
    asked: set[tuple] = set()  # the settings evaluate() was asked for

    def key_of(settings: dict[str, Any]) -> tuple:
        return tuple(sorted(settings.items()))

    def checked(cfg: FitConfig, potential: HybridPotential, n_params: int | None = None) -> None:
        held = sum(t.nbytes for t in kept) + sum(t.nbytes for _, t in ready.values())  # the best so far, joint rows not asked for
        try:
            check_solve_memory(cfg, potential, train, held, n_params)
            check_enough_rows(cfg, potential, train)
        except HybridpotError as exc:
            raise Refused(str(exc).removeprefix(f"{config.source}: ")) from exc

    def built(settings: dict[str, Any]) -> tuple[FitConfig, HybridPotential]:
        key = key_of(settings)
        if key not in last:
            cfg = config.with_settings(by_section(settings))
            try:
                potential = build(cfg)
            except HybridpotError as exc:
                raise Refused(str(exc).removeprefix(f"{config.source}: ")) from exc
            checked(cfg, potential)
            last.clear()
            last[key] = cfg, potential
        return last[key]

    def size(settings: dict[str, Any]) -> float:
        return float(built(settings)[1].model.n_params)

    def together(settings: dict[str, Any], cfg: FitConfig,
                 potential: HybridPotential) -> tuple[str | None, list[tuple[dict[str, Any], FitConfig, HybridPotential]]]:
        """The announced line's key and its other candidates to fit with ``settings`` (none unless it is on that line):
        those not asked for yet that build, the nearest values first, as many as the memory check of their joint solve
        allows and as end within the time left by :data:`JOINT_MEMBER_COST`."""
        if not announced:
            return None, []
        at, key, values, left_s, single_s = announced[0]
        if any(settings[k] != at[k] for k in at if k != key) or settings[key] not in values:
            return None, []
        announced.clear()
        others = []
        for v in sorted((v for v in values if v != settings[key]), key=lambda v: abs(v - settings[key])):
            other = {**settings, key: v}
            if key_of(other) in asked:
                continue
            cfg = config.with_settings(by_section(other))
            try:
                others.append((other, cfg, build(cfg)))
            except HybridpotError:  # refused when (if) it is asked for
                continue
        if single_s:
            del others[max(0, int((left_s / single_s - 1.0) / JOINT_MEMBER_COST)):]
        while others:
            try:
                family = type(potential.model).joint([potential.model] + [p.model for _, _, p in others])
                checked(cfg, potential, family.n_params)
                return key, others
            except (HybridpotError, Refused):
                others.pop()  # the farthest value
        return key, []

    def evaluate(settings: dict[str, Any]) -> dict[str, Any]:
        key = key_of(settings)
        asked.add(key)
        if key in ready:
            row, fit_of = ready.pop(key)
            return keep(row, fit_of)
        cfg, potential = built(settings)
        last.clear()  # fitted from here on: never handed out again
        joint_key, others = together(settings, cfg, potential)
        group = [(settings, cfg, potential)] + others
        potentials = [p for _, _, p in group]
        bases = prepare_basis(potentials, train, f["seed"], f["batch_atoms"], False, cluster)
        lines: list[list[str]] = [[] for _ in group]
        solved = fit(cfg, potentials, [out.append for out in lines])
        rows = []
        for (member, _, pot), basis, (sol, weights, fit_record), out in zip(group, bases, solved, lines):
            row: dict[str, Any] = {k: sol.cv_errors[k] for k in SCORED if k in sol.cv_errors}
            row["baseline_mode"] = sol.baseline_check["used"] if sol.baseline_check else ("hybrid" if pot.baseline else "pure_ml")
            if basis:  # a data-dependent basis (kernel): how many sparse points each element got
                row["n_basis"] = {el: rec["chosen"] for el, rec in basis.items()}
                row["used"] = {c.key: max(row["n_basis"].values()) for c in coords if c.saturates}
            rows.append((row, TunedFit(dict(member), pot, sol, weights, fit_record, out)))
        if others:
            rows[0][0]["fitted_together"] = [m[joint_key] for m, _, _ in group]
            for (member, _, _), (row, fit_of) in zip(group[1:], rows[1:]):
                row["fitted_with"] = {joint_key: settings[joint_key]}
                ready[key_of(member)] = row, fit_of
        return keep(*rows[0])

    def keep(row: dict[str, Any], candidate: TunedFit) -> dict[str, Any]:
        """Record ``row`` as fitted; keep its fit if it is the best so far."""
        fitted.append(row)
        if int(np.argmin(scores(fitted))) == len(fitted) - 1:
            kept[:] = [candidate]
        return row

    def announce(at: dict[str, Any], key: str, values: list[Any], left_s: float, single_s: float | None) -> None:
        announced[:] = [(dict(at), key, list(values), left_s, single_s)]

    inner = [c for c in coords if c.key != "type"]
    start = {c.key: min(c.candidates) if c.cheapest_first else config[c.section][c.key] for c in inner}
    if len(inner) < len(coords):  # the model type: the whole search once per type
        record = search_each("type", next(c for c in coords if c.key == "type").candidates, inner, start, evaluate, f["tune_budget_s"],
                             log, budget_candidates=f["tune_budget_candidates"], size=size, announce=announce)
    else:
        record = coordinate_search(coords, start, evaluate, f["tune_budget_s"], log, budget_candidates=f["tune_budget_candidates"],
                                   size=size, announce=announce)
    flat = record["chosen"]
    record["chosen"] = by_section(flat)
    tuned = kept[0] if kept and kept[0].settings == flat else None
    edges = [f"{c['key']} {c['best']} at the top ({c['stop'] or 'not grown'})" for c in record["coordinates"] if c["edge"] == "top"]
    log(f"tune: chose {in_words(flat)} from {len(record['table'])} candidates ({m['cv_folds']}-fold CV on train, "
        f"{time.perf_counter() - t0:.0f} s" + (f"; {len(record['skipped'])} not tried: budget {_budget(f)}" if record["skipped"] else "")
        + (f"; {len(record['refused'])} refused" if record["refused"] else "") + ")" + (f"; at the top: {', '.join(edges)}" if edges else "")
        + ("" if tuned else "; its fit was not the one kept during the search: fitted again"))
    return {**record, "nearest_neighbour_A": d1, "budget_s": f["tune_budget_s"], "budget_candidates": f["tune_budget_candidates"],
            "notes": notes, "reused": tuned is not None, "seconds": time.perf_counter() - t0}, tuned


def _budget(f: dict[str, Any]) -> str:
    """The [fit] table's tune budget in words."""
    n = f["tune_budget_candidates"]
    return f"{f['tune_budget_s']:g} s" + (f" or {n} candidates" if n is not None else "")
