"""Exceptions raised by hybridpot.

Every error raised on bad user input is a :class:`HybridpotError` (a ``ValueError``) whose
message names what was wrong and where: the file, the structure index, the atoms involved, and
the fix. The subclasses say which kind of input was at fault, so that callers (and tests) can
tell them apart; ``except HybridpotError`` catches them all.
"""

from __future__ import annotations


class HybridpotError(ValueError):
    """Bad input: a file, a structure, a parameter or a configuration that cannot be used."""


class PotentialFileError(HybridpotError):
    """A potential file that is missing, truncated, corrupt or does not cover the elements asked for."""


class StructureError(HybridpotError):
    """A structure that cannot be evaluated: NaN positions, overlapping atoms, missing cell, unknown element."""


class ConfigError(HybridpotError):
    """A configuration value that is missing, of the wrong type, not finite or out of range."""


class DataError(HybridpotError):
    """A labelled data set that cannot be used: unreadable, missing or non-finite labels, bad structures,
    elements the rest of the job does not cover."""


class UnitsError(DataError):
    """Labels that look like a unit or sign-convention mistake (Hartree or kcal/mol energies, GPa or
    LAMMPS-sign stresses); ``[data] check_units = false`` lets a user who knows better go on."""


class OutlierError(DataError):
    """Structures or atoms whose labels are far outside the rest of their set (another DFT setup, an unconverged
    calculation, one structure's units or sign); ``[data] check_outliers = false`` lets a user who knows better go on."""


class OutputError(HybridpotError):
    """An output folder that cannot be written: unwritable, locked by another process, or holding
    results that must not be replaced."""


class ModelFileError(HybridpotError):
    """A model file that is missing, corrupt, of an unknown version, edited by hand (checksum
    mismatch) or holding non-finite parameters."""


class FitError(HybridpotError):
    """A fit that cannot be carried out with the data and settings given (e.g. a descriptor that is
    zero for every training atom)."""


class NotExportableError(HybridpotError):
    """A potential with a part the export target cannot run (a descriptor, model, baseline or
    fallback without a counterpart there)."""


class UncertaintyDataError(HybridpotError):
    """A query that needs uncertainty data the potential does not carry (none at all, no posterior,
    no active set, no fallback)."""

    def __init__(self, message: str = "this potential carries no uncertainty data: fit it with `hybridpot fit` "
                                      "(or call hybridpot.uq.attach_uq after fitting)") -> None:
        super().__init__(message)
