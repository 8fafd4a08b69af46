"""SO(3) descriptors against LAMMPS ML-IAP ``compute mliap ... descriptor so3``.

LAMMPS gives per-atom descriptors and their full Jacobian when every atom has its own atom type
(one "element" per atom, all with the same name and the weight of the real element). The
Jacobian is compared with the one assembled from hybridpot's pair form.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_masses, atomic_numbers

from hybridpot.descriptors import SO3, PairGradients
from tests.structures import random_triclinic, slab

pytestmark = pytest.mark.lammps


def lammps_so3(atoms: Atoms, descriptor: SO3, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """LAMMPS so3 descriptors B (N, K) and Jacobian dB_i/dx_j (N, K, N, 3) in the frame of ``atoms``."""
    from hybridpot.lammps_run import lammps_frame, new_lammps

    cell, pos, rotation, boundary = lammps_frame(atoms)
    n, k = len(atoms), descriptor.n_features
    symbols = atoms.get_chemical_symbols()
    path = workdir / "so3.mliap.descriptor"
    path.write_text(
        f"rcutfac {descriptor.rcut!r}\nnmax {descriptor.nmax}\nlmax {descriptor.lmax}\nalpha {descriptor.alpha!r}\n"
        f"nelems {n}\nelems {' '.join(symbols)}\nradelems {' '.join(['0.5'] * n)}\n"
        f"welems {' '.join(repr(descriptor.weights[s]) for s in symbols)}\n"
    )
    lmp = new_lammps()
    try:
        for line in ("units metal", "atom_style atomic", "atom_modify map array sort 0 0.0", "boundary " + " ".join(boundary)):
            lmp.command(line)
        (ax, _, _), (bx, by, _), (cx, cy, cz) = (map(float, row) for row in cell)
        lmp.command(f"region box prism 0 {ax!r} 0 {by!r} 0 {cz!r} {bx!r} {cx!r} {cy!r} units box")
        lmp.command(f"create_box {n} box")
        for i, (x, y, z) in enumerate(pos.tolist()):
            lmp.command(f"create_atoms {i + 1} single {x!r} {y!r} {z!r} units box")
            lmp.command(f"mass {i + 1} {atomic_masses[atomic_numbers[symbols[i]]]}")
        assert lmp.get_natoms() == n
        lmp.command(f"pair_style zero {descriptor.rcut + 0.5}")
        lmp.command("pair_coeff * *")
        lmp.command(f"compute desc all mliap descriptor so3 {path} model linear")
        lmp.command("thermo_style custom step c_desc[1][1]")
        lmp.command("run 0")
        array = np.array(lmp.numpy.extract_compute("desc", 0, 2))
        ids = np.array(lmp.numpy.extract_atom("id")[:n])
    finally:
        lmp.close()
    assert np.array_equal(ids, np.arange(1, n + 1))
    columns = np.arange(n)[:, None] * (k + 1) + 1 + np.arange(k)[None, :]  # (N, K)
    features = array[0, columns]
    jacobian = -array[1 : 1 + 3 * n][:, columns].reshape(n, 3, n, k).transpose(2, 3, 0, 1)  # (i, k, j, a)
    return features, jacobian @ rotation.T


def pair_jacobian(gradients: PairGradients, n_atoms: int) -> np.ndarray:
    """dB_i/dx_j (N, K, N, 3) from the pair form: +dB[p] at (i, j), -dB[p] at (i, i)."""
    k = gradients.values.shape[1]
    out = np.zeros((n_atoms, n_atoms, k, 3))
    np.add.at(out, (gradients.i, gradients.j), gradients.values)
    np.add.at(out, (gradients.i, gradients.i), -gradients.values)
    return out.transpose(0, 2, 1, 3)


def _fcc_cu() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.08, seed=1)
    return atoms


STRUCTURES = {
    "fcc_Cu": (_fcc_cu, {"Cu": 1}),
    "triclinic": (lambda: random_triclinic(["Cu"], a=3.615, repeat=(2, 3, 2), seed=5, strain=0.1), {"Cu": 1}),
    "slab": (lambda: slab(["Cu"], a=3.615), {"Cu": 1}),
    "CuNi_weights_1_2": (lambda: random_triclinic(["Cu", "Ni"], a=3.6, repeat=(2, 2, 2), seed=3), {"Cu": 1, "Ni": 2}),
}
#: (rcut, nmax, lmax, alpha) inside LAMMPS's numerically sound range (nmax <= 4 here; see below for 5).
PARAMETERS = [(5.0, 4, 4, 2.0), (4.5, 3, 3, 1.0), (5.5, 4, 5, 4.0)]


@pytest.mark.parametrize("params", PARAMETERS, ids=lambda p: "rc{}_n{}_l{}_a{}".format(*p))
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_so3_matches_lammps(name, params, lammps_module, tmp_path):
    """Descriptors and their Jacobians agree with LAMMPS to 1e-8 absolute."""
    build, weights = STRUCTURES[name]
    atoms = build()
    rcut, nmax, lmax, alpha = params
    descriptor = SO3(rcut=rcut, nmax=nmax, lmax=lmax, alpha=alpha, elements=sorted(weights), weights=weights)
    descriptor.check_lammps_exportable()
    ref_b, ref_j = lammps_so3(atoms, descriptor, tmp_path)
    ours_b, gradients = descriptor.compute(atoms, gradients=True)
    err_b = np.max(np.abs(ours_b - ref_b))
    err_j = np.max(np.abs(pair_jacobian(gradients, len(atoms)) - ref_j))
    assert err_b <= 1e-8, f"{name} {params}: descriptors differ from LAMMPS by {err_b:.2e} (max |B| {np.max(np.abs(ref_b)):.3g})"
    assert err_j <= 1e-8, f"{name} {params}: Jacobians differ from LAMMPS by {err_j:.2e} (max |dB| {np.max(np.abs(ref_j)):.3g})"


def _mixing_design(ours: np.ndarray, nmax: int, lmax: int) -> np.ndarray:
    """d(p~) / dE for power spectra p~ of radial functions mixed as g~ = (1 + E) g.

    Per l, p~_l = (1 + E) p_l (1 + E)^T, to first order p~_l - p_l = E p_l + p_l E^T; E is a
    constant nmax x nmax matrix. Rows follow ``ours.reshape(-1)`` (rows of (n1, n2, l) features).
    """
    n1, n2 = np.tril_indices(nmax)
    rows = ours.reshape(len(ours), -1, lmax + 1)  # (N, T, L)
    full = np.zeros((len(ours), lmax + 1, nmax, nmax))
    full[:, :, n1, n2] = rows.transpose(0, 2, 1)
    full[:, :, n2, n1] = rows.transpose(0, 2, 1)
    design = np.zeros((len(ours), lmax + 1, len(n1), nmax, nmax))
    for t, (a1, a2) in enumerate(zip(n1, n2)):
        design[:, :, t, a1, :] += full[:, :, a2, :]
        design[:, :, t, a2, :] += full[:, :, a1, :]
    return design.transpose(0, 2, 1, 3, 4).reshape(-1, nmax * nmax)


def test_so3_nmax5_differs_from_lammps_only_by_its_orthonormalisation(lammps_module, tmp_path):
    """nmax = 5: LAMMPS is not accurate to 1e-8 here, and the test shows why.

    LAMMPS orthonormalises the radial polynomials through S^-1 and a Jacobi eigensolver; S has
    condition number 1.5e7 at nmax 5, and its radial functions come out mixed by a constant matrix
    1 + E with |E| ~ 1e-8 (the spec measured ~2e-8 relative error in the descriptors). The
    difference from hybridpot (whose radial functions are checked against mpmath in
    test_descriptors.py) must be exactly such a mixing: after fitting E, nothing above 1e-11
    relative may remain (measured: |E| 1.6e-8, residual 2e-15), and E must be small.
    """
    atoms = _fcc_cu()
    descriptor = SO3(rcut=5.0, nmax=5, lmax=4, alpha=2.0)
    descriptor.check_lammps_exportable()
    ref_b, ref_j = lammps_so3(atoms, descriptor, tmp_path)
    ours_b, gradients = descriptor.compute(atoms, gradients=True)
    ours_j = pair_jacobian(gradients, len(atoms))
    design = _mixing_design(ours_b, 5, 4)
    target = (ref_b - ours_b).reshape(-1)
    mixing, *_ = np.linalg.lstsq(design, target, rcond=None)
    scale = np.max(np.abs(ref_b))
    raw = np.max(np.abs(target)) / scale
    residual = np.max(np.abs(target - design @ mixing)) / scale
    assert np.max(np.abs(mixing)) < 1e-6, f"radial mixing {np.max(np.abs(mixing)):.2e} is not a rounding effect"
    assert residual <= 1e-11, f"after removing a radial mixing of {np.max(np.abs(mixing)):.1e}, {residual:.1e} remains (raw {raw:.1e})"
    # the same E explains the Jacobians: dp~ = dp + E dp + dp E^T
    k = ours_b.shape[1]
    rows_ours = ours_j.transpose(0, 2, 3, 1).reshape(-1, k)
    rows_ref = ref_j.transpose(0, 2, 3, 1).reshape(-1, k)
    residual_j = np.max(np.abs((rows_ref - rows_ours).reshape(-1) - _mixing_design(rows_ours, 5, 4) @ mixing))
    assert residual_j / np.max(np.abs(ref_j)) <= 1e-11, f"Jacobian residual {residual_j / np.max(np.abs(ref_j)):.1e} (raw {np.max(np.abs(rows_ref - rows_ours)) / np.max(np.abs(ref_j)):.1e})"
