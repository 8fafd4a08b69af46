"""What every empirical potential shares: the LAMMPS pair specification it deploys as."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from hybridpot.io.atomic import write_text_atomic
from hybridpot.potential import Potential


@dataclass
class LammpsPair:
    """How LAMMPS runs a potential: one pair sub-style and its coefficients.

    Attributes:
        style: ``pair_style`` arguments, e.g. ``"eam/alloy"`` or ``"lj/cut 8.5"``.
        coeffs: ``(I, J, args)`` triples for ``pair_coeff I J args``.
        modify: ``pair_modify`` arguments, e.g. ``["shift yes"]``.
        files: potential files the coefficients refer to (by file name).
    """

    style: str
    coeffs: list[tuple[str, str, str]]
    modify: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The sub-style name (first word of ``style``)."""
        return self.style.split()[0]

    def lines(self, directory: Path | str | None = None) -> list[str]:
        """Stand-alone ``pair_style``/``pair_coeff``/``pair_modify`` commands.

        File names are prefixed with ``directory`` (default: the file's own directory).
        """
        return [f"pair_style {self.style}"] + self.coeff_lines(substyle=False, directory=directory)

    def coeff_lines(self, substyle: bool, directory: Path | str | None = None) -> list[str]:
        """``pair_coeff`` and ``pair_modify`` lines, with the sub-style name for hybrid/overlay."""
        tag = f" {self.name}" if substyle else ""
        out = []
        for i, j, args in self.coeffs:
            for f in self.files:
                target = f if directory is None else Path(directory) / f.name
                args = args.replace(f"{{{f.name}}}", str(target))
            out.append(f"pair_coeff {i} {j}{tag} {args}")
        mod_tag = f" pair {self.name}" if substyle else ""
        out += [f"pair_modify{mod_tag} {m}" for m in self.modify]
        return out


class EmpiricalPotential(Potential):
    """An empirical potential read from (or writable as) a standard LAMMPS potential file.

    Subclasses implement :meth:`to_text` (the current, possibly refitted, parameters in their file
    format), :attr:`file_name` (a name whose suffix tells :func:`hybridpot.empirical.load` the
    kind) and :meth:`lammps_pair`. ``path`` is the file that holds the current parameters, if any:
    LAMMPS pair lines refer to it.
    """

    path: Path | None = None

    @property
    def file_name(self) -> str:  # pragma: no cover - abstract
        """Name for a file holding the current parameters."""
        raise NotImplementedError

    def to_text(self) -> str:  # pragma: no cover - abstract
        """The current parameters as the text of a potential file."""
        raise NotImplementedError

    def write(self, path: Path | str) -> Path:
        """Write the current parameters to ``path`` (atomically); ``path`` becomes :attr:`path`."""

        path = Path(path)
        write_text_atomic(path, self.to_text())
        self._now_in_file(path)
        return path

    def _now_in_file(self, path: Path) -> None:
        """Record that ``path`` holds the current parameters."""
        self.path = path

    def lammps_pair(self, type_elements: Sequence[str]) -> LammpsPair:  # pragma: no cover - abstract
        """The LAMMPS pair style for atom types whose elements are ``type_elements`` (type 1 first).

        File arguments are written as ``{filename}`` placeholders, resolved by :meth:`LammpsPair.lines`.
        """
        raise NotImplementedError
