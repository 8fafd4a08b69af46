"""[fit] tune: the coordinate search's growth rule (on a cheap fake scorer), a real tune of the descriptor and of a kernel
model's settings on the bundled Cu data, and the validation of the tune keys."""

from __future__ import annotations

import dataclasses
import os
from types import SimpleNamespace

import numpy as np
import pytest
from ase.io import write

from hybridpot.dataset import bundled, read_dataset
from hybridpot.errors import ConfigError
from hybridpot.fitting.config import parse_config
from hybridpot.fitting.sections import TUNE_CAPS, TUNE_RCUT_CAP_FACTOR
from hybridpot.fitting.job import make_potential, run_fit
from hybridpot.fitting.tune import (DESCRIPTOR_SHARE, Coordinate, Refused, coordinate_search, predicted_seconds, scores,
                                    search_each, tune_coordinates, tune_descriptor)
from tests.structures import cu_frames


class FakeFit:
    """A scorer whose CV errors are (value - best)^2 + 1 in energy and force, per key; counts its calls and advances
    a fake clock by ``seconds`` per call."""

    def __init__(self, best: dict[str, float], seconds: float = 1.0, refuse_from: dict[str, float] | None = None,
                 used: dict[str, float] | None = None):
        self.best, self.seconds, self.refuse_from, self.used = best, seconds, refuse_from or {}, used or {}
        self.calls: list[dict] = []
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def __call__(self, settings: dict) -> dict:
        for k, limit in self.refuse_from.items():
            if settings[k] >= limit:
                raise Refused(f"{k} {settings[k]} too large")
        self.calls.append(dict(settings))
        self.now += self.seconds
        err = 1.0 + sum((settings[k] - b) ** 2 for k, b in self.best.items())
        row = {"energy_rmse_meV_atom": err, "force_rmse_eV_A": err}
        if self.used:
            row["used"] = {k: min(settings[k], u) for k, u in self.used.items()}
        return row


def _search(fake: FakeFit, coords, start, budget=1e9):
    return coordinate_search(coords, start, fake, budget, log=lambda s: None, clock=fake.clock)


NMAX = Coordinate("descriptor", "nmax", (4, 5, 6), grow=True, cap=10)


def _nmax_record(rec):
    return next(c for c in rec["coordinates"] if c["key"] == "nmax")


def test_the_line_search_stops_at_the_first_step_that_is_not_better():
    fake = FakeFit({"nmax": 5})
    rec = _search(fake, [NMAX], {"nmax": 4})
    assert [c["nmax"] for c in fake.calls] == [4, 5, 6]
    assert rec["chosen"] == {"nmax": 5}
    assert _nmax_record(rec) | {} == {"section": "descriptor", "key": "nmax", "tried": [4, 5, 6], "best": 5, "edge": None,
                                      "stop": "not better"}
    # from the middle of a grid: one step down first; where it is worse, up (3 is never reached from 5, nor 7 from 5)
    lmax = Coordinate("descriptor", "lmax", (3, 4, 5, 6, 7))
    for best, calls in ((5, [4, 3, 5, 6]), (2, [4, 3]), (6, [4, 3, 5, 6, 7])):
        fake = FakeFit({"lmax": best})
        rec = _search(fake, [lmax], {"lmax": 4})
        assert [c["lmax"] for c in fake.calls] == calls, best
        assert rec["chosen"] == {"lmax": min(max(best, 3), 7)}
        assert rec["coordinates"][0]["stop"] == ("not better" if best == 5 or best == 6 else None)
    # the grid value nearest the start is the first candidate (the smaller of two equally near)
    rcut = Coordinate("descriptor", "rcut", (4.11, 4.75, 5.4, 6.05))
    for start, first in ((5.0, 4.75), (5.075, 4.75), (7.0, 6.05)):
        fake = FakeFit({"rcut": 6.05})
        _search(fake, [rcut], {"rcut": start})
        assert fake.calls[0]["rcut"] == first
    assert [c["rcut"] for c in fake.calls] == [6.05, 5.4]


def test_growth_steps_beyond_the_top_while_it_improves():
    """Best at 8: 7 and 8 are tried (each time the top was best), then 9, which is worse, ends it."""
    fake = FakeFit({"nmax": 8})
    rec = _search(fake, [NMAX], {"nmax": 4})
    assert [c["nmax"] for c in fake.calls] == [4, 5, 6, 7, 8, 9]
    assert rec["chosen"] == {"nmax": 8}
    assert _nmax_record(rec)["stop"] == "not better" and _nmax_record(rec)["edge"] is None
    assert [r["score"] for r in rec["table"]] == scores(rec["table"])


def test_growth_step_is_the_last_spacing_and_stops_at_the_cap():
    fake = FakeFit({"n_sparse": 10_000})
    coord = Coordinate("model", "n_sparse", (250, 500, 1000), grow=True, cap=2600)
    rec = _search(fake, [coord], {"n_sparse": 500})
    assert [c["n_sparse"] for c in fake.calls] == [500, 250, 1000, 1500, 2000, 2500]
    assert rec["coordinates"][0] | {} == {"section": "model", "key": "n_sparse", "tried": [250, 500, 1000, 1500, 2000, 2500],
                                          "best": 2500, "edge": "top", "stop": "cap 2600"}


def test_rcut_grows_past_its_grid_in_rounded_steps_up_to_its_cap(tmp_path):
    """rcut candidates are multiples of the nearest-neighbour distance and grow like nmax (the Si and Li tunes chose the
    top of the grid): by the last spacing, rounded (6.2, not 6.199999999999999), up to TUNE_RCUT_CAP_FACTOR times it."""
    coords, _ = tune_coordinates(_config(tmp_path, {"type": "linear"}, {"tune_rcut_factors": [1.9, 2.2, 2.5, 2.8]}), 2.0)
    rcut = next(c for c in coords if c.key == "rcut")
    assert rcut.candidates == (3.8, 4.4, 5.0, 5.6) and rcut.grow and rcut.cap == round(TUNE_RCUT_CAP_FACTOR * 2.0, 2) == 6.8
    fake = FakeFit({"rcut": 100.0})
    rec = _search(fake, [rcut], {"rcut": 5.6})
    assert [c["rcut"] for c in fake.calls] == [5.6, 5.0, 6.2, 6.8]
    assert rec["coordinates"][0]["stop"] == "cap 6.8" and rec["chosen"] == {"rcut": 6.8}


def test_growth_stops_at_the_budget():
    """10 s per candidate and a 35 s budget: the fourth candidate is the last started (the clock reads 30 s before it)."""
    fake = FakeFit({"nmax": 20}, seconds=10.0)
    rec = _search(fake, [NMAX], {"nmax": 4}, budget=35.0)
    assert [c["nmax"] for c in fake.calls] == [4, 5, 6, 7]
    assert rec["stopped_by_budget"] and rec["skipped"] == [{"nmax": 8}]
    assert _nmax_record(rec)["stop"] == "budget" and _nmax_record(rec)["edge"] == "top"


def test_a_budget_in_candidates_gives_the_same_search_at_any_speed():
    """budget_candidates stops the search after that many fits whatever they cost, and shares apply to it too."""
    coords = [dataclasses.replace(NMAX, share=0.5), Coordinate("model", "zeta", (2, 3, 4))]
    runs = []
    for seconds in (0.01, 100.0):
        fake = FakeFit({"nmax": 9, "zeta": 3}, seconds=seconds)
        rec = coordinate_search(coords, {"nmax": 4, "zeta": 4}, fake, 1e9, log=lambda s: None, clock=fake.clock, budget_candidates=6)
        runs.append((fake.calls, rec["chosen"], rec["coordinates"][0]["stop"]))
    assert runs[0] == runs[1]
    calls, chosen, stop = runs[0]
    assert [(c["nmax"], c["zeta"]) for c in calls] == [(4, 4), (5, 4), (6, 4), (6, 3), (6, 2)] and stop == "budget"
    assert chosen == {"nmax": 6, "zeta": 3}


def test_a_joint_coordinate_is_announced_with_its_reachable_values_and_the_time_left():
    """Before a joint coordinate's line search: announce(settings it is searched at, key, every value it could try (the
    grid and its growth up to the cap), seconds left of its share, seconds of the candidate at those settings); a
    joint row's seconds do not enter the time prediction."""
    heard = []
    fake = FakeFit({"nmax": 5, "zeta": 3}, seconds=10.0)
    coords = [NMAX, Coordinate("model", "zeta", (2, 3, 4), grow=True, cap=6, joint=True)]
    rec = coordinate_search(coords, {"nmax": 4, "zeta": 4}, fake, 100.0, log=lambda s: None, clock=fake.clock,
                            announce=lambda *args: heard.append(args))
    assert heard == [({"nmax": 5, "zeta": 4}, "zeta", [2, 3, 4, 5, 6], 100.0 - 30.0, 10.0)]  # after nmax 4, 5, 6
    assert rec["chosen"] == {"nmax": 5, "zeta": 3}
    assert Coordinate("model", "zeta", (2, 3, 4)).reachable() == [2, 3, 4]  # no growth: the grid
    rows = [{"size": 10, "seconds": 10.0}, {"size": 20, "seconds": 40.0}]
    assert predicted_seconds(rows + [{"size": 20, "seconds": 400.0, "fitted_together": [1, 2]},
                                     {"size": 20, "seconds": 0.0, "fitted_with": {"zeta": 1}}], 20) == predicted_seconds(rows, 20)


def test_a_candidate_predicted_to_end_past_the_budget_is_not_started():
    """Candidates that cost size^2 (a QR solve): with ``size`` the search predicts nmax 7's cost from those before (a fit of
    a + b size^2: exact here) and does not start it (it would end at 77 + 49 s, past the 80 s budget); without, it starts
    it at 77 s and ends at 126 s. nmax 5 is started without a prediction (one size fitted)."""
    fake = FakeFit({"nmax": 9})

    def evaluate(settings):
        row = fake(settings)
        fake.now += settings["nmax"] ** 2 - fake.seconds  # the fake clock advances nmax^2 s in all
        return row

    def search(size):
        fake.calls.clear()
        fake.now = 0.0
        return coordinate_search([NMAX], {"nmax": 4}, evaluate, 80.0, log=lambda s: None, clock=fake.clock, size=size)

    rec = search(lambda settings: settings["nmax"])
    assert [c["nmax"] for c in fake.calls] == [4, 5, 6] and fake.now == 16 + 25 + 36
    assert rec["skipped"] == [{"nmax": 7, "predicted_s": pytest.approx(49)}]
    assert [r["size"] for r in rec["table"]] == [4, 5, 6] and _nmax_record(rec)["stop"] == "budget"
    search(None)
    assert [c["nmax"] for c in fake.calls] == [4, 5, 6, 7] and fake.now == 126


def test_predicted_seconds_fit_a_fixed_cost_and_a_square():
    rows = [{"size": 10.0, "seconds": 5.0 + 0.01 * 100}, {"size": 20.0, "seconds": 5.0 + 0.01 * 400}, {"nmax": 3, "seconds": 99.0}]
    assert predicted_seconds(rows, 40.0) == pytest.approx(5.0 + 0.01 * 1600)
    assert predicted_seconds(rows[:1], 40.0) is None  # one size: nothing to fit
    assert predicted_seconds(rows, 81.0) is None  # more than 4x the largest fitted
    assert predicted_seconds([{"size": 10.0, "seconds": 8.0}, {"size": 20.0, "seconds": 6.0}], 40.0) == pytest.approx(7.0)


def test_a_coordinate_with_a_budget_share_leaves_the_rest_to_the_next():
    """nmax may start candidates for half of a 45 s budget (10 s each: 4, 5, 6), the model's zeta then gets the rest."""
    fake = FakeFit({"nmax": 20, "zeta": 3}, seconds=10.0)
    coords = [Coordinate("descriptor", "nmax", (4, 5, 6), grow=True, cap=10, share=0.5),
              Coordinate("model", "zeta", (2, 3, 4))]
    rec = _search(fake, coords, {"nmax": 4, "zeta": 4}, budget=45.0)
    assert [(c["nmax"], c["zeta"]) for c in fake.calls] == [(4, 4), (5, 4), (6, 4), (6, 3), (6, 2)]
    assert rec["chosen"] == {"nmax": 6, "zeta": 3} and rec["coordinates"][0]["stop"] == "budget"


def test_kernel_tunes_keep_part_of_the_budget_for_the_model(tmp_path):
    """With a kernel model the descriptor's coordinates get DESCRIPTOR_SHARE of the budget, with a linear model all."""
    for model, shares in (({"type": "kernel", "n_sparse": 20}, {"descriptor": DESCRIPTOR_SHARE, "model": 1.0}),
                          ({"type": "linear"}, {"descriptor": 1.0, "model": 1.0})):
        config = _config(tmp_path / model["type"], model, {"tune": True})
        coords, _ = tune_coordinates(config, 2.5)
        assert {c.section: c.share for c in coords} == shares
        model_coords = {c.key: (c.grow, c.saturates, c.cap) for c in coords if c.section == "model"}
        if model["type"] == "kernel":  # zeta grows past its grid like nmax; only the sparse basis saturates
            assert model_coords == {"zeta": (True, False, TUNE_CAPS["zeta"]), "n_sparse": (True, True, TUNE_CAPS["n_sparse"])}
            assert [c.key for c in coords if c.cheapest_first] == ["n_sparse"]
        else:  # the model type: the outer loop, first
            assert model_coords == {"type": (False, False, None)}
            assert [c.key for c in coords][:4] == ["type", "rcut", "kind", "nmax"]


def test_the_model_type_is_searched_among_types_with_the_same_keys(tmp_path):
    """tune_models: the configured type first, then the others that take its [model] keys; the rest noted, not searched."""
    cases = (({"type": "linear"}, ["linear", "quadratic"], ("linear", "quadratic"), None),
             ({"type": "quadratic"}, ["linear", "quadratic"], ("quadratic", "linear"), None),
             ({"type": "linear"}, ["kernel", "quadratic"], ("linear", "quadratic"), "['kernel'] not searched"),
             ({"type": "kernel", "n_sparse": 20}, ["linear", "quadratic"], None, "['linear', 'quadratic'] not searched"),
             ({"type": "linear"}, ["linear"], None, None))
    for i, (model, tune_models, types, note) in enumerate(cases):
        coords, notes = tune_coordinates(_config(tmp_path / str(i), model, {"tune_models": tune_models}), 2.5)
        found = next((c.candidates for c in coords if c.key == "type"), None)
        assert found == types, (model, tune_models)
        assert (note is None and not any("model types" in n for n in notes)) or any(note in n for n in notes)


class TwoTypes:
    """Linear: error 1 + (nmax - 9)^2 at ``linear_s`` a candidate; quadratic: half of 1 + (nmax - 5)^2 at 5 s."""

    def __init__(self, linear_s: float):
        self.linear_s, self.now, self.calls = linear_s, 0.0, []

    def clock(self) -> float:
        return self.now

    def __call__(self, settings: dict) -> dict:
        self.calls.append((settings["type"], settings["nmax"]))
        quadratic = settings["type"] == "quadratic"
        self.now += 5.0 if quadratic else self.linear_s
        err = 0.5 * (1 + (settings["nmax"] - 5) ** 2) if quadratic else 1.0 + (settings["nmax"] - 9) ** 2
        return {"energy_rmse_meV_atom": err, "force_rmse_eV_A": err}


def test_search_each_keeps_the_best_over_all_types():
    """One search per model type: linear grows to its best, 9 (and tries 10); quadratic stops at its best, 5, which is
    the best over both; every row carries its type and the scores span both searches."""
    fake = TwoTypes(1.0)
    rec = search_each("type", ("linear", "quadratic"), [NMAX], {"nmax": 4}, fake, 1000.0, log=lambda s: None, clock=fake.clock)
    assert fake.calls == [("linear", n) for n in range(4, 11)] + [("quadratic", n) for n in (4, 5, 6)]
    assert [(r["type"], r["nmax"]) for r in rec["table"]] == fake.calls
    assert rec["chosen"] == {"type": "quadratic", "nmax": 5} and min(r["score"] for r in rec["table"]) == 2.0
    assert list(rec["searches"]) == ["linear", "quadratic"] and rec["coordinates"] == rec["searches"]["quadratic"]["coordinates"]
    assert rec["searches"]["linear"]["chosen"] == {"nmax": 9}


def test_search_each_gives_each_type_an_equal_share_of_the_budget_left():
    """Budget 10 s, linear candidates 2 s: linear gets 5 s (starts 4, 5, 6; 7 not at 6 s), quadratic the 4 s left
    (its first candidate always runs; the next would start past its share, which ends its search)."""
    fake = TwoTypes(2.0)
    rec = search_each("type", ("linear", "quadratic"), [NMAX], {"nmax": 4}, fake, 10.0, log=lambda s: None, clock=fake.clock)
    assert fake.calls == [("linear", 4), ("linear", 5), ("linear", 6), ("quadratic", 4)]
    assert rec["stopped_by_budget"] and {(s["type"], s["nmax"]) for s in rec["skipped"]} == {("linear", 7), ("quadratic", 5)}
    # a budget in candidates is split the same way: 2 each of 4
    fake = TwoTypes(2.0)
    search_each("type", ("linear", "quadratic"), [NMAX], {"nmax": 4}, fake, 1e9, log=lambda s: None, clock=fake.clock,
                budget_candidates=4)
    assert fake.calls == [("linear", 4), ("linear", 5), ("quadratic", 4), ("quadratic", 5)]


def test_a_categorical_coordinate_keeps_its_order_and_has_no_edge():
    fake = FakeFit({"nmax": 6})
    scored = fake.__call__

    def evaluate(settings):
        row = scored(settings)
        return {k: v * (0.5 if settings["type"] == "quadratic" else 1.0) for k, v in row.items()}

    rec = coordinate_search([Coordinate("model", "type", ("quadratic", "linear")), NMAX], {"type": "quadratic", "nmax": 4},
                            evaluate, 1e9, log=lambda s: None)
    kind = rec["coordinates"][0]
    assert kind["tried"] == ["quadratic", "linear"] and kind["best"] == "quadratic" and kind["edge"] is None
    assert rec["chosen"]["type"] == "quadratic"
    assert all(c["type"] == "quadratic" for c in fake.calls[2:])  # nmax searched under the chosen type


def test_growth_stops_at_a_refused_candidate():
    fake = FakeFit({"nmax": 20}, refuse_from={"nmax": 8})
    rec = _search(fake, [NMAX], {"nmax": 4})
    assert [c["nmax"] for c in fake.calls] == [4, 5, 6, 7]
    assert rec["refused"] == [{"settings": {"nmax": 8}, "reason": "nmax 8 too large"}]
    assert _nmax_record(rec)["stop"] == "refused"


def test_growth_stops_where_the_model_saturates():
    """A basis clamped at 700: the candidate 1000 used only 700, so 1500 would give the same model and is not tried;
    nor is a grid value above a clamped one (clamped at 400, 500 used 400: 1000 is not tried)."""
    coord = Coordinate("model", "n_sparse", (250, 500, 1000), grow=True, cap=4000, saturates=True)
    fake = FakeFit({"n_sparse": 10_000}, used={"n_sparse": 700})
    rec = _search(fake, [coord], {"n_sparse": 500})
    assert [c["n_sparse"] for c in fake.calls] == [500, 250, 1000]
    assert rec["coordinates"][0]["stop"] == "saturated"
    fake = FakeFit({"n_sparse": 10_000}, used={"n_sparse": 400})
    rec = _search(fake, [coord], {"n_sparse": 250})
    assert [c["n_sparse"] for c in fake.calls] == [250, 500]
    assert rec["coordinates"][0]["stop"] == "saturated"


def test_coordinates_are_searched_in_order_at_the_best_so_far():
    """lmax is searched at the nmax chosen first (grown to 7), and a fixed grid (no grow) never grows."""
    fake = FakeFit({"nmax": 7, "lmax": 9})
    coords = [NMAX, Coordinate("descriptor", "lmax", (3, 4, 5))]
    rec = _search(fake, coords, {"nmax": 4, "lmax": 4})
    assert [(c["nmax"], c["lmax"]) for c in fake.calls] == [(4, 4), (5, 4), (6, 4), (7, 4), (8, 4), (7, 3), (7, 5)]
    assert rec["chosen"] == {"nmax": 7, "lmax": 5}
    lmax = rec["coordinates"][1]
    assert lmax["edge"] == "top" and lmax["stop"] is None


# ---------------------------------------------------------------------------------------------------- real fits


def _config(out, model: dict, fit: dict, n: int = 10, nmax: int = 3, plots: bool = False):
    out.mkdir(parents=True, exist_ok=True)
    train = out / "train.xyz"
    write(train, cu_frames(n))
    raw = {
        "data": {"train": str(train)},
        "baseline": {"file": str(bundled("Cu_mishin1.eam.alloy"))},
        "descriptor": {"rcut": 4.5, "nmax": nmax, "lmax": 3, "alpha": 1.5},
        "model": {"cv_folds": 3, **model},
        "fit": {"seed": 1, "tune": True, "tune_rcut_factors": [1.9], **fit},
        "output": {"dir": str(out / "fit"), "plots": plots},
    }
    return parse_config(raw, out, "test config")


def _check_record(tune: dict) -> dict:
    """The record's invariants: chosen = the lowest score's row (by section); each coordinate's tried values are those
    of the table that differ in it alone from its best; the edge is where the best lies among them; the last
    coordinate's best is the final choice. Returns the best row."""
    table = tune["table"]
    best = table[int(np.argmin([r["score"] for r in table]))]
    keys = [c["key"] for c in tune["coordinates"]]
    sections = {c["key"]: c["section"] for c in tune["coordinates"]} | ({"type": "model"} if "searches" in tune else {})
    assert tune["chosen"] == {s: {k: best[k] for k in sections if sections[k] == s} for s in ("descriptor", "model")}
    if "searches" in tune:  # one search per model type: the invariants hold within the chosen type's rows
        table = [r for r in table if r["type"] == best["type"]]
    for c in tune["coordinates"]:
        assert c["best"] in c["tried"]
        assert set(c["tried"]) <= {r[c["key"]] for r in table}
        tried = c["tried"]
        if not all(isinstance(v, (int, float)) for v in tried):  # categorical (the kind): no edges
            assert c["edge"] is None
            continue
        assert tried == sorted(tried)
        assert c["edge"] == (None if len(tried) == 1 else "top" if c["best"] == tried[-1] else "bottom" if c["best"] == tried[0]
                             else None)
    last = tune["coordinates"][-1]
    assert last["best"] == best[last["key"]]
    assert last["tried"] == sorted({r[last["key"]] for r in table if all(r[k] == best[k] for k in keys if k != last["key"])})
    return best


def test_tune_end_to_end_records_edges_and_grows_to_the_cap(tmp_path):
    """A real tune of the bundled Cu data, with lmax candidates just below the cap: where lmax ends at the top of
    its tried values, its growth was stopped by the cap or the budget, never left undone; alpha is searched."""
    fit = run_fit(_config(tmp_path, {"type": "linear"}, {"tune_nmax": [2], "tune_lmax": [TUNE_CAPS["lmax"] - 2, TUNE_CAPS["lmax"] - 1],
                                                        "tune_alpha": [1.0, 2.5], "tune_budget_s": 60.0}, plots=True),
                  progress=False, log=lambda s: None)
    tune = fit.report["fit"]["tune"]
    best = _check_record(tune)
    assert (fit.output_dir / "tune.png").is_file()  # the search as a plot, beside the parity plots
    assert [c["key"] for c in tune["coordinates"]] == ["rcut", "kind", "nmax", "lmax", "alpha"]
    assert {r["type"] for r in tune["table"]} == {"linear", "quadratic"} and list(tune["searches"]) == ["linear", "quadratic"]
    assert tune["coordinates"] == tune["searches"][best["type"]]["coordinates"]
    assert tune["chosen"]["model"] == {"type": best["type"]} and "ridge is not searched" in tune["notes"][0]
    assert fit.potential.model.kind == best["type"] == fit.report["config"]["model"]["type"]
    lmax = next(c for c in tune["coordinates"] if c["key"] == "lmax")
    assert max(lmax["tried"]) <= TUNE_CAPS["lmax"]
    if lmax["edge"] == "top":
        assert lmax["stop"] in (f"cap {TUNE_CAPS['lmax']}", "budget")
    assert fit.report["config"]["descriptor"]["alpha"] == best["alpha"] == fit.potential.descriptor.alpha


def test_tune_searches_and_applies_the_kernel_settings(tmp_path):
    """Kernel model: zeta and n_sparse are searched after the descriptor, their values are in every row, and the fitted
    model uses the chosen ones; n_sparse candidates beyond the distinct environments saturate (no growth past them)."""
    n_atoms = sum(len(a) for a in cu_frames(6))
    lines: list[str] = []
    fit = run_fit(_config(tmp_path, {"type": "kernel", "n_sparse": 8}, {"tune_nmax": [3], "tune_lmax": [3], "tune_alpha": [1.5],
                                                                       "tune_zeta": [1, 2], "tune_n_sparse": [4, n_atoms + 10]}, n=6),
                  progress=False, log=lines.append)
    tune = fit.report["fit"]["tune"]
    best = _check_record(tune)
    assert [c["key"] for c in tune["coordinates"]][-2:] == ["zeta", "n_sparse"]
    assert {1, 2} <= {r["zeta"] for r in tune["table"]} and {4, n_atoms + 10} <= {r["n_sparse"] for r in tune["table"]}
    assert all(set(r["n_basis"]) == {"Cu"} for r in tune["table"])
    assert tune["chosen"]["model"] == {"zeta": best["zeta"], "n_sparse": best["n_sparse"]}
    assert fit.potential.model.zeta == best["zeta"] and fit.potential.model.n_sparse == best["n_sparse"]
    assert fit.report["config"]["model"]["zeta"] == best["zeta"]
    # until n_sparse is searched, every candidate uses its smallest candidate (4), not the configured 8
    assert [r["n_sparse"] for r in tune["table"]] == [4] * (len(tune["table"]) - 1) + [n_atoms + 10]
    n_sparse = tune["coordinates"][-1]
    big = next(r for r in tune["table"] if r["n_sparse"] == n_atoms + 10)
    assert big["n_basis"]["Cu"] <= n_atoms
    if n_sparse["best"] == n_atoms + 10:
        assert n_sparse["stop"] == "saturated"
    assert max(r["n_sparse"] for r in tune["table"]) == n_atoms + 10  # never grown past a clamped basis
    assert any(s.startswith("tune: chose") and "zeta" in s for s in lines)


def test_the_zeta_candidates_are_fitted_together_and_as_each_is_fitted_alone(tmp_path):
    """zeta is a joint coordinate: the first zeta candidate's design pass fits every value its line search could try
    (the grid, and its growth up to the cap) that was not fitted before; the line search then takes the rows it asks
    for (``fitted_with``), and each is the fit a plain ``hybridpot fit`` of its settings makes (the same CV errors)."""
    lines: list[str] = []
    fit = run_fit(_config(tmp_path / "tune", {"type": "kernel", "n_sparse": 6, "zeta": 4},
                          {"tune_kinds": [], "tune_nmax": [3], "tune_lmax": [3], "tune_alpha": [1.5], "tune_zeta": [1, 2, 3],
                           "tune_n_sparse": [6]}, n=6), progress=False, log=lines.append)
    table = fit.report["fit"]["tune"]["table"]
    first = next(r for r in table if "fitted_together" in r)
    assert first["zeta"] == 3 and sorted(first["fitted_together"]) == [1, 2, 3, 5, 6, 7, 8]  # 4: fitted before, at the start
    shared = [r for r in table if "fitted_with" in r]
    assert shared and all(r["fitted_with"] == {"zeta": 3} and r["zeta"] in first["fitted_together"] for r in shared)
    assert sum("fitted_together" in r for r in table) == 1
    assert any("(fitted with zeta 3)" in s for s in lines)
    for row in [first, shared[0]]:
        alone = _config(tmp_path / f"zeta{row['zeta']}", {"type": "kernel", "n_sparse": 6, "zeta": row["zeta"]}, {"tune": False}, n=6)
        plain = run_fit(alone.with_settings({"descriptor": {k: row[k] for k in ("rcut", "nmax", "lmax", "alpha")}}), progress=False,
                        log=lambda s: None)
        for key in ("energy_rmse_meV_atom", "force_rmse_eV_A"):
            assert row[key] == pytest.approx(plain.report["fit"]["cv"][key], rel=1e-7), (row["zeta"], key)


def test_the_invariants_kind_is_searched_where_tune_kinds_is_given(tmp_path):
    """tune_kinds: a categorical coordinate right after rcut, the configured kind first (by default power and bispectrum);
    empty: a note."""
    coords, notes = tune_coordinates(_config(tmp_path / "a", {"type": "linear"}, {"tune_kinds": ["bispectrum", "power"]}), 2.5)
    kind = next(c for c in coords if c.key == "kind")
    assert kind.candidates == ("power", "bispectrum") and not kind.grow and kind.section == "descriptor"
    assert [c.key for c in coords if c.section == "descriptor"][:3] == ["rcut", "kind", "nmax"]
    assert not any("invariants" in n for n in notes)
    coords, notes = tune_coordinates(_config(tmp_path / "b", {"type": "linear"}, {}), 2.5)  # the default: both
    assert next(c for c in coords if c.key == "kind").candidates == ("power", "bispectrum")
    coords, notes = tune_coordinates(_config(tmp_path / "c", {"type": "linear"}, {"tune_kinds": []}), 2.5)
    assert "kind" not in [c.key for c in coords] and any("invariants are not searched" in n and "power only" in n for n in notes)


def test_tune_chooses_and_applies_the_invariants_kind(tmp_path):
    """A real tune over both kinds: each is fitted at the best rcut, the potential is built with the chosen one, and the
    chosen kind's rows are what the later coordinates grew from."""
    fit = run_fit(_config(tmp_path, {"type": "linear"}, {"tune_kinds": ["power", "bispectrum"], "tune_models": ["linear"],
                                                        "tune_nmax": [2], "tune_lmax": [2], "tune_alpha": [1.5]}, nmax=2),
                  progress=False, log=lambda s: None)
    tune = fit.report["fit"]["tune"]
    best = _check_record(tune)
    assert [c["key"] for c in tune["coordinates"]][:2] == ["rcut", "kind"]
    assert {r["kind"] for r in tune["table"]} == {"power", "bispectrum"}
    assert tune["chosen"]["descriptor"]["kind"] == best["kind"] == fit.potential.descriptor.kind
    assert fit.report["config"]["descriptor"]["kind"] == best["kind"]
    # the two kinds' candidates differ in their number of features: the row's size is the model's parameters
    power, bisp = tune["table"][:2]  # one rcut candidate (the configured kind), then the kind's search at its settings
    assert (power["kind"], bisp["kind"]) == ("power", "bispectrum")
    assert all(power[k] == bisp[k] for k in ("rcut", "nmax", "lmax", "alpha")) and bisp["size"] > power["size"]


def test_tune_refuses_a_candidate_over_the_memory_check(tmp_path, monkeypatch):
    """A candidate whose solve would not fit in memory is skipped with the check's reason (no crash); the fit goes on."""
    from hybridpot.fitting import checks

    real = checks.solve_memory_bytes
    monkeypatch.setattr(checks, "solve_memory_bytes", lambda config, potential, n, n_params=None: (
        10**20 if config["descriptor"]["nmax"] >= 3 else real(config, potential, n, n_params)))
    fit = run_fit(_config(tmp_path, {"type": "linear"}, {"tune_nmax": [2, 3], "tune_lmax": [2], "tune_alpha": [1.5]}, nmax=2),
                  progress=False, log=lambda s: None)
    tune = fit.report["fit"]["tune"]
    assert tune["chosen"]["descriptor"]["nmax"] == 2 == fit.potential.descriptor.nmax
    assert [(r["settings"]["type"], r["settings"]["nmax"]) for r in tune["refused"]] == [("linear", 3), ("quadratic", 3)]
    assert "GiB" in tune["refused"][0]["reason"]


@pytest.mark.parametrize("key, value, message", [
    ("tune_alpha", [], "non-empty list of distinct positive numbers"),
    ("tune_alpha", [1.0, -2.0], "tune_alpha"),
    ("tune_zeta", [2, 2.5], r"tune_zeta\[1\] = 2.5: expected int"),
    ("tune_n_sparse", [0, 100], "tune_n_sparse"),
    ("tune_n_sparse", [100, 100], "distinct"),
    ("tune_nmax", [4, True], "tune_nmax"),
    ("tune_budget_candidates", 0, "must be >= 1"),
    ("tune_budget_candidates", True, "tune_budget_candidates"),
    ("tune_models", [], "non-empty list of distinct model type names"),
    ("tune_models", ["linear", "linear"], "distinct"),
    ("tune_models", ["bogus"], "unknown model type"),
    ("tune_models", ["nn"], "not linear in its parameters"),
    ("tune_kinds", ["power", "power"], "distinct invariant kinds"),
    ("tune_kinds", ["power", 3], r"tune_kinds\[1\] = 3: expected str"),
    ("tune_kinds", ["power", "trispectrum"], "tune_kinds: kind = 'trispectrum': expected 'power' or 'bispectrum'"),
])
def test_tune_keys_are_validated(tmp_path, key, value, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, {"type": "kernel"}, {key: value})


def test_the_chosen_candidates_fit_is_reused_and_is_the_plain_fit_of_its_settings(tmp_path):
    """The tune keeps the best candidate's fit and the job uses it (report "reused"): the model, its CV record and the
    replayed log lines are those of a plain fit (no tune) of the chosen settings."""
    lines: list[str] = []
    fit = run_fit(_config(tmp_path / "tuned", {"type": "linear"}, {"tune_models": ["linear"], "tune_kinds": [], "tune_nmax": [2, 3],
                                                                  "tune_lmax": [2], "tune_alpha": [1.5]}, nmax=2),
                  progress=False, log=lines.append)
    tune = fit.report["fit"]["tune"]
    assert tune["reused"] and "design matrix + solve" not in fit.report["timings"]
    chosen = tune["chosen"]
    plain_cfg = _config(tmp_path / "plain", {"type": "linear", **chosen["model"]}, {"tune": False}, nmax=chosen["descriptor"]["nmax"])
    plain_cfg = plain_cfg.with_settings({"descriptor": chosen["descriptor"]})
    plain_lines: list[str] = []
    plain = run_fit(plain_cfg, progress=False, log=plain_lines.append)
    np.testing.assert_allclose(fit.potential.model.coef.detach().numpy(), plain.potential.model.coef.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert fit.report["fit"]["cv"] == plain.report["fit"]["cv"]
    assert fit.report["train"] == pytest.approx(plain.report["train"], rel=1e-9)
    cv_line = [s for s in lines if s.startswith("k-fold CV of this fit")]
    assert cv_line == [s for s in plain_lines if s.startswith("k-fold CV of this fit")] and len(cv_line) == 1
    assert lines.index(cv_line[0]) > max(i for i, s in enumerate(lines) if s.startswith("tune: chose"))


def test_a_kept_fit_that_is_not_the_final_choice_is_not_reused(tmp_path):
    """The scores are relative to the best errors of all candidates, so a later candidate can make an earlier one best
    again: the fit kept then (the best when it was fitted) is not the chosen one, and none is returned."""
    cfg = _config(tmp_path, {"type": "linear"}, {"tune_models": ["linear"], "tune_kinds": [], "tune_rcut_factors": [1.7, 1.8, 1.9],
                                                 "tune_nmax": [2], "tune_lmax": [3], "tune_alpha": [1.5]}, nmax=2)  # rcut only
    train = read_dataset(cfg["data"]["train"])

    def run(errors):  # one (E, F) per rcut candidate, in the order they are fitted
        it = iter(errors)

        def fake_fit(config, potentials, logs):
            assert len(potentials) == 1 == len(logs)  # a linear model's candidates are fitted one by one
            e, f = next(it)
            logs[0](f"fitted {e} {f}")
            return [(SimpleNamespace(cv_errors={"energy_rmse_meV_atom": e, "force_rmse_eV_A": f}, baseline_check=None), None, {})]
        return tune_descriptor(cfg, train, lambda c: make_potential(c, ["Cu"], None), fake_fit, log=lambda s: None)

    record, tuned = run([(1.0, 3.0), (2.9, 1.0), (0.5, 5.0)])  # the third makes the first best again; the second was kept
    assert [r["energy_rmse_meV_atom"] for r in record["table"]] == [1.0, 2.9, 0.5]
    assert record["chosen"]["descriptor"]["rcut"] == record["table"][0]["rcut"] and tuned is None and not record["reused"]
    record, tuned = run([(1.0, 3.0), (2.9, 1.0), (0.9, 0.9)])  # the last is best and kept
    assert tuned is not None and record["reused"] and tuned.settings["rcut"] == record["table"][2]["rcut"]
    assert tuned.log == ["fitted 0.9 0.9"] and float(tuned.potential.descriptor.rcut) == record["chosen"]["descriptor"]["rcut"]


def test_the_memory_check_counts_the_fit_the_tune_keeps(tmp_path, monkeypatch):
    """A kept fit's arrays are counted (nbytes), and check_solve_memory adds what the caller holds and says so."""
    from hybridpot.fitting import checks
    from hybridpot.fitting.tune import TunedFit

    sol = SimpleNamespace(coef=np.zeros(10), covariance=np.zeros((10, 10)), training_descriptors=(np.zeros((4, 5)), np.zeros(4, dtype=np.int64)),
                          cv_errors={"energy_rmse_meV_atom": 1.0})
    assert TunedFit({}, None, sol, None, {}, []).nbytes == 8 * (10 + 100 + 20 + 4)
    cfg = _config(tmp_path, {"type": "linear"}, {"tune": False}, nmax=2)
    potential = make_potential(cfg, ["Cu"], None)
    train = read_dataset(cfg["data"]["train"])
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    checks.check_solve_memory(cfg, potential, train)  # a small fit fits
    with pytest.raises(ConfigError, match="held by the best tune candidate so far"):
        checks.check_solve_memory(cfg, potential, train, held_bytes=have)


def test_the_tune_figure_shows_every_candidate_and_the_chosen_one():
    """tune.png: one point per fitted candidate in each panel (CV energy, CV force), in the order fitted, labelled by
    what changed; the lowest score starred; one colour per model type; skipped and refused counted in the title."""
    from hybridpot.plots import tune_figure

    fake = TwoTypes(1.0)
    rec = search_each("type", ("linear", "quadratic"), [NMAX], {"nmax": 4}, fake, 1000.0, log=lambda s: None, clock=fake.clock)
    rec["skipped"], rec["refused"] = [{"type": "linear", "nmax": 11}], [{"settings": {}, "reason": "x"}, {"settings": {}, "reason": "y"}]
    fig = tune_figure(rec)
    best = int(np.argmin([r["score"] for r in rec["table"]]))
    for ax, key in zip(fig.axes, ("energy_rmse_meV_atom", "force_rmse_eV_A")):
        by_label = {}
        for col in ax.collections:
            by_label[col.get_label()] = col.get_offsets()
        assert sum(len(by_label[t]) for t in ("linear", "quadratic")) == len(rec["table"])
        assert np.allclose(by_label["chosen"], [[best, rec["table"][best][key]]])
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert labels[:2] == ["start", "nmax 5"] and labels[len(fake.calls) - 3] == "type quadratic, nmax 4"
    title = fig._suptitle.get_text()
    assert f"{len(rec['table'])} candidates" in title and "1 not tried (budget); 2 refused" in title
    assert "chosen: type quadratic, nmax 5" in title
