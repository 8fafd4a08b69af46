"""Per-element neural networks on descriptors (the form LAMMPS ML-IAP ``nn`` models run).

For an atom of element t: x = (B - shift_t) / scale_t, then dense layers with the chosen
activation and a linear output node: E = net_t(x) (eV). Activations are those LAMMPS's
``mliap model nn`` supports (tanh, sigmoid, relu, linear).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from hybridpot.errors import ConfigError
from hybridpot.settings import Settings, option

ACTIVATIONS = {"tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "linear": torch.nn.Identity}


class NNModel(torch.nn.Module):
    """One MLP per element.

    Attributes:
        elements: chemical symbols (type index = position).
        n_descriptors: K.
        hidden: hidden layer widths.
        activation: name of the hidden-layer activation.
        shift, scale: (T, K) input standardisation (buffers, set by :meth:`set_input_scaling`).
        nets: one ``torch.nn.Sequential`` per element.
    """

    def __init__(self, elements: Sequence[str], n_descriptors: int, hidden: Sequence[int] = (32, 32), activation: str = "tanh") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r}: expected one of {sorted(ACTIVATIONS)}")
        self.elements = list(elements)
        self.n_descriptors = int(n_descriptors)
        self.hidden = [int(h) for h in hidden]
        self.activation = activation
        T, K = len(self.elements), self.n_descriptors
        self.register_buffer("shift", torch.zeros((T, K), dtype=torch.float64))
        self.register_buffer("scale", torch.ones((T, K), dtype=torch.float64))
        nets = []
        for _ in self.elements:
            layers: list[torch.nn.Module] = []
            width = K
            for h in self.hidden:
                layers += [torch.nn.Linear(width, h, dtype=torch.float64), ACTIVATIONS[activation]()]
                width = h
            layers.append(torch.nn.Linear(width, 1, dtype=torch.float64))
            nets.append(torch.nn.Sequential(*layers))
        self.nets = torch.nn.ModuleList(nets)

    @property
    def kind(self) -> str:
        return "nn"

    def set_input_scaling(self, B: torch.Tensor, types: torch.Tensor) -> None:
        """Standardise inputs with the mean and std of descriptors ``B`` (N, K) per element."""
        with torch.no_grad():
            for t in range(len(self.elements)):
                x = B[types == t]
                if x.shape[0] == 0:
                    continue
                self.shift[t] = x.mean(0)
                std = x.std(0) if x.shape[0] > 1 else torch.ones_like(x[0])
                self.scale[t] = torch.where(std > 1e-12, std, torch.ones_like(std))

    def set_output_bias(self, energies: Sequence[float]) -> None:
        """Set each element's output bias (eV), e.g. to its reference energy."""
        with torch.no_grad():
            for net, e in zip(self.nets, energies):
                net[-1].bias.fill_(float(e))

    def forward(self, B: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """(N,) per-atom energies (eV) from descriptors (N, K) and type indices (N,)."""
        out = torch.zeros(B.shape[0], dtype=B.dtype, device=B.device)
        for t, net in enumerate(self.nets):
            mask = types == t
            if bool(mask.any()):
                x = (B[mask] - self.shift[t]) / self.scale[t]
                out = out.index_put((mask.nonzero().squeeze(1),), net(x).squeeze(1))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "nn",
            "elements": self.elements,
            "n_descriptors": self.n_descriptors,
            "hidden": self.hidden,
            "activation": self.activation,
            "shift": self.shift.cpu().numpy().tolist(),
            "scale": self.scale.cpu().numpy().tolist(),
            "layers": [
                [{"weight": m.weight.detach().cpu().numpy().tolist(), "bias": m.bias.detach().cpu().numpy().tolist()}
                 for m in net if isinstance(m, torch.nn.Linear)]
                for net in self.nets
            ],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "NNModel":
        model = cls(d["elements"], int(d["n_descriptors"]), d["hidden"], d["activation"])
        with torch.no_grad():
            model.shift.copy_(torch.tensor(np.asarray(d["shift"], dtype=np.float64)))
            model.scale.copy_(torch.tensor(np.asarray(d["scale"], dtype=np.float64)))
            for net, layers in zip(model.nets, d["layers"]):
                linear = [m for m in net if isinstance(m, torch.nn.Linear)]
                if len(linear) != len(layers):
                    raise ValueError(f"nn model: {len(layers)} stored layers, expected {len(linear)}")
                for m, p in zip(linear, layers):
                    w = torch.tensor(np.asarray(p["weight"], dtype=np.float64))
                    b = torch.tensor(np.asarray(p["bias"], dtype=np.float64))
                    if w.shape != m.weight.shape or b.shape != m.bias.shape:
                        raise ValueError(f"nn model: layer of shape {tuple(w.shape)}, expected {tuple(m.weight.shape)}")
                    m.weight.copy_(w)
                    m.bias.copy_(b)
        return model


@dataclasses.dataclass
class NNSettings(Settings):
    """The keys of ``[model] type = "nn"``: the network and its training (:mod:`hybridpot.fitting.nn`)."""

    hidden: list[int] = option([32, 32], "hidden layer widths")
    activation: str = option("tanh", "tanh, sigmoid, relu or linear (the LAMMPS mliap nn activations)")
    epochs: int = option(2000, "L-BFGS iterations or Adam epochs")
    optimizer: str = option("lbfgs", "'lbfgs' (full batch) or 'adam' (mini-batches)")
    learning_rate: float | None = option(None, "adam: step size (default 3e-3)")
    patience: int = option(200, "stop after this many iterations without a better validation loss")
    validation_fraction: float = option(0.1, "structures held out for early stopping")
    committee: int = option(1, "members of a committee (> 1: its spread is the uncertainty)")
    bootstrap: bool = option(True, "committee members on bootstrap resamples (false: all on the full set)")

    def check_values(self, where: str) -> None:
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"{where} activation = {self.activation!r}: expected tanh, sigmoid, relu or linear (LAMMPS mliap nn)")
        if not self.hidden or not all(h > 0 for h in self.hidden):
            raise ConfigError(f"{where} hidden = {self.hidden}: expected a list of positive integers")
        if self.optimizer not in ("lbfgs", "adam"):
            raise ConfigError(f"{where} optimizer = {self.optimizer!r}: expected 'lbfgs' or 'adam'")
        if self.learning_rate is not None and self.optimizer != "adam":
            raise ConfigError(f"{where} learning_rate applies to optimizer = 'adam' (L-BFGS chooses its steps by line search)")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"{where} learning_rate = {self.learning_rate}: must be positive")
        if self.epochs < 1 or self.patience < 1:
            raise ConfigError(f"{where} epochs and patience must be >= 1")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(f"{where} validation_fraction = {self.validation_fraction}: expected 0 < value < 1")
        if self.committee < 1:
            raise ConfigError(f"{where} committee must be >= 1")
        if not self.bootstrap and self.committee == 1:
            raise ConfigError(f"{where} bootstrap = false applies to a committee (committee > 1)")
