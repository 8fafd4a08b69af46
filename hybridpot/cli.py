"""Command line: ``hybridpot fit | eval | export | md | active | demo``.

    hybridpot demo [--out DIR]              the whole job on the bundled Cu data (baseline only vs hybrid)
    hybridpot fit CONFIG.toml               fit as configured; writes model, report.json, parity plots
    hybridpot eval MODEL DATA               error table of a fitted model on any labelled data set
    hybridpot export MODEL --lammps OUTDIR  LAMMPS deck (pair_style hpot or --format mliap; baseline, input, manifest)
    hybridpot md MODEL STRUCTURE --engine lammps|ase --steps N --temperature T [--trajectory F] [--fallback LO HI]
    hybridpot active CONFIG.toml            active learning with an ASE oracle (log, learning curve, model)
    hybridpot config [SECTION] [--toml]     every configuration key (type, default, meaning) and the registered types
                     [--active]             (of hybridpot active's configuration)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybridpot.errors import HybridpotError
from hybridpot.registry import export_formats


def _fit(args: argparse.Namespace) -> int:
    from hybridpot.fitting.config import read_config
    from hybridpot.fitting.job import run_fit

    config = read_config(args.config, {"fit": {"tune": True}} if args.tune else None)
    run_fit(config, progress=not args.quiet)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from hybridpot.evaluation import evaluate_model

    evaluate_model(args.model, args.data, progress=not args.quiet, accept_edited=args.accept_edited, json_path=args.json,
                   plots_dir=args.plots, cluster=args.cluster)
    return 0


def _export(args: argparse.Namespace) -> int:
    from hybridpot.export.lammps import export_lammps
    from hybridpot.io.modelfile import load

    structure = _read_structure(args.structure) if args.structure else None
    extra = {"min_distance": args.min_distance} if args.min_distance is not None else {}
    files = export_lammps(load(args.model), args.lammps, name=args.name, structure=structure, format=args.format, **extra)
    print(f"wrote the LAMMPS deck ({args.format} format) to {args.lammps}: " + ", ".join(p.name for p in files.values()))
    print(f"run it there with: lmp -in in.{args.name}.lmp   (threads, MPI, GPU: see {Path(args.lammps) / 'README.md'})")
    return 0


def _md(args: argparse.Namespace) -> int:
    from hybridpot.io.modelfile import load
    from hybridpot.md import run_ase, run_lammps_md

    potential = load(args.model)
    _set_fallback(potential, args.fallback, args.fallback_scope)
    if potential.fallback is not None:
        fb = potential.fallback
        print(f"fallback: {fb.measure} in [{fb.lower:g}, {fb.upper:g}], scope {fb.scope}")
    atoms = _read_structure(args.structure)
    options = dict(log_every=args.log_every, seed=args.seed, progress=not args.quiet, trajectory=args.trajectory,
                   trajectory_every=args.trajectory_every)
    if args.engine == "lammps":
        options["threads"] = args.threads or 1
        result = run_lammps_md(potential, atoms, args.steps, args.temperature, args.timestep, args.ensemble, **options)
    else:
        result = run_ase(potential, atoms, args.steps, args.temperature, args.timestep, args.ensemble, **options)
    print(result.summary())
    if args.json:
        import json

        from hybridpot.io.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(result.to_dict(), indent=1))
        print(f"wrote {args.json}")
    if result.trajectory:
        print(f"wrote the trajectory to {result.trajectory}")
    return 1 if result.stopped else 0


def _set_fallback(potential, band: list[float] | None, scope: str | None) -> None:
    """``--fallback LOWER UPPER`` (the band, on the stored fallback's measure or gamma) and
    ``--fallback-scope`` (default: the stored one, else "atom") over what the model file holds."""
    from hybridpot.uq import enable_fallback

    current = potential.fallback
    if band is None and scope is None:
        return
    if band is None and current is None:
        raise HybridpotError("--fallback-scope needs a fallback: the model file has none, pass --fallback LOWER UPPER too")
    settings = current.to_dict() if current is not None else {"measure": "gamma", "p": 16, "reference": None, "scope": "atom"}
    lower, upper = band if band is not None else (settings["lower"], settings["upper"])
    enable_fallback(potential, lower, upper, settings["measure"], settings["p"], settings["reference"], scope or settings["scope"])


def _active(args: argparse.Namespace) -> int:
    from hybridpot.active import read_active_config, run_active
    from hybridpot.fitting.job import MODEL_SUFFIX

    config = read_active_config(args.config)
    result = run_active(config, progress=not args.quiet)
    curve = "learning curve, " if config.fit["output"]["plots"] else ""
    print(f"wrote the log, {curve}training set and model ({config.fit['output']['name']}{MODEL_SUFFIX}) to {result.output_dir}")
    return 0


def _read_structure(path: str):
    """A structure from any file ASE reads, LAMMPS data files (``*.data``, as `hybridpot export` writes them:
    atom_style atomic, elements from the masses) included."""
    from ase.io import read

    if not Path(path).is_file():
        raise HybridpotError(f"{path}: structure file not found")
    options = {"format": "lammps-data", "atom_style": "atomic"} if Path(path).suffix in (".data", ".lmpdat") else {}
    try:
        return read(path, **options)
    except Exception as exc:
        raise HybridpotError(f"{path}: cannot read a structure ({type(exc).__name__}: {exc})") from exc


def _demo(args: argparse.Namespace) -> int:
    from hybridpot.fitting.config import demo_config
    from hybridpot.fitting.job import run_fit

    print("hybridpot demo: Mishin Cu EAM + linear SO(3) residual, fitted on the bundled Cu data (40 train / 12 test structures)")
    run_fit(demo_config(args.out), progress=not args.quiet)
    return 0


def _config(args: argparse.Namespace) -> int:
    from hybridpot.fitting.config import PLACEHOLDERS, SECTIONS, commented_toml, describe

    if args.active:
        from hybridpot.active import ACTIVE_PLACEHOLDERS, ACTIVE_SECTIONS

        sections, placeholders, command = ACTIVE_SECTIONS, ACTIVE_PLACEHOLDERS, "active"
    else:
        sections, placeholders, command = SECTIONS, PLACEHOLDERS, "fit"
    if args.toml:
        print(commented_toml(args.section, sections, placeholders, command), end="")
    else:
        print(describe(args.section, sections))
    return 0


def _positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return n


def _global_options(parser: argparse.ArgumentParser, before_command: bool) -> None:
    """-q and --threads; after the command they default to SUPPRESS (set only when given, so one given before the
    command is kept)."""
    default = {} if before_command else {"default": argparse.SUPPRESS}
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars", **default)
    parser.add_argument("--threads", type=_positive_int, metavar="N",
                        help="torch threads (default: torch's, one per core); 1 is faster on a machine busy with other work", **default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridpot", description="Hybrid interatomic potentials: empirical baseline + ML residual.",
                                     epilog="-q and --threads may come before or after the command.")
    _global_options(parser, before_command=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, before_command=False)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fit", parents=[common], help="fit an ML residual as configured in a TOML file",
                       epilog="every configuration key, its default and meaning: hybridpot config [SECTION]")
    p.add_argument("config", help="configuration file (TOML)")
    p.add_argument("--tune", action="store_true", help="[fit] tune = true: search the descriptor (rcut, the invariants, nmax, lmax, alpha), the model type (linear, quadratic) or a kernel model's zeta and n_sparse by k-fold CV on train first")
    p.set_defaults(func=_fit)
    p = sub.add_parser("eval", parents=[common], help="error table of a fitted model on a labelled data set")
    p.add_argument("model", help="model file (*.hybridpot.json)")
    p.add_argument("data", help="labelled structures (anything ase.io.read takes)")
    p.add_argument("--accept-edited", action="store_true",
                   help="evaluate a model file that fails its checksum (edited by hand) instead of refusing it")
    p.add_argument("--json", metavar="FILE", help="also write the errors (and per config_type) to this JSON file")
    p.add_argument("--plots", metavar="DIR", help="also write parity plots (energy, forces, stress) into this folder")
    p.add_argument("--cluster", metavar="SPEC", help="run the predictions on Dask: 'local:N' (N worker processes) or a scheduler "
                                                     "address ('tcp://host:8786'); needs hybridpot[dask]")
    p.set_defaults(func=_eval)
    p = sub.add_parser("export", parents=[common], help="write a LAMMPS deck for a fitted model")
    p.add_argument("model", help="model file (*.hybridpot.json)")
    p.add_argument("--lammps", required=True, metavar="OUTDIR", help="output directory")
    p.add_argument("--name", default="hybrid", help="file stem (default: hybrid)")
    p.add_argument("--structure", help="example structure for the data file (default: a crystal of the first element)")
    p.add_argument("--format", choices=export_formats.names(), default=export_formats.names()[0],
                   help="plugin: hybridpot's pair_style hpot (default; runs every model hybridpot fits, fast); "
                        "mliap: LAMMPS's own ML-IAP so3 (LAMMPS basis, power spectrum, no fallback; for LAMMPS builds "
                        "that cannot load plugins)")
    p.add_argument("--min-distance", type=float,
                   help="mliap: shortest pair distance (A) at which LAMMPS's so3 must be accurate (default 1.5)")
    p.set_defaults(func=_export)
    p = sub.add_parser("md", parents=[common], help="a quick MD run with LAMMPS or ASE")
    p.add_argument("model", help="model file (*.hybridpot.json)")
    p.add_argument("structure", help="starting structure (anything ase.io.read takes)")
    p.add_argument("--engine", choices=["lammps", "ase"], default="ase",
                   help="ase: hybridpot's calculator; lammps: the exported model in LAMMPS (pair_style hpot, --threads N "
                        "OpenMP threads) (default: ase)")
    p.add_argument("--steps", type=int, default=1000, help="MD steps (default: 1000)")
    p.add_argument("--temperature", type=float, default=300.0, help="initial (and NVT) temperature, K (default: 300)")
    p.add_argument("--timestep", type=float, default=1.0, help="fs (default: 1)")
    p.add_argument("--ensemble", choices=["nve", "nvt"], default="nve", help="(default: nve)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Maxwell-Boltzmann velocities (same start for both engines)")
    p.add_argument("--log-every", type=int, default=1, help="record energies, T and P every this many steps (default: 1)")
    p.add_argument("--json", help="write the energies, temperature and pressure along the run, drift and cost to this JSON file")
    p.add_argument("--trajectory", help="write frames to this extxyz file as the run goes")
    p.add_argument("--trajectory-every", type=int, help="steps between frames (a multiple of --log-every; default --log-every)")
    p.add_argument("--fallback", nargs=2, type=float, metavar=("LOWER", "UPPER"),
                   help="switch the residual off as the extrapolation grade crosses this band (see hybridpot.uq; both engines, "
                        "the lammps engine with the per-atom scope)")
    p.add_argument("--fallback-scope", choices=["atom", "structure"],
                   help="per-atom switch, or one switch per structure (ase engine only; default: the model file's, else atom)")
    p.set_defaults(func=_md)
    p = sub.add_parser("active", parents=[common], help="active learning: MD/perturb, select by gamma or std, label with an oracle, refit",
                       epilog="every configuration key, its default and meaning: hybridpot config --active [SECTION]")
    p.add_argument("config", help="configuration file (TOML; see hybridpot.active)")
    p.set_defaults(func=_active)
    p = sub.add_parser("config", parents=[common], help="document every key of the fit (or active) configuration and the "
                                                        "registered types")
    p.add_argument("section", nargs="?", help="only this section (data, baseline, descriptor, model, fit, output; with --active: "
                                              "active, candidates, oracle and those but data)")
    p.add_argument("--active", action="store_true", help="the keys of hybridpot active's configuration")
    p.add_argument("--toml", action="store_true", help="print a commented configuration file instead (every key at its default)")
    p.set_defaults(func=_config)
    p = sub.add_parser("demo", parents=[common], help="fit and evaluate on the bundled Cu data")
    p.add_argument("--out", default="hybridpot-demo", help="output directory (default: ./hybridpot-demo)")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.func(args)
    except HybridpotError as exc:
        print(f"hybridpot {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
