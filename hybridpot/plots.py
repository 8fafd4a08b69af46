"""Plots written by the CLI (PNG, matplotlib's Agg backend, written atomically)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np

from hybridpot.io.atomic import write_bytes_atomic
from hybridpot.metrics import EV_A3_TO_GPA
from hybridpot.settings import in_words


def _figure(ncols: int, nrows: int = 1, size: float = 4.2):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    return fig, axes


def save_figure(fig, path: Path) -> None:
    """Save a figure to ``path`` atomically and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


#: each parity plot: its axis label and the unit of the errors in its legend (the table's units)
PARITY = {
    "energy": ("energy per atom relative to the set's lowest DFT value (meV/atom)", "meV/atom"),
    "forces": ("force component (eV/A)", "eV/A"),
    "stress": ("stress component (GPa)", "GPa"),
}


def _parity(ax, ref: np.ndarray, series: Mapping[str, np.ndarray], title: str, axis: str, unit: str) -> None:
    values = [ref] + list(series.values())
    lo = float(min(np.nanmin(v) for v in values))
    hi = float(max(np.nanmax(v) for v in values))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
    colors = {"baseline only": "tab:orange", "hybrid": "tab:blue"}
    for name, pred in series.items():
        err = pred - ref
        ax.scatter(ref, pred, s=6, alpha=0.6, color=colors.get(name), label=f"{name} (MAE {np.nanmean(np.abs(err)):.3g} {unit}, "
                                                                              f"RMSE {np.sqrt(np.nanmean(err**2)):.3g} {unit})")
    ax.set_xlabel(f"DFT {axis}")
    ax.set_ylabel(f"predicted {axis}")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")


def _parity_values(what: str, data, pred: Mapping[str, np.ndarray], lowest: float) -> tuple[np.ndarray, np.ndarray]:
    """(reference, prediction) in the plot's unit for one data set."""
    if what == "energy":
        return 1000.0 * (data.energy / data.n_atoms - lowest), 1000.0 * (pred["energy"] / data.n_atoms - lowest)
    if what == "forces":
        ok = np.all(np.isfinite(data.forces), axis=1)
        return data.forces[ok].ravel(), pred["forces"][ok].ravel()
    ok = np.all(np.isfinite(data.stress), axis=1)
    return EV_A3_TO_GPA * data.stress[ok].ravel(), EV_A3_TO_GPA * pred["stress"][ok].ravel()


def parity_figures(sets: Mapping, preds: Mapping, base_preds: Mapping | None) -> dict:
    """The parity figures, by quantity: "energy" (per atom, relative to each set's lowest DFT energy per atom, meV/atom),
    "forces" (components, eV/A) and, where a set has stress labels, "stress" (components, GPa); one panel per data set
    (train, test), the hybrid and (``base_preds`` given) the baseline only against DFT, MAE and RMSE in the legend."""
    figures = {}
    for what, (axis, unit) in PARITY.items():
        panels = [name for name, data in sets.items() if what != "stress" or bool(np.isfinite(data.stress).all(axis=1).any())]
        if not panels:
            continue
        fig, axes = _figure(len(panels))
        for ax, name in zip(axes[0], panels):
            data = sets[name]
            lowest = float(np.min(data.energy / data.n_atoms))
            ref, hybrid = _parity_values(what, data, preds[name], lowest)
            series = {}
            if base_preds is not None and base_preds.get(name) is not None:
                series["baseline only"] = _parity_values(what, data, base_preds[name], lowest)[1]
            series["hybrid"] = hybrid
            _parity(ax, ref, series, f"{name} ({len(data)} structures)", axis, unit)
        figures[what] = fig
    return figures


def parity_plots(sets: Mapping, preds: Mapping, base_preds: Mapping | None, out_dir: Path) -> list[Path]:
    """Write :func:`parity_figures` as ``parity_energy.png``, ``parity_forces.png`` (and ``parity_stress.png``) into ``out_dir``."""
    paths = []
    for what, fig in parity_figures(sets, preds, base_preds).items():
        path = out_dir / f"parity_{what}.png"
        save_figure(fig, path)
        paths.append(path)
    return paths


def _changed(row: Mapping, before: Mapping | None, keys: list[str]) -> str:
    """What a tune candidate changed against the one fitted before it ("start" for the first)."""
    if before is None:
        return "start"
    return in_words({k: row[k] for k in keys if row[k] != before[k]}) or "again"


def tune_figure(tune: Mapping):
    """The search of ``hybridpot fit --tune`` (report.json's ``fit.tune``): each candidate's k-fold CV energy RMSE
    (meV/atom) and force RMSE (eV/A) in the order fitted, labelled by what it changed against the candidate before it;
    one colour per model type where the type was searched; the chosen candidate (the lowest score) starred, and the
    count of candidates not tried (budget) or refused in the title."""
    table = list(tune["table"])
    keys = (["type"] if "searches" in tune else []) + [c["key"] for c in tune["coordinates"]]
    best = int(np.argmin([r["score"] for r in table]))
    types = list(dict.fromkeys(r.get("type") for r in table))
    colors = {t: f"C{2 * i}" for i, t in enumerate(types)}  # C0, C2, ...: not C3, the chosen star's red
    labels = [_changed(r, table[n - 1] if n else None, keys) for n, r in enumerate(table)]
    x = np.arange(len(table))
    fig, axes = _figure(2, size=max(4.2, 0.35 * len(table) + 2.0))
    for ax, key, name in ((axes[0][0], "energy_rmse_meV_atom", "CV energy RMSE (meV/atom)"),
                          (axes[0][1], "force_rmse_eV_A", "CV force RMSE (eV/A)")):
        y = np.array([r.get(key, np.nan) for r in table], dtype=float)
        ax.plot(x, y, color="0.75", lw=0.8, zorder=1)
        for t in types:
            on = [n for n, r in enumerate(table) if r.get("type") == t]
            ax.scatter(x[on], y[on], s=22, color=colors[t], zorder=2, label=t)
        ax.scatter([best], [y[best]], s=160, marker="*", color="tab:red", zorder=3, label="chosen")
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("candidate, in the order fitted (what it changed)")
        ax.set_ylabel(name)
        ax.legend(fontsize=7)
    left = [f"{len(tune.get('skipped', []))} not tried (budget)" if tune.get("skipped") else "",
            f"{len(tune.get('refused', []))} refused" if tune.get("refused") else ""]
    note = "; ".join(s for s in left if s)
    chosen = in_words({k: table[best][k] for k in keys})
    fig.suptitle(f"tune: {len(table)} candidates, {tune.get('seconds', 0.0):.0f} s" + (f"; {note}" if note else "")
                 + f"\nchosen: {chosen}", fontsize=9)
    return fig


def tune_plot(tune: Mapping, out_dir: Path) -> Path:
    """Write :func:`tune_figure` as ``tune.png`` into ``out_dir``."""
    path = out_dir / "tune.png"
    save_figure(tune_figure(tune), path)
    return path
