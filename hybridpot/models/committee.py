"""A committee of per-atom models: the mean is the prediction, the spread the uncertainty.

Members are models with the same elements and descriptor length (typically
:class:`~hybridpot.models.nn.NNModel` trained with different seeds on bootstrap resamples, see
:func:`hybridpot.fitting.nn.fit_nn_committee`). :func:`hybridpot.uq.uncertainty` evaluates each
member and reports the standard deviation over members of energies and forces.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch

from hybridpot.errors import HybridpotError
from hybridpot.registry import ModelType


class CommitteeModel(torch.nn.Module):
    """Mean of C per-atom models.

    Attributes:
        members: the C models (``torch.nn.ModuleList``).
        elements, n_descriptors: shared by all members.
    """

    def __init__(self, members: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise HybridpotError(f"a committee needs at least 2 members, got {len(members)}")
        first = members[0]
        for k, m in enumerate(members[1:], start=1):
            if list(m.elements) != list(first.elements) or int(m.n_descriptors) != int(first.n_descriptors):
                raise HybridpotError(
                    f"committee member {k} has elements {m.elements} / {m.n_descriptors} descriptors, "
                    f"member 0 has {first.elements} / {first.n_descriptors}"
                )
        self.members = torch.nn.ModuleList(members)
        self.elements = list(first.elements)
        self.n_descriptors = int(first.n_descriptors)

    @property
    def kind(self) -> str:
        return "committee"

    def member_energies(self, B: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """(C, N) per-atom energies (eV) of every member."""
        return torch.stack([m(B, types) for m in self.members])

    def forward(self, B: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """(N,) committee-mean per-atom energies (eV) from descriptors (N, K) and type indices (N,)."""
        return self.member_energies(B, types).mean(dim=0)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "committee", "elements": self.elements, "n_descriptors": self.n_descriptors,
                "members": [m.to_dict() for m in self.members]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], member_from_dict: Callable[[Mapping[str, Any]], torch.nn.Module]) -> "CommitteeModel":
        """Rebuild from :meth:`to_dict` output; ``member_from_dict`` builds each member."""
        members = d.get("members")
        if not isinstance(members, list):
            raise HybridpotError("committee model without a list of members")
        if any(isinstance(m, Mapping) and m.get("type") == "committee" for m in members):
            raise HybridpotError("nested committees are not supported")
        return cls([member_from_dict(m) for m in members])


#: registry entry (:mod:`hybridpot.registry`): what ``[model] type = "nn"`` with ``committee > 1`` fits; read back from model files
COMMITTEE = ModelType("committee", None, None, CommitteeModel.from_dict, linear=False,
                      summary="mean of member models (fitted as [model] type = 'nn' with committee = N)")
