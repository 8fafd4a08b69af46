"""Plots written by the CLI (PNG, matplotlib's Agg backend, written atomically)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np

from hybridpot.io.atomic import write_bytes_atomic


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


def _parity(ax, ref, pred, base, label: str, unit: str) -> None:
    lo = float(np.nanmin([ref.min(), pred.min(), base.min()]))
    hi = float(np.nanmax([ref.max(), pred.max(), base.max()]))
    ax.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
    ax.scatter(ref, base, s=6, alpha=0.5, color="tab:orange", label=f"baseline only (MAE {np.mean(np.abs(base - ref)):.4g})")
    ax.scatter(ref, pred, s=6, alpha=0.7, color="tab:blue", label=f"hybrid (MAE {np.mean(np.abs(pred - ref)):.4g})")
    ax.set_xlabel(f"DFT {unit}")
    ax.set_ylabel(f"predicted {unit}")
    ax.set_title(label)
    ax.legend(fontsize=8, loc="upper left")


def parity_plots(sets: Mapping, preds: Mapping, base_preds: Mapping, out_dir: Path) -> list[Path]:
    """``parity_energy.png`` (per-atom energies) and ``parity_forces.png`` (force components),
    one panel per data set (train, test), hybrid and baseline-only against DFT."""
    paths = []
    for what, unit in (("energy", "energy (eV/atom)"), ("forces", "force component (eV/A)")):
        fig, axes = _figure(len(sets))
        for ax, (name, data) in zip(axes[0], sets.items()):
            if what == "energy":
                ref = data.energy / data.n_atoms
                pred = preds[name]["energy"] / data.n_atoms
                base = base_preds[name]["energy"] / data.n_atoms
            else:
                ok = np.all(np.isfinite(data.forces), axis=1)
                ref, pred, base = (a[ok].ravel() for a in (data.forces, preds[name]["forces"], base_preds[name]["forces"]))
            _parity(ax, ref, pred, base, f"{name} ({len(data)} structures)", unit)
        path = out_dir / f"parity_{what}.png"
        save_figure(fig, path)
        paths.append(path)
    return paths
