"""ASE calculator wrapping any hybridpot potential (empirical alone, ML alone, hybrid)."""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator as _AseCalculator
from ase.calculators.calculator import PropertyNotImplementedError, all_changes

from hybridpot.potential import Potential, to_numpy


class Calculator(_AseCalculator):
    """ASE calculator for a :class:`~hybridpot.potential.Potential`.

    Results: ``energy`` and ``free_energy`` (eV), ``energies`` (eV per atom), ``forces``
    (eV/Angstrom) and ``stress`` (eV/Angstrom^3, ASE Voigt order, positive = tensile; only for
    structures with a cell).
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, potential: Potential, **kwargs) -> None:
        super().__init__(**kwargs)
        self.potential = potential

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        has_cell = abs(self.atoms.cell.volume) > 1e-10
        if "stress" in properties and not has_cell:
            raise PropertyNotImplementedError("stress needs a cell with non-zero volume")
        # the stress comes from the same backward pass as the forces: computed whenever there is a cell, so that
        # asking for it after the energy (MD recording the pressure) is not a second evaluation
        want_stress = has_cell
        res = to_numpy(self.potential.compute(self.atoms, forces=True, stress=want_stress))
        energy = float(res["energy"][0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": res["energies"],
            "forces": res["forces"],
        }
        if want_stress:
            self.results["stress"] = np.asarray(res["stress"][0])
