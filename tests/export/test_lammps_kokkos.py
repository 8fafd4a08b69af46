"""``pair_style hpot/kk`` in a LAMMPS with the KOKKOS package: the same numbers as the host style ``hpot``.

The LAMMPS is the one lammps-plugin/kokkos/build_deps.py builds from Debian bookworm's source package (LAMMPS
29 Sep 2021, KOKKOS on Kokkos 3.4 with OpenMP + Serial, PLUGIN, MANYBODY; serial, MPI stubs), cached in
~/.cache/hybridpot/lammps-2021-kokkos (HYBRIDPOT_LAMMPS_KOKKOS). The plugin is compiled against that build
(the sources of the wheel's plugin plus kokkos/pair_hpot_kokkos.cpp, the LAMMPS 2021 branches) and loaded with
``plugin load``. For each structure (a periodic triclinic Cu cell; Cu-Ni), the host style and the Kokkos style
(``lmp -k on t N -sf kk``) run ``run 0`` on the same input; energy, per-atom energies, forces, the virial and the
per-atom virials (``compute stress/atom``) must agree to 1e-10 relative (max |a - b| / max |b|). The Kokkos style
runs two ways: 2 OpenMP threads with LAMMPS's CPU defaults (newton on), and 1 thread with the GPU defaults
``comm device`` and ``newton off``. In both the adjoint rows reach the ghost atoms through the host-side
pack/unpack: LAMMPS 2021's CommKokkos calls the device-side ones (KokkosBase) only for a style whose execution
space is a GPU, so on this CPU build they are compiled but not run. The host style is also checked against
hybridpot (1e-10), so both are anchored to the Python evaluation.

Skipped, with the reason, where that LAMMPS is not built (``python lammps-plugin/kokkos/build_deps.py lammps``,
~15 min on 2 cores).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hybridpot.export.plugin_file import plugin_model_text
from hybridpot.lammps_run import lammps_frame
from hybridpot.potential import to_numpy
from tests.builders import CU, CUNI, hybrid, structure

pytestmark = [pytest.mark.slow, pytest.mark.lammps]

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-10
#: LAMMPS's pressure per (eV / A^3) under units metal (update.cpp: force->nktv2p, bar)
NKTV2P = 1.6021765e6
#: how the Kokkos style runs: (name, lmp arguments, OpenMP threads of the environment)
KOKKOS_RUNS = [
    ("kk-t2-cpu-defaults", ["-k", "on", "t", "2", "-sf", "kk"], 2),
    ("kk-t1-gpu-defaults-comm-device-newton-off", ["-k", "on", "t", "1", "-sf", "kk", "-pk", "kokkos", "comm", "device", "newton", "off"], 1),
]
CASES = {
    "linear-Cu-eam": (CU, "linear", "eam", {}),
    "quadratic-CuNi-eam": (CUNI, "quadratic", "eam", {}),
    "nn-CuNi-none-bessel-channels": (CUNI, "nn", None, {"basis": "bessel", "element_channels": True}),
}


def build_deps():
    spec = importlib.util.spec_from_file_location("hybridpot_build_deps", REPO / "lammps-plugin" / "kokkos" / "build_deps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lammps2021(tmp_path_factory) -> dict:
    """The LAMMPS 2021 KOKKOS build and the plugin compiled for it (skipped, with the reason, where it is not built)."""
    deps = build_deps()
    build = deps.lammps_2021()
    if isinstance(build, str):
        pytest.skip(build)
    plugin = tmp_path_factory.mktemp("plugin2021") / "hpotkkplugin.so"
    command = deps.plugin_2021_command(build, plugin)
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-4000:]}"
    return build | {"plugin": plugin}


def lammps_input(atoms, elements: list[str], model: Path, plugin: Path, baseline: bool = True) -> tuple[str, np.ndarray]:
    """The input of one ``run 0`` of ``atoms`` under ``pair_style hpot`` (hpot/kk with -sf kk) and the rotation R of its
    frame (x_lammps = x @ R). It prints the energy, the virial-only pressure tensor and the volume, and dumps per-atom
    forces, energies and stress/atom at full precision."""
    cell, positions, rotation, boundary = lammps_frame(atoms)
    (ax, _, _), (bx, by, _), (cx, cy, cz) = cell.tolist()
    lines = ["units metal", "atom_style atomic", "atom_modify map array sort 0 0.0", "boundary " + " ".join(boundary),
             f"region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r} units box", f"create_box {len(elements)} box"]
    symbols = atoms.get_chemical_symbols()
    lines += [f"create_atoms {elements.index(s) + 1} single {x!r} {y!r} {z!r} units box" for s, (x, y, z) in zip(symbols, positions.tolist())]
    lines += [f"mass {t + 1} 1.0" for t in range(len(elements))]
    lines += [f"plugin load {plugin}", f"pair_style hpot {model}" + ("" if baseline else " baseline no"),
              "pair_coeff * * " + " ".join(elements), "compute pe all pe/atom", "compute st all stress/atom NULL virial",
              "compute w all pressure NULL virial",
              "thermo_style custom step pe c_w[1] c_w[2] c_w[3] c_w[4] c_w[5] c_w[6] vol", "thermo_modify format float %.17g",
              "dump d all custom 1 atoms.dump id fx fy fz c_pe c_st[1] c_st[2] c_st[3] c_st[4] c_st[5] c_st[6]",
              "dump_modify d format float %.17g sort id", "run 0",
              'print "RESULT $(pe:%.17g) $(c_w[1]:%.17g) $(c_w[2]:%.17g) $(c_w[3]:%.17g) $(c_w[4]:%.17g) $(c_w[5]:%.17g) '
              '$(c_w[6]:%.17g) $(vol:%.17g)"']
    return "\n".join(lines) + "\n", rotation


def run_2021(build: dict, directory: Path, text: str, arguments: list[str], threads: int) -> dict:
    """Run the 2021 lmp on ``text`` in ``directory``: energy (eV), per-atom energies, forces (eV/A), virial W (3, 3)
    and per-atom virials (N, 6) (eV, LAMMPS frame), and the log."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "in.lmp").write_text(text)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_PROC_BIND="false")
    done = subprocess.run([str(build["lmp"]), "-in", "in.lmp", "-log", "log.lammps", *arguments], cwd=directory, capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, f"{' '.join(arguments)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    pe, *w, volume = map(float, result.split()[1:])
    w = np.array(w) * volume / NKTV2P  # compute pressure NULL virial is W / V in pressure units
    rows = (directory / "atoms.dump").read_text().splitlines()
    start = rows.index(next(r for r in rows if r.startswith("ITEM: ATOMS"))) + 1
    atoms = np.array([r.split() for r in rows[start:]], dtype=float)
    return {"energy": pe, "energies": atoms[:, 4], "forces": atoms[:, 1:4],
            "virial": np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]]),
            "atom_virials": -atoms[:, 5:11] / NKTV2P, "log": done.stdout}


def deviation(a: dict, b: dict, keys=("energy", "energies", "forces", "virial", "atom_virials")) -> dict[str, float]:
    return {k: float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k]))) / np.max(np.abs(b[k]))) for k in keys}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hpot_kk_matches_hpot_in_lammps_2021(case, lammps2021, lammps_potentials, tmp_path):
    system, kind, baseline, options = CASES[case]
    atoms = structure(system, seed=3)
    potential = hybrid(system, kind, baseline, lammps_potentials, [atoms, structure(system, seed=4)], seed=1, **options)
    model = tmp_path / "m.hybridpot.lmp"
    model.write_text(plugin_model_text(potential))
    elements = list(system.elements)
    text, rotation = lammps_input(atoms, elements, model, lammps2021["plugin"])
    host = run_2021(lammps2021, tmp_path / "host", text, [], 1)
    assert re.search(r"pair hpot, perpetual", host["log"]), host["log"][-2000:]

    # the host style in this LAMMPS against hybridpot (its frame: forces f @ R.T, virial R W R^T)
    ours = to_numpy(potential.compute(atoms))
    back = {"energy": host["energy"], "energies": host["energies"], "forces": host["forces"] @ rotation.T,
            "virial": rotation @ host["virial"] @ rotation.T}
    dev = deviation(back, {"energy": ours["energy"][0], "energies": ours["energies"], "forces": ours["forces"], "virial": ours["virial"][0]},
                    keys=("energy", "energies", "forces", "virial"))
    print(f"{case}: hpot (LAMMPS {lammps2021['version']}) vs hybridpot: {dev}")
    assert max(dev.values()) <= TOLERANCE, dev
    assert np.allclose(host["atom_virials"].sum(0)[[0, 1, 2]], np.diag(host["virial"]), rtol=1e-10, atol=1e-12)

    for name, arguments, threads in KOKKOS_RUNS:
        kk = run_2021(lammps2021, tmp_path / name, text, arguments, threads)
        assert re.search(r"pair hpot/kk, perpetual", kk["log"]), kk["log"][-2000:]
        dev = deviation(kk, host)
        print(f"{case}: hpot/kk ({name}) vs hpot: {dev}")
        assert max(dev.values()) <= TOLERANCE, dev


def test_hpot_kk_refuses_what_it_does_not_run(lammps2021, lammps_potentials, tmp_path):
    """A Tersoff baseline (host-only) and compute hpot/gamma are refused by hpot/kk with the reason."""
    from tests.builders import SI

    atoms = structure(SI, seed=3)
    potential = hybrid(SI, "linear", "tersoff", lammps_potentials, [atoms], seed=1)
    model = tmp_path / "t.hybridpot.lmp"
    model.write_text(plugin_model_text(potential))
    text, _ = lammps_input(atoms, ["Si"], model, lammps2021["plugin"])
    directory = tmp_path / "tersoff"
    directory.mkdir()
    (directory / "in.lmp").write_text(text)
    done = subprocess.run([str(lammps2021["lmp"]), "-in", "in.lmp", "-k", "on", "t", "1", "-sf", "kk"], cwd=directory, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode != 0 and "no Tersoff baseline" in done.stdout + done.stderr, done.stdout[-2000:]
    # the same file with `baseline no` runs (the residual alone)
    text, _ = lammps_input(atoms, ["Si"], model, lammps2021["plugin"], baseline=False)
    host = run_2021(lammps2021, tmp_path / "residual-host", text, [], 1)
    kk = run_2021(lammps2021, tmp_path / "residual-kk", text, ["-k", "on", "t", "1", "-sf", "kk"], 1)
    assert max(deviation(kk, host).values()) <= TOLERANCE
    # compute hpot/gamma needs the host style
    gamma = text.replace("run 0", "compute g all hpot/gamma\nrun 0")
    (directory / "in.lmp").write_text(gamma)
    done = subprocess.run([str(lammps2021["lmp"]), "-in", "in.lmp", "-k", "on", "t", "1", "-sf", "kk"], cwd=directory, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode != 0 and "compute hpot/gamma is not available with pair_style hpot/kk" in done.stdout + done.stderr, done.stdout[-2000:]


def test_deck_runs_with_the_kokkos_commands_of_its_readme(lammps2021, lammps_potentials, tmp_path):
    """An exported deck's in.NAME.lmp (4 NVT steps), with the `plugin load` line its README asks for, run as the README's
    Kokkos CPU command says (`lmp -k on t N -sf kk`, here 2 threads) in the LAMMPS 2021 build: the same thermo rows as
    `hpot` (1e-10 relative), and a step-0 energy equal to hybridpot's."""
    from hybridpot.export.commands import KOKKOS_OPENMP_COMMAND
    from hybridpot.export.lammps import export_lammps
    from tests.lammps_reference import thermo_rows

    atoms = structure(CUNI, seed=8)
    potential = hybrid(CUNI, "nn", "eam", lammps_potentials, [atoms], seed=3)
    files = export_lammps(potential, tmp_path / "deck", name="cuni", structure=atoms, steps=4, temperature=500.0)
    command = KOKKOS_OPENMP_COMMAND.format(name="cuni", threads=2).split()
    assert command[0] == "lmp" and command[-2:] == ["-in", "in.cuni.lmp"] and command[1:-2] == ["-k", "on", "t", "2", "-sf", "kk"]
    assert KOKKOS_OPENMP_COMMAND.format(name="cuni", threads=4) in files["readme"].read_text()
    text = files["input"].read_text()
    assert "include         pair.cuni.lmp" in text
    files["input"].write_text(text.replace("include         pair.cuni.lmp", f"plugin load {lammps2021['plugin']}\ninclude         pair.cuni.lmp"))
    rows = {}
    for label, arguments in (("host", []), ("kk", command[1:-2])):
        env = dict(os.environ, OMP_NUM_THREADS="2", OMP_PROC_BIND="false")
        done = subprocess.run([str(lammps2021["lmp"]), "-in", "in.cuni.lmp", "-log", f"log.{label}", *arguments], cwd=files["input"].parent,
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:]
        assert f"pair {'hpot/kk' if label == 'kk' else 'hpot'}, perpetual" in done.stdout
        rows[label] = np.array(thermo_rows(files["input"].parent / f"log.{label}"))
    assert rows["host"].shape == (2, 6) and rows["host"][:, 0].tolist() == [0, 4]
    scale = np.max(np.abs(rows["host"]), axis=0)
    assert np.all(np.abs(rows["kk"] - rows["host"]) <= TOLERANCE * scale), (rows["kk"], rows["host"])
    expected = float(to_numpy(potential.compute(atoms, forces=False, stress=False))["energy"][0])
    assert abs(rows["kk"][0, 2] - expected) <= TOLERANCE * abs(expected)


def test_hpot_kk_under_hybrid_overlay(lammps2021, lammps_potentials, tmp_path):
    """A deck's ``pair.NAME.overlay.lmp`` (LAMMPS's own ``eam/alloy`` + ``hpot FILE baseline no`` under ``hybrid/overlay``),
    run with ``-sf kk`` so that LAMMPS runs ``hybrid/overlay/kk`` over ``eam/alloy/kk`` and ``hpot/kk``: the same thermo
    rows (4 NVT steps, 1e-10 relative) as the host ``hpot`` with its own EAM baseline (``pair.NAME.lmp``).

    Not with Tersoff: in this LAMMPS (29 Sep 2021) ``tersoff/kk`` alone already differs from ``tersoff`` (same energy,
    pressure 0.16% lower on a 512-atom Si cell, so different forces), whatever hpot does; hpot/kk's residual alone
    matches the host one exactly (:func:`test_hpot_kk_refuses_what_it_does_not_run`)."""
    from hybridpot.export.lammps import export_lammps
    from tests.lammps_reference import thermo_rows

    atoms = structure(CUNI, seed=8)
    potential = hybrid(CUNI, "nn", "eam", lammps_potentials, [atoms], seed=3)
    files = export_lammps(potential, tmp_path / "deck", name="x", structure=atoms, steps=4, temperature=500.0)
    assert "overlay" in files, sorted(files)
    text = files["input"].read_text()
    assert "include         pair.x.lmp" in text
    rows, logs = {}, {}
    for label, pair_file, arguments in (("host", "pair.x.lmp", []), ("kk-overlay", "pair.x.overlay.lmp", ["-k", "on", "t", "2", "-sf", "kk"])):
        files["input"].write_text(text.replace("include         pair.x.lmp", f"plugin load {lammps2021['plugin']}\ninclude         {pair_file}"))
        env = dict(os.environ, OMP_NUM_THREADS="2", OMP_PROC_BIND="false")
        done = subprocess.run([str(lammps2021["lmp"]), "-in", "in.x.lmp", "-log", f"log.{label}", *arguments], cwd=files["input"].parent,
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        rows[label], logs[label] = np.array(thermo_rows(files["input"].parent / f"log.{label}")), done.stdout
    assert "pair hpot, perpetual" in logs["host"] and "hybrid/overlay" in files["overlay"].read_text()
    # under hybrid/overlay LAMMPS 2021 names the sub-styles' lists by their keywords; with -sf kk both run on Kokkos
    for sub in ("eam/alloy", "hpot"):
        assert re.search(rf"pair {re.escape(sub)}, perpetual.*\n\s+attributes: \w+, newton on, kokkos_device", logs["kk-overlay"]), \
            logs["kk-overlay"][-3000:]
    assert rows["host"].shape == (2, 6)
    scale = np.max(np.abs(rows["host"]), axis=0)
    print("overlay under kk vs hpot, max relative deviation per column:", np.max(np.abs(rows["kk-overlay"] - rows["host"]), axis=0) / scale)
    assert np.all(np.abs(rows["kk-overlay"] - rows["host"]) <= TOLERANCE * scale), (rows["kk-overlay"], rows["host"])
