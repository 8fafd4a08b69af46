"""The Kokkos kernels of the LAMMPS plugin (lammps-plugin/kokkos), compiled and run on the CPU with Kokkos.

The driver runs the functions of lammps-plugin/src/kernels.h (the ones the host pair style calls) in
Kokkos parallel loops over the tables copied into the execution space's memory. The harness reads a model
file and hybridpot's own full pair list of a structure and writes energies, forces and the virial, which must
equal hybridpot's and the host pair style's (LAMMPS) to 1e-12 relative. Each test runs once per Kokkos backend
(lammps-plugin/kokkos/build_deps.py, ``kokkos_backends``):

* ``serial``: Debian's package (libtrilinos-kokkos-dev, Kokkos 3.4, Serial backend; or set KOKKOS_INCLUDE and
  KOKKOS_LIBRARY), one thread;
* ``openmp``: Kokkos 3.4 built with OpenMP from Debian's trilinos source into a cache
  (``python lammps-plugin/kokkos/build_deps.py kokkos``; HYBRIDPOT_KOKKOS_OPENMP), run on 2 OpenMP threads
  (the harness must report the OpenMP execution space with concurrency 2).

A backend that is not installed skips its tests with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from hybridpot.export.lammps import deck_pair_lines, export_lammps
from hybridpot.neighbors import neighbor_list, pair_vectors
from hybridpot.potential import HybridPotential, to_numpy
from hybridpot.system import AtomicSystem
from tests.builders import CU, CUNI, descriptor, hybrid, random_model, structure

pytestmark = pytest.mark.slow  # compiles the Kokkos harness

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-12
#: OpenMP threads of the openmp backend's runs
THREADS = {"serial": 1, "openmp": 2}
SPACE = {"serial": "Serial", "openmp": "OpenMP"}


def build_deps():
    """lammps-plugin/kokkos/build_deps.py as a module (where the Kokkos builds are, the harness's compiler call)."""
    spec = importlib.util.spec_from_file_location("hybridpot_build_deps", REPO / "lammps-plugin" / "kokkos" / "build_deps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", params=sorted(THREADS))
def harness(request, tmp_path_factory) -> tuple[Path, str, dict]:
    """The harness compiled with one Kokkos backend (skipped, with the reason, where that Kokkos is not installed)."""
    deps = build_deps()
    backend = deps.kokkos_backends()[request.param]
    if isinstance(backend, str):
        pytest.skip(f"Kokkos backend {request.param}: {backend}")
    out = tmp_path_factory.mktemp(f"kokkos-{request.param}") / "hpot_kokkos_harness"
    command = deps.harness_command(backend, out)
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stderr[-4000:]}"
    env = dict(os.environ, **backend["env"], OMP_NUM_THREADS=str(THREADS[request.param]))
    return out, request.param, env


def run_harness(harness, potential: HybridPotential, atoms, tmp_path: Path) -> dict:
    """The Kokkos driver on ``atoms`` (hybridpot's own full pair list): energy, per-atom energies, forces, virial.
    Checks that it ran in the backend's execution space on the backend's number of threads."""
    program, backend, env = harness
    from hybridpot.export.plugin_file import plugin_model_text

    model = tmp_path / "m.hybridpot.lmp"
    model.write_text(plugin_model_text(potential))
    system = AtomicSystem.from_atoms(atoms)
    nl = neighbor_list(system, potential.cutoff)
    vectors = pair_vectors(system, nl).detach().numpy()
    i, j = nl.i.numpy(), nl.j.numpy()
    elements = potential.types(system.numbers).numpy()
    lines = [f"{len(atoms)} {len(i)}", " ".join(map(str, elements))]
    lines += [f"{a} {b} {x!r} {y!r} {z!r}" for a, b, (x, y, z) in zip(i, j, vectors.tolist())]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.txt"
    done = subprocess.run([str(program), str(model), str(tmp_path / "pairs.txt"), str(out)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert f"{SPACE[backend]} execution space, concurrency {THREADS[backend]}" in done.stdout, done.stdout
    rows = out.read_text().splitlines()
    v = np.array(rows[1].split(), dtype=float)
    atom_rows = np.array([r.split() for r in rows[2:]], dtype=float)
    return {"energy": float(rows[0]), "energies": atom_rows[:, 0], "forces": atom_rows[:, 1:4],
            "virial": np.array([[v[0], v[3], v[4]], [v[3], v[1], v[5]], [v[4], v[5], v[2]]]), "log": done.stdout}


def deviation(a: dict, b: dict) -> dict[str, float]:
    return {q: float(np.max(np.abs(np.asarray(a[q]) - np.asarray(b[q]))) / np.max(np.abs(b[q]))) for q in ("energy", "energies", "forces", "virial")}


CASES = {
    "linear-Cu-eam": (CU, "linear", "eam", {}),
    "quadratic-CuNi-eam": (CUNI, "quadratic", "eam", {}),
    "nn-CuNi-none-bessel-channels": (CUNI, "nn", None, {"basis": "bessel", "element_channels": True}),
    "linear-Cu-eam-bispectrum": (CU, "linear", "eam", {"invariants": "bispectrum", "nmax": 3, "lmax": 3}),
}


@pytest.mark.lammps
@pytest.mark.parametrize("case", sorted(CASES))
def test_kokkos_driver_matches_hybridpot_and_the_host_pair_style(case, harness, lammps_potentials, tmp_path, request):
    from hybridpot.lammps_run import run_lammps

    system, model, baseline, options = CASES[case]
    atoms = structure(system, seed=3)
    potential = hybrid(system, model, baseline, lammps_potentials, [atoms, structure(system, seed=4)], seed=1, **options)
    kokkos = run_harness(harness, potential, atoms, tmp_path)
    ours = to_numpy(potential.compute(atoms))
    ours = {"energy": ours["energy"][0], "energies": ours["energies"], "forces": ours["forces"], "virial": ours["virial"][0]}
    dev = deviation(kokkos, ours)
    print(f"{case} ({harness[1]}) vs hybridpot: {dev}; {kokkos['log'].strip()}")
    assert max(dev.values()) <= TOLERANCE, dev
    request.getfixturevalue("lammps_plugin")  # the host pair style, where it is built
    export_lammps(potential, tmp_path / "deck", name="k")
    host = run_lammps(atoms, deck_pair_lines(tmp_path / "deck", "k", list(system.elements)), list(system.elements))
    dev = deviation(kokkos, host)
    print(f"{case} ({harness[1]}) vs the host pair style: {dev}")
    assert max(dev.values()) <= TOLERANCE, dev


def test_kokkos_driver_lj_committee_and_fallback(harness, tmp_path):
    """LJ baseline and a committee of networks; a fallback switch from a (synthetic) active set."""
    from hybridpot.empirical import LennardJones
    from hybridpot.models.committee import CommitteeModel
    from hybridpot.uq import ActiveSet, UQData, enable_fallback

    atoms = structure(CUNI, seed=3)
    lj = LennardJones(["Cu", "Ni"], {("Cu", "Cu"): 0.40, ("Ni", "Ni"): 0.52}, {("Cu", "Cu"): 2.33, ("Ni", "Ni"): 2.28},
                      cutoff=5.5, cutoffs={("Cu", "Ni"): 5.0}, shift=True)
    d = descriptor(CUNI)
    potential = HybridPotential(lj, d, CommitteeModel([random_model("nn", d, [atoms], s, [0.02, 0.04]) for s in (6, 7)]))
    training = [structure(CUNI, seed=s) for s in range(4, 9)]
    B = d.compute(training)
    types = potential.types(AtomicSystem.from_atoms(training).numbers).numpy()
    potential.uq_data = UQData(active_set=ActiveSet.from_descriptors(B, types, ["Cu", "Ni"]), reference_energies={"Cu": 0.01, "Ni": 0.02})
    enable_fallback(potential, lower=1.0, upper=3.0)
    switch = potential.uncertainty(atoms, forces=False)["switch"]
    assert ((switch > 0.0) & (switch < 1.0)).any(), "the structure should be inside the fallback band"
    kokkos = run_harness(harness, potential, atoms, tmp_path)
    ours = to_numpy(potential.compute(atoms))
    ours = {"energy": ours["energy"][0], "energies": ours["energies"], "forces": ours["forces"], "virial": ours["virial"][0]}
    dev = deviation(kokkos, ours)
    print(f"lj + committee + fallback ({harness[1]}) vs hybridpot: {dev}")
    assert max(dev.values()) <= TOLERANCE, dev
    with torch.no_grad():
        potential.model.members[1].nets[0][0].weight.mul_(1 + 1e-6)
    changed = to_numpy(potential.compute(atoms))
    assert np.max(np.abs(kokkos["forces"] - changed["forces"])) > 10 * TOLERANCE * np.max(np.abs(changed["forces"]))
