"""ZBL: parity with LAMMPS pair_style zbl, the switch, finite differences, invariance, settings and files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk

from hybridpot.empirical import load
from hybridpot.empirical.zbl import ZBL, ZBLSettings
from hybridpot.errors import ConfigError, PotentialFileError
from hybridpot.fitting.config import parse_config
from hybridpot.fitting.job import make_baseline
from hybridpot.testing import (
    assert_forces_match_finite_differences,
    assert_invariant,
    assert_matches_lammps,
    assert_stress_matches_finite_differences,
)


def dense_cuni(a: float = 2.9, seed: int = 1) -> Atoms:
    """Compressed, rattled fcc Cu-Ni: pair distances inside ``inner``, in the switch and beyond ``outer``."""
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat(2)
    rng = np.random.default_rng(seed)
    atoms.positions += rng.normal(scale=0.15, size=atoms.positions.shape)
    atoms.set_chemical_symbols(rng.choice(["Cu", "Ni"], len(atoms)).tolist())
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.uniform(-0.04, 0.04, (3, 3))), scale_atoms=True)
    for k, d in enumerate((0.6, 1.0, 1.3, 1.7)):  # a few close pairs, as in a collision cascade
        atoms.positions[8 * k + 1] = atoms.positions[8 * k] + d * rng.normal(size=3) / np.sqrt(3)
    return atoms


@pytest.mark.lammps
@pytest.mark.parametrize("inner, outer, z", [(1.5, 2.6, None), (0.8, 2.2, None), (1.9, 2.0, {"Ni": 27.5})])
def test_matches_lammps(lammps_module, inner, outer, z):
    potential = ZBL(["Cu", "Ni"], inner, outer, z)
    atoms = dense_cuni()
    r = atoms.get_all_distances(mic=True)[np.triu_indices(len(atoms), 1)]
    assert (r < inner).any() and ((r > inner) & (r < outer)).any() and (r > outer).any()
    for types in (["Cu", "Ni"], ["Ni", "Cu"]):
        assert_matches_lammps(potential, atoms, types, label=f"zbl {inner} {outer} {z} types {types}")


@pytest.mark.lammps
def test_a_cluster_matches_lammps(lammps_module):
    atoms = Atoms("CuNiCuNi", positions=[[0, 0, 0], [1.2, 0.3, 0], [0.2, 1.6, 0.4], [1.4, 1.1, 1.5]])
    assert_matches_lammps(ZBL(["Cu", "Ni"], 1.0, 2.5), atoms, ["Cu", "Ni"], label="zbl cluster")


def test_the_switch_takes_energy_force_and_curvature_to_zero():
    zbl = ZBL(["Cu"], 1.0, 2.0)
    z = torch.tensor([29.0], dtype=torch.float64)
    r = torch.tensor([2.0 - 1e-4, 2.0], dtype=torch.float64, requires_grad=True)
    e = zbl.pair_energy(r, z.expand(2), z.expand(2))
    (de,) = torch.autograd.grad(e.sum(), r, create_graph=True)
    (d2e,) = torch.autograd.grad(de.sum(), r)
    assert abs(e[1].item()) < 1e-12 and abs(de[1].item()) < 1e-10 and abs(d2e[1].item()) < 1e-8
    assert 0 < e[0].item() < 1e-10  # (dr)^3 just inside
    # below inner the switch is a constant shift: forces are those of the bare screened Coulomb term
    r = torch.tensor([0.5, 0.9], dtype=torch.float64)
    shift = zbl.pair_energy(r, z.expand(2), z.expand(2)) - zbl._screened(r, z.expand(2), z.expand(2), 0)
    assert shift[0].item() == pytest.approx(shift[1].item(), rel=1e-14) and shift[0].item() < 0


def test_forces_stress_and_invariance():
    potential = ZBL(["Cu", "Ni"], 1.5, 2.6)
    atoms = dense_cuni()
    assert_forces_match_finite_differences(potential, atoms, rel=1e-6, h=1e-5, atoms_idx=[0, 9, 21])
    assert_stress_matches_finite_differences(potential, atoms, rel=1e-6, h=1e-6)
    assert_invariant(potential, atoms)


def test_file_and_inline_settings(tmp_path):
    path = tmp_path / "CuNi.zbl.toml"
    path.write_text('elements = ["Cu", "Ni"]\ninner = 1.5\nouter = 2.6\n[z]\nNi = 27.5\n')
    pot = load(path)
    assert isinstance(pot, ZBL) and pot.z.tolist() == [29.0, 27.5] and pot.path == path
    again = tmp_path / "again.zbl.toml"
    again.write_text(pot.to_text())
    assert load(again).z.tolist() == [29.0, 27.5] and load(again).to_text() == pot.to_text()
    (tmp_path / "train.xyz").write_text("")
    config = parse_config({"data": {"train": "train.xyz"}, "baseline": {"type": "zbl", "elements": ["Cu"], "inner": 1.0,
                                                                          "outer": 2.0}}, tmp_path, "fit.toml")
    built = make_baseline(config)
    assert isinstance(built, ZBL) and (built.inner, built.outer) == (1.0, 2.0)
    for table, message in [({"elements": ["Cu"], "inner": 2.0, "outer": 1.0}, "need 0 < inner < outer"),
                           ({"elements": ["Cu"], "inner": 1.0}, "outer is required"),
                           ({"elements": ["Cu"], "inner": 1.0, "outer": 2.0, "z": {"Cu": -1}}, "must be positive numbers"),
                           ({"elements": ["Cu"], "inner": 1.0, "outer": 2.0, "cut": 3}, r"unknown key\(s\) \['cut'\]")]:
        with pytest.raises(ConfigError, match=message):
            ZBLSettings.from_table(table, "fit.toml: [baseline]")
    bad = tmp_path / "bad.zbl.toml"
    bad.write_text('elements = ["Cu"]\ninner = 1.0\nouter = "2"\n')
    with pytest.raises(PotentialFileError, match=r"bad.zbl.toml outer = '2': expected float"):
        load(bad)
    with pytest.raises(PotentialFileError, match="unknown element"):
        ZBL(["Cu", "Xx"], 1.0, 2.0)


@pytest.mark.lammps
def test_a_hybrid_on_zbl_is_stored_and_deployed(lammps_module, tmp_path, request):
    """An inline ZBL baseline goes into the model file and the exported deck (zbl under hybrid/overlay with hpot)."""
    from hybridpot.descriptors import SO3
    from hybridpot.export.lammps import deck_pair_lines, export_lammps
    from hybridpot.io.modelfile import load as load_model
    from hybridpot.io.modelfile import save
    from hybridpot.models.polynomial import PolynomialModel
    from hybridpot.potential import HybridPotential
    from hybridpot.testing import energy

    d = SO3(rcut=3.5, nmax=3, lmax=3, alpha=2.0, elements=["Cu", "Ni"])
    model = PolynomialModel(["Cu", "Ni"], d.n_features)
    with torch.no_grad():
        model.coef.copy_(torch.from_numpy(np.random.default_rng(0).normal(scale=1e-3, size=tuple(model.coef.shape))))
    pot = HybridPotential(ZBL(["Cu", "Ni"], 1.5, 2.6, {"Ni": 27.5}), d, model)
    atoms = dense_cuni(a=3.1)
    again = load_model(save(pot, tmp_path / "zbl.hybridpot.json"))
    assert isinstance(again.baseline, ZBL) and energy(again, atoms) == pytest.approx(energy(pot, atoms), rel=1e-14)
    request.getfixturevalue("lammps_plugin")  # the deck needs the plugin, where it is built
    deck = tmp_path / "deck"
    export_lammps(pot, deck, "z")
    assert "pair_style hybrid/overlay zbl 1.5 2.6 hpot" in (deck / "pair.z.lmp").read_text()
    assert_matches_lammps(pot, atoms, ["Cu", "Ni"], pair_lines=deck_pair_lines(deck, "z", ["Cu", "Ni"]), label="zbl deck",
                          ea_abs=1e-9)
