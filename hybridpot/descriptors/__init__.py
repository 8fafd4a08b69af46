"""SO(3) descriptors of atomic environments (power spectrum and bispectrum).

``SO3`` is the public entry point; ``so3_descriptors`` is the numeric contract (a pure function on
tensors) that other backends mirror. See :mod:`hybridpot.descriptors.so3`.
"""

from hybridpot.descriptors.invariants import Bispectrum, PowerSpectrum
from hybridpot.descriptors.radial import BesselRadialBasis, LammpsRadialBasis
from hybridpot.descriptors.so3 import SO3, Mirror, PairGradients, so3_descriptors
from hybridpot.descriptors.spline import RadialSpline, tabulate

__all__ = [
    "SO3",
    "BesselRadialBasis",
    "Bispectrum",
    "LammpsRadialBasis",
    "Mirror",
    "PairGradients",
    "PowerSpectrum",
    "RadialSpline",
    "so3_descriptors",
    "tabulate",
]
