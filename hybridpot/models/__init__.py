"""Per-atom energy models on descriptors, one block of parameters per element."""

from hybridpot.models.polynomial import PolynomialModel

__all__ = ["PolynomialModel"]
