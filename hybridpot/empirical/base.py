"""What every empirical potential shares: the LAMMPS pair specification it deploys as, and the parameters
``[baseline] refit`` names."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hybridpot.errors import HybridpotError
from hybridpot.io.atomic import write_text_atomic
from hybridpot.potential import Potential


@dataclass
class LammpsPair:
    """How LAMMPS runs a potential: one pair style and its coefficients (and what else the style needs).

    Attributes:
        style: ``pair_style`` arguments, e.g. ``"eam/alloy"`` or ``"lj/cut 8.5"`` (``"hybrid/overlay A B ..."`` for a
            sum of styles, whose coefficient lines then name their sub-style themselves).
        coeffs: ``(I, J, args)`` triples for ``pair_coeff I J args``.
        modify: ``pair_modify`` arguments, e.g. ``["shift yes"]``.
        files: potential files the coefficients and commands refer to (by ``{file name}`` placeholders).
        commands: further commands after the pair lines (a charge equilibration ``fix``), with placeholders too.
        units: the LAMMPS ``units`` it runs in (``metal``, or ``real`` for a potential file in kcal/mol).
        atom_style: the ``atom_style`` it needs (``atomic``, or ``charge``).
    """

    style: str
    coeffs: list[tuple[str, str, str]]
    modify: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    units: str = "metal"
    atom_style: str = "atomic"

    @property
    def name(self) -> str:
        """The sub-style name (first word of ``style``)."""
        return self.style.split()[0]

    def _resolve(self, text: str, directory: Path | str | None) -> str:
        """``text`` with each ``{file name}`` placeholder replaced by the file's path (in ``directory`` if given)."""
        for f in self.files:
            target = f if directory is None else Path(directory) / f.name
            text = text.replace(f"{{{f.name}}}", str(target))
        return text

    def lines(self, directory: Path | str | None = None) -> list[str]:
        """Stand-alone ``pair_style``/``pair_coeff``/``pair_modify`` commands, then :attr:`commands`.

        File names are prefixed with ``directory`` (default: the file's own directory).
        """
        return [f"pair_style {self.style}"] + self.coeff_lines(substyle=False, directory=directory) + self.command_lines(directory)

    def coeff_lines(self, substyle: bool, directory: Path | str | None = None) -> list[str]:
        """``pair_coeff`` and ``pair_modify`` lines, with the sub-style name for hybrid/overlay."""
        tag = f" {self.name}" if substyle else ""
        out = [f"pair_coeff {i} {j}{tag} {self._resolve(args, directory)}" for i, j, args in self.coeffs]
        mod_tag = f" pair {self.name}" if substyle else ""
        out += [f"pair_modify{mod_tag} {m}" for m in self.modify]
        return out

    def command_lines(self, directory: Path | str | None = None) -> list[str]:
        """:attr:`commands` with their file placeholders resolved."""
        return [self._resolve(c, directory) for c in self.commands]

    def overlay_lines(self, residual_style: str, residual_coeff: str, directory: Path | str | None = None) -> list[str]:
        """This style and another one (the residual: its ``pair_style`` arguments, its ``pair_coeff`` arguments after the
        sub-style name) summed by ``pair_style hybrid/overlay``, then :attr:`commands`. A ``hybrid/overlay`` of its own
        becomes one ``hybrid/overlay`` with the residual added.

        Raises:
            HybridpotError: a ``hybrid`` (not overlay) or scaled hybrid style, which cannot take a further term.
        """
        residual = residual_style.split()[0]
        if self.name == "hybrid/overlay":
            lines = [f"pair_style {self.style} {residual_style}"] + self.coeff_lines(substyle=False, directory=directory)
        elif self.name.startswith("hybrid"):
            raise HybridpotError(f"pair_style {self.style}: a {self.name} style cannot be overlaid with the residual; write it as "
                                 "hybrid/overlay (each pair of types assigned once gives the same potential)")
        else:
            lines = [f"pair_style hybrid/overlay {self.style} {residual_style}"] + self.coeff_lines(substyle=True, directory=directory)
        return lines + [f"pair_coeff * * {residual} {residual_coeff}"] + self.command_lines(directory)


class EmpiricalPotential(Potential):
    """An empirical potential read from (or writable as) a standard LAMMPS potential file.

    Subclasses implement :meth:`to_text` (the current, possibly refitted, parameters in their file
    format), :attr:`file_name` (a name whose suffix tells :func:`hybridpot.empirical.load` the
    kind) and :meth:`lammps_pair`. ``path`` is the file that holds the current parameters, if any:
    LAMMPS pair lines refer to it.

    The parameters ``[baseline] refit`` names are reached through :meth:`parameter_values` and
    :meth:`set_parameter_values`: by default the potential's torch parameters (by attribute name, all
    values of a tensor in order); a potential whose parameters live elsewhere (a LAMMPS potential file)
    overrides both.
    """

    path: Path | None = None
    #: the LAMMPS atom types its pair lines are written for (element of type 1 first), or None: any order
    #: (:meth:`lammps_pair` takes the order it is given)
    type_order: list[str] | None = None

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

    # ------------------------------------------------------------------ parameters to refit

    def _named(self, names: Sequence[str], where: str) -> list[torch.nn.Parameter]:
        params = dict(self.named_parameters())
        unknown = [n for n in names if n not in params]
        if unknown:
            raise HybridpotError(f"{where}: [baseline] refit names {unknown}, not parameters of {self.source}; "
                                 f"available: {sorted(params)}")
        return [params[n] for n in names]

    def parameter_labels(self, names: Sequence[str], where: str = "") -> list[str]:
        """One label per value of :meth:`parameter_values` (``name`` for a scalar, ``name[k]`` for the values of a tensor)."""
        out = []
        for n, p in zip(names, self._named(names, where)):
            out += [n] if p.numel() == 1 else [f"{n}[{k}]" for k in range(p.numel())]
        return out

    def parameter_values(self, names: Sequence[str], where: str = "") -> np.ndarray:
        """The current values of the parameters ``names`` (each tensor flattened), in order.

        Raises:
            HybridpotError: a name that is not a parameter (the message lists the available ones; ``where`` prefixes it).
        """
        return np.concatenate([p.detach().cpu().numpy().ravel() for p in self._named(names, where)]).astype(np.float64)

    def set_parameter_values(self, names: Sequence[str], values: np.ndarray, where: str = "") -> None:
        """Set the parameters ``names`` to ``values`` (as :meth:`parameter_values` orders them); a potential whose
        range follows its parameters (``update_cutoff``) updates its cutoff."""
        k = 0
        with torch.no_grad():
            for p in self._named(names, where):
                p.copy_(torch.as_tensor(np.asarray(values[k : k + p.numel()]).reshape(p.shape), dtype=p.dtype))
                k += p.numel()
        # parameters that set the range (Tersoff R, D) move the cutoff, and with it the neighbour list the hybrid needs
        if hasattr(self, "update_cutoff"):
            self.update_cutoff()
