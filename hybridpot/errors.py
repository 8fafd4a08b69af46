"""Exceptions raised by hybridpot.

Every error raised on bad user input is a :class:`HybridpotError` (a ``ValueError``) whose
message names what was wrong and where: the file, the structure index, the atoms involved.
"""

from __future__ import annotations


class HybridpotError(ValueError):
    """Bad input: a file, a structure, a parameter or a configuration that cannot be used."""


class PotentialFileError(HybridpotError):
    """A potential file that is missing, truncated, corrupt or does not cover the elements asked for."""


class StructureError(HybridpotError):
    """A structure that cannot be evaluated: NaN positions, overlapping atoms, missing cell, unknown element."""
