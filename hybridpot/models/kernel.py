"""Sparse Gaussian-process (kernel) model of the residual: GAP's projected process, linear in its weights.

For an atom of element t with descriptor d (K,), and M_t representative (sparse, inducing)
environments d_{t,m} of that element chosen from the training descriptors,

    E = e_t + sum_m alpha_{t,m} k(d, d_{t,m})

with the kernel

    polynomial:  k(d, d') = (d_hat . d_hat')^zeta,        d_hat = d / |d|   (SOAP-like; zeta integer >= 1)
    se:          k(d, d') = exp(-|d - d'|^2 / (2 l^2))    (squared exponential on the raw descriptors)

Both have k(d, d) = 1, so the prior variance of an atom's energy is 1 / alpha_prior (eV^2).

**The prior.** GAP's prior on the weights is alpha_t ~ N(0, K_MM^-1 / a) (the projected-process
prior: the function values at the sparse points have covariance K_MM / a), so the objective is

    sum_rows w_row (A alpha - y)^2 + a alpha^T K_MM alpha,
    alpha = (a K_MM + K_MN Lambda^-1 K_NM)^-1 K_MN Lambda^-1 y     (Lambda^-1: the row weights)

The model holds its weights in the whitened basis alpha_t = W_t c_t with W_t W_t^T = K_MM^+
(W_t = U S^-1/2 of the eigendecomposition K_MM = U S U^T, eigenvalues below ``1e-10 max`` dropped:
near-duplicate environments cost nothing), so that the prior on c is the identity and the
feature rows are [1, k(d, d_{t,.}) W_t]. The problem is then an ordinary ridge / Bayesian linear
regression (``identity_prior = True``: the solver must not rescale the columns), solved by the
streamed QR of :mod:`hybridpot.fitting.solver` (never the normal matrix), with the evidence,
cross-validation and the posterior (hence the GP predictive variance: phi Sigma phi^T is the
projected-process variance) unchanged. Columns of elements with fewer sparse points than the
others, and dropped eigen-directions, are zero.

**Expected errors.** GAP's sigma_E (per atom), sigma_F, sigma_S and the signal std delta map onto
hybridpot's row weights (:mod:`hybridpot.fitting.assembly`: weight^2 = w_kind / n_rows_of_kind) as
w_kind = n_kind / sigma_kind^2 (the per-atom energy rows, force components, virial-per-atom
components) with the fixed ``regularization = 1 / delta^2``; :func:`gap_weights` gives them. With
``regularization = "evidence"`` the ratios of the weights are the ratios of 1 / sigma^2 and the
evidence sets delta and the overall noise level (sigma_kind^2 = n_kind / (beta w_kind), delta^2 = 1 / alpha).

**The linear term** (``linear_term`` = lambda > 0, the default 1): the kernel becomes the sum
k(d, d') + lambda^2 z . z' / K with z = (d - mu_t) / std_t the descriptor standardised over the element's
training atoms, whose prior std on a typical atom's energy is lambda times the kernel's. Its weight-space
form is K more feature columns (d - mu_t) s_t, s_t = lambda / (std_t sqrt(K)), with the same identity prior:
E = e_t + sum_m alpha_{t,m} k(d, d_{t,m}) + v_t . (d - mu_t), v_t = s_t c_t (:meth:`KernelModel.linear_weights`).
The normalised polynomial kernel sees only the direction of d; the linear term keeps its magnitude (how
dense the environment is), what GAP's separate two-body kernel is for. On mlearn Si (pure ML, hand-tuned
descriptor, 500 sparse points, zeta 4) it took the test MAE from 4.64 meV/atom / 0.0735 eV/A to 4.02 / 0.0688,
insensitive to lambda between 1 and 10.

The sparse points are chosen per element by farthest-point sampling in the kernel's distance
(|phi(d) - phi(d')|^2 = 2 - 2 k(d, d')) or by CUR leverage sampling, deterministically given the
seed (:meth:`KernelModel.choose_basis`).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from hybridpot.arrays import decode_array, encode_array
from hybridpot.errors import ConfigError, HybridpotError
from hybridpot.models.polynomial import LinearSettings
from hybridpot.registry import ModelType
from hybridpot.settings import option

KERNELS = ("polynomial", "se")
SELECTIONS = ("fps", "cur")
#: eigenvalues of K_MM below this fraction of the largest are dropped from the whitened basis
EIG_TOL = 1e-10
#: descriptor components whose spread is below this fraction of the largest are left out of the linear term
LINEAR_TOL = 1e-8


class KernelModel(torch.nn.Module):
    """Per-element sparse GP on the descriptors (module docstring).

    Args:
        elements: chemical symbols (type index = position).
        n_descriptors: K.
        n_sparse: M, sparse points per element (fewer when an element has fewer distinct environments).
        kernel: "polynomial" or "se".
        zeta: exponent of the polynomial kernel (integer >= 1).
        length: length scale of "se" (descriptor units); None: the median distance between the
            sparse points, set by :meth:`choose_basis`.
        selection: "fps" or "cur".
        linear_term: prior std of the linear term relative to the kernel's (module docstring); 0: none.

    Attributes:
        coef: (T, 1 + M [+ K]) parameters: e_t (eV), the whitened weights c_t (eV) [and the linear term's, eV].
        sparse: (T, M, K) sparse descriptors (rows beyond ``n_basis[t]`` are zero).
        whiten: (T, M, M) W_t (zero beyond the kept directions).
        n_basis: (T,) sparse points per element.
    """

    typed_features = True  #: feature rows depend on the atom's element: features(B, types)
    identity_prior = True  #: the prior on coef is the identity: the solver must not rescale columns

    def __init__(self, elements: Sequence[str], n_descriptors: int, n_sparse: int, kernel: str = "polynomial", zeta: int = 4,
                 length: float | None = None, selection: str = "fps", linear_term: float = 0.0) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise HybridpotError(f"kernel {kernel!r}: expected one of {KERNELS}")
        if selection not in SELECTIONS:
            raise HybridpotError(f"selection {selection!r}: expected one of {SELECTIONS}")
        if int(zeta) < 1 or int(n_sparse) < 1 or (length is not None and not length > 0) or not float(linear_term) >= 0:
            raise HybridpotError(f"kernel model: need zeta >= 1, n_sparse >= 1, length > 0 and linear_term >= 0 (got {zeta}, "
                                 f"{n_sparse}, {length}, {linear_term})")
        self.elements = list(elements)
        self.n_descriptors = int(n_descriptors)
        self.n_sparse = int(n_sparse)
        self.kernel, self.zeta, self.length, self.selection = kernel, int(zeta), None if length is None else float(length), selection
        T, M, K = len(self.elements), self.n_sparse, self.n_descriptors
        self.linear_term = float(linear_term)
        self.n_linear = K if self.linear_term > 0 else 0
        self.n_params = 1 + M + self.n_linear
        self.coef = torch.nn.Parameter(torch.zeros((T, self.n_params), dtype=torch.float64))
        self.register_buffer("linear_mean", torch.zeros((T, K), dtype=torch.float64))
        self.register_buffer("linear_scale", torch.zeros((T, K), dtype=torch.float64))
        self.register_buffer("sparse", torch.zeros((T, M, K), dtype=torch.float64))
        self.register_buffer("whiten", torch.zeros((T, M, M), dtype=torch.float64))
        self.n_basis = [0] * T

    @property
    def kind(self) -> str:
        return "kernel"

    @property
    def has_basis(self) -> bool:
        """Whether the sparse points are set (by :meth:`choose_basis`, :meth:`set_basis` or a model file)."""
        return any(n > 0 for n in self.n_basis)

    @staticmethod
    def joint(models: Sequence["KernelModel"]) -> "KernelFamily":
        """One linear model of several that differ in zeta alone (:class:`KernelFamily`): fitted in one design pass."""
        return KernelFamily(models)

    # ------------------------------------------------------------------ kernel

    def _kernel(self, B: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
        """(N, M) k(B_i, D_m) for B (N, K), D (M, K)."""
        if self.kernel == "polynomial":
            return self._polynomial(_normalised(B), _normalised(D))
        return torch.exp(-torch.cdist(B, D).pow(2) / (2 * self._length() ** 2))

    def _polynomial(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(N, M) the polynomial kernel (x_i . y_m)^zeta of rows already normalised, x (N, K), y (M, K)."""
        return (x @ y.T) ** self.zeta

    def _length(self) -> float:
        if self.length is None:
            raise HybridpotError("kernel model: the se length scale is set with the sparse points (choose_basis)")
        return self.length

    def _kernel_gradient(self, B: torch.Tensor, D: torch.Tensor, dB: torch.Tensor) -> torch.Tensor:
        """(P, M, 3) d k(B_p, D_m) / d r_p = dk/dB_p . dB_p for B (P, K), D (M, K), dB (P, K, 3)."""
        if self.kernel == "polynomial":
            out, factor = _cosine_gradient(B, D, dB)
            return out.mul_(self._power_factor(*factor)[:, :, None])
        k = self._kernel(B, D)
        l2 = self._length() ** 2
        bd = torch.einsum("pk,pka->pa", B, dB)
        yd = torch.einsum("mk,pka->pma", D, dB)
        return -(k / l2)[:, :, None] * (bd[:, None, :] - yd)

    def _power_factor(self, s: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
        """(P, M) d (s^zeta) / ds / |B| of the polynomial kernel, from :func:`_cosine_gradient`'s cosines s (P, M) and norms
        |B| (P,): its factor that turns the cosines' gradients into the kernel's."""
        return _integer_power(s, self.zeta - 1).mul_(self.zeta / norm[:, None])

    # ------------------------------------------------------------------ linear-in-parameters protocol

    def features(self, B: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """(N, 1 + M [+ K]) feature rows [1, k(B_i, D_t) W_t [, (B_i - mu_t) s_t]] of descriptors B (N, K) of atoms of types (N,)."""
        X = torch.zeros((B.shape[0], self.n_params), dtype=B.dtype, device=B.device)
        X[:, 0] = 1.0
        M = self.n_sparse
        for t, idx in self._by_type(types, whole=True):
            X[idx, 1:1 + M] = self._kernel(B[idx], self.sparse[t].to(B.dtype)) @ self.whiten[t].to(B.dtype)
            if self.n_linear:
                X[idx, 1 + M:] = (B[idx] - self.linear_mean[t].to(B.dtype)) * self.linear_scale[t].to(B.dtype)
        return X

    def pair_feature_gradients(self, B_center: torch.Tensor, dB: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """(P, 1 + M [+ K], 3) derivative of the centre atom's feature row w.r.t. each pair vector, before the whitening:
        columns 1..M hold d k(B_i, d_{t,m}) / d r_p; :meth:`map_gradient_rows` applies W_t once the design rows have summed
        them over pairs (a product per atom row instead of per pair: pairs outnumber atoms 50-100 to 1).

        Args:
            B_center: (P, K) descriptors of each pair's centre atom; dB: (P, K, 3) their derivatives
                w.r.t. the pair vector; types: (P,) the centre atoms' types.
        """
        groups = list(self._by_type(types, whole=True))
        G = _gradient_buffer(dB, self.n_params, groups)
        for t, idx in groups:
            G[idx, 1:1 + self.n_sparse] = self._kernel_gradient(B_center[idx], self.sparse[t].to(dB.dtype), dB[idx])  # (p, M, 3)
            if self.n_linear:
                scale = self.linear_scale[t].to(dB.dtype)[None, :, None]
                if isinstance(idx, slice):  # written in place: no copy of dB, (P, K, 3), the largest array here
                    torch.mul(dB, scale, out=G[:, 1 + self.n_sparse:])
                else:
                    G[idx, 1 + self.n_sparse:] = dB[idx] * scale
        return G

    def map_gradient_rows(self, rows: torch.Tensor, t: int) -> torch.Tensor:
        """Sums of :meth:`pair_feature_gradients` of centres of element t, (R, 1 + M [+ K], c) (any trailing size c), in the
        feature basis: the kernel columns times W_t (a linear map, so it commutes with the sums over pairs)."""
        out = rows.clone()
        M = self.n_sparse
        out[:, 1:1 + M] = torch.einsum("rmc,mn->rnc", rows[:, 1:1 + M], self.whiten[t].to(rows.dtype))
        return out

    def _by_type(self, types: torch.Tensor, whole: bool = False):
        """(t, the indices of the entries of type t) for each type with sparse points and entries; with ``whole``, a
        type that has every entry gives ``slice(None)`` instead (views instead of copies: the one-element case)."""
        for t in range(len(self.elements)):
            if self.n_basis[t] == 0:
                continue
            idx = (types == t).nonzero().squeeze(1)
            if idx.numel():
                yield t, slice(None) if whole and idx.numel() == types.numel() else idx

    def weights(self) -> torch.Tensor:
        """(T, M) alpha_t = W_t c_t: the weights of k(d, d_{t,m}) (eV)."""
        return torch.einsum("tmn,tn->tm", self.whiten, self.coef[:, 1:1 + self.n_sparse])

    def linear_weights(self) -> torch.Tensor:
        """(T, K) v_t = s_t * c_t: the weights of the linear term on (B - mu_t) (eV per descriptor unit; zero without it)."""
        if not self.n_linear:
            return torch.zeros_like(self.linear_scale)
        return self.linear_scale * self.coef[:, 1 + self.n_sparse:]

    def forward(self, B: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """(N,) per-atom energies (eV) from descriptors (N, K) and type indices (N,)."""
        alpha = self.weights().to(B.dtype)
        linear = self.linear_weights().to(B.dtype)
        E = self.coef.to(B.dtype)[types, 0]
        out = E
        for t, idx in self._by_type(types):
            e = self._kernel(B[idx], self.sparse[t].to(B.dtype)) @ alpha[t]
            if self.n_linear:
                e = e + (B[idx] - self.linear_mean[t].to(B.dtype)) @ linear[t]
            out = out.index_add(0, idx, e)
        return out

    # ------------------------------------------------------------------ the sparse points

    def set_basis(self, points: Sequence[np.ndarray], standardise_from: Sequence[np.ndarray] | None = None) -> None:
        """Use the given sparse descriptors, one (M_t <= M, K) array per element; computes W_t, and the linear
        term's standardisation from ``standardise_from`` (one (n_t, K) array of descriptors per element;
        None: the points themselves; :meth:`choose_basis` gives all training descriptors)."""
        if len(points) != len(self.elements):
            raise HybridpotError(f"kernel model: {len(points)} sets of sparse points for {len(self.elements)} elements")
        if standardise_from is not None and len(standardise_from) != len(self.elements):
            raise HybridpotError(f"kernel model: {len(standardise_from)} sets of descriptors to standardise over, "
                                 f"for {len(self.elements)} elements")
        if self.kernel == "se" and self.length is None:
            both = torch.from_numpy(np.concatenate([np.asarray(p, dtype=np.float64) for p in points]))
            dist = torch.cdist(both, both).numpy()[np.triu_indices(len(both), 1)]
            if not dist.size or np.median(dist) <= 0:
                raise HybridpotError("kernel model: the se length scale cannot be set from identical sparse points; give length")
            self.length = float(np.median(dist))
        with torch.no_grad():
            self.sparse.zero_()
            self.whiten.zero_()
            for t, p in enumerate(points):
                p = torch.as_tensor(np.asarray(p, dtype=np.float64))
                if p.ndim != 2 or p.shape[1] != self.n_descriptors or not 0 <= p.shape[0] <= self.n_sparse:
                    raise HybridpotError(f"kernel model: sparse points of shape {tuple(p.shape)} for {self.elements[t]}, expected "
                                         f"(<= {self.n_sparse}, {self.n_descriptors})")
                m = p.shape[0]
                self.n_basis[t] = m
                self._standardise(t, p.numpy() if standardise_from is None else np.asarray(standardise_from[t], dtype=np.float64))
                if m == 0:
                    continue
                self.sparse[t, :m] = p
                s, U = np.linalg.eigh(self._kernel(p, p).numpy())
                keep = s > EIG_TOL * max(s[-1], 1e-300)
                W = U[:, keep] / np.sqrt(s[keep])
                self.whiten[t, :m, : W.shape[1]] = torch.from_numpy(W)

    def _standardise(self, t: int, X: np.ndarray) -> None:
        """Set element t's linear-term standardisation from its descriptors X (n, K): mu_t their mean,
        s_t = linear_term / (std_k sqrt(K)) (0 where a component's std is below ``LINEAR_TOL`` times the
        largest), so that the linear term's prior std on a typical atom's energy is linear_term times the kernel's."""
        if not self.n_linear or not len(X):
            return
        std = X.std(0)
        varies = std > LINEAR_TOL * max(float(std.max()), 1e-300)  # symmetry-forbidden components are zero up to rounding
        with torch.no_grad():
            self.linear_mean[t] = torch.from_numpy(X.mean(0))
            self.linear_scale[t] = torch.from_numpy(
                np.where(varies, self.linear_term / (np.where(varies, std, 1.0) * np.sqrt(X.shape[1])), 0.0))

    def choose_basis(self, B: np.ndarray, types: np.ndarray, seed: int = 0,
                     cosines: dict[int, dict[int, np.ndarray]] | None = None) -> dict[str, Any]:
        """Choose up to M sparse points per element from training descriptors B (N, K) with types (N,).

        Farthest-point sampling (from a seeded random start, in the kernel distance; identical
        environments are taken once) or CUR (leverage-score sampling without replacement, seeded,
        from the top right singular vectors of the element's descriptor matrix). An element with
        fewer distinct environments than M gets them all: the number is clamped, with a warning
        naming the element.

        ``cosines``: the farthest points' cosines by element (``_farthest_points``), shared by models that choose from
        the same B (a :class:`KernelFamily`'s members).

        Returns:
            {element: {"chosen": M_t, "available": environments}}.
        """
        rng = np.random.default_rng(seed)
        cosines = {} if cosines is None else cosines
        B = np.asarray(B, dtype=np.float64)
        points, record = [], {}
        for t, element in enumerate(self.elements):
            X = B[np.asarray(types) == t]
            if self.selection == "fps" or len(X) <= self.n_sparse:
                idx = self._farthest_points(X, rng, cosines.setdefault(t, {}))
            else:
                idx = _cur(X, self.n_sparse, rng)
            if 0 < len(idx) < self.n_sparse:
                warnings.warn(f"kernel model: {element} has {len(idx)} distinct environments in the training data (of "
                              f"{len(X)}), fewer than n_sparse = {self.n_sparse}: using all {len(idx)}", stacklevel=2)
            points.append(X[idx])
            record[element] = {"chosen": int(len(idx)), "available": int(len(X))}
        self.set_basis(points, [B[np.asarray(types) == t] for t in range(len(self.elements))])
        return record

    def _farthest_points(self, X: np.ndarray, rng: np.random.Generator, cosines: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Indices of up to M rows of X by farthest-point sampling in the kernel distance 2 - 2 k (se: the descriptor distance).

        ``cosines``: row m -> the cosines of every row of X with row m (filled here; shared by models that choose from
        the same X: each product is memory-bound, a pass over X)."""
        if len(X) == 0:
            return np.zeros(0, dtype=int)
        Xn = _normalised(torch.from_numpy(X))  # once, not per point chosen
        cosines = {} if cosines is None else cosines

        def distance(m: int) -> np.ndarray:
            if self.kernel == "polynomial":
                if m not in cosines:
                    cosines[m] = (Xn @ Xn[m]).numpy()
                return 2.0 - 2.0 * cosines[m] ** self.zeta
            return ((X - X[m]) ** 2).sum(1)

        first = int(rng.integers(len(X)))
        chosen = [first]
        dist = distance(first)
        scale = max(float(dist.max()), 1e-300)
        while len(chosen) < self.n_sparse:
            nxt = int(np.argmax(dist))
            if dist[nxt] <= 1e-12 * scale:  # the rest duplicate chosen environments
                break
            chosen.append(nxt)
            dist = np.minimum(dist, distance(nxt))
        return np.array(chosen)

    # ------------------------------------------------------------------ model files

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "kernel", "elements": self.elements, "n_descriptors": self.n_descriptors, "n_sparse": self.n_sparse,
            "kernel": self.kernel, "zeta": self.zeta, "length": self.length, "selection": self.selection,
            "linear_term": self.linear_term, "linear_mean": encode_array(self.linear_mean.cpu().numpy()),
            "linear_scale": encode_array(self.linear_scale.cpu().numpy()), "n_basis": list(self.n_basis),
            "sparse": encode_array(self.sparse.cpu().numpy()),
            "whiten": encode_array(self.whiten.cpu().numpy()), "coef": self.coef.detach().cpu().numpy().tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "KernelModel":
        model = cls(d["elements"], int(d["n_descriptors"]), int(d["n_sparse"]), d["kernel"], int(d["zeta"]),
                    None if d["length"] is None else float(d["length"]), d["selection"], float(d.get("linear_term", 0.0)))
        arrays = {"sparse": decode_array(d["sparse"]), "whiten": decode_array(d["whiten"]),
                  "coef": np.asarray(d["coef"], dtype=np.float64)}
        if model.n_linear:
            arrays.update(linear_mean=decode_array(d["linear_mean"]), linear_scale=decode_array(d["linear_scale"]))
        for name, value in arrays.items():
            target = getattr(model, name)
            if value.shape != tuple(target.shape):
                raise ValueError(f"kernel model {name} of shape {value.shape}, expected {tuple(target.shape)}")
            with torch.no_grad():
                target.copy_(torch.from_numpy(value))
        n_basis = [int(n) for n in d["n_basis"]]
        if len(n_basis) != len(model.elements) or not all(0 <= n <= model.n_sparse for n in n_basis):
            raise ValueError(f"kernel model n_basis {n_basis}: expected {len(model.elements)} counts in [0, {model.n_sparse}]")
        model.n_basis = n_basis
        return model


class KernelFamily(torch.nn.Module):
    """Polynomial-kernel models that differ in zeta alone, as one linear model whose columns are [1, each member's
    kernel columns in turn, the linear term's]: one design pass gives every member's rows (its columns,
    :meth:`member_columns`), so a tune fits its zeta candidates together (:func:`hybridpot.fitting.linear.fit_linear_joint`).

    The pair gradients' product with dB, the costly part, is formed once for the members whose sparse points are the same
    (:func:`_cosine_gradient`; farthest-point sampling in 2 - 2 s^zeta picks the same points for every zeta where the
    cosines s are positive, each member chooses its own all the same); only the factor zeta s^(zeta-1) / |B| is per
    member. The linear term (the same in every member: it does not depend on zeta) is held once.

    Args:
        members: kernel models of the same elements, descriptor size, sparse points per element and linear term, the
            polynomial kernel, distinct zeta; their bases are chosen by :meth:`choose_basis` (or set before).
    """

    typed_features = True
    identity_prior = True

    def __init__(self, members: Sequence[KernelModel]) -> None:
        super().__init__()
        first = members[0] if members else None
        same = ("elements", "n_descriptors", "n_sparse", "linear_term", "selection")
        if (first is None or any(m.kernel != "polynomial" for m in members)
                or any(getattr(m, k) != getattr(first, k) for m in members for k in same)
                or len({m.zeta for m in members}) != len(members)):
            raise HybridpotError(f"kernel family: members must be polynomial-kernel models that differ in zeta alone "
                                 f"(got {[(m.kernel, m.zeta) for m in members]})")
        self.members = torch.nn.ModuleList(members)
        self.elements = list(first.elements)
        self.n_sparse, self.n_linear = first.n_sparse, first.n_linear
        self.n_params = 1 + len(members) * self.n_sparse + self.n_linear

    @property
    def has_basis(self) -> bool:
        return all(m.has_basis for m in self.members)

    def choose_basis(self, B: np.ndarray, types: np.ndarray, seed: int = 0) -> list[dict[str, Any]]:
        """Each member's :meth:`KernelModel.choose_basis` from the same descriptors (the farthest points' cosines computed
        once for all); their records in member order."""
        cosines: dict[int, dict[int, np.ndarray]] = {}
        return [m.choose_basis(B, types, seed, cosines) for m in self.members]

    def member_columns(self, i: int) -> np.ndarray:
        """(1 + M [+ K],) the columns (of one element's block of this model's parameters) that hold member i's."""
        M = self.n_sparse
        kernel = 1 + i * M + np.arange(M)
        linear = 1 + len(self.members) * M + np.arange(self.n_linear)
        return np.concatenate([[0], kernel, linear]).astype(int)

    def features(self, B: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """(N, n_params) the members' feature rows side by side (:meth:`KernelModel.features`), the intercept and the linear
        term's once."""
        X = torch.zeros((B.shape[0], self.n_params), dtype=B.dtype, device=B.device)
        for i, m in enumerate(self.members):
            X[:, self.member_columns(i)] = m.features(B, types)
        return X

    def pair_feature_gradients(self, B_center: torch.Tensor, dB: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """(P, n_params, 3) the members' :meth:`KernelModel.pair_feature_gradients` side by side (before the whitening)."""
        first, M = self.members[0], self.n_sparse
        groups = list(first._by_type(types, whole=True))
        G = _gradient_buffer(dB, self.n_params, groups)
        for t, idx in groups:
            shared: list[tuple[torch.Tensor, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]] = []
            for i, m in enumerate(self.members):
                points = m.sparse[t].to(dB.dtype)
                gradient = next((g for p, g in shared if torch.equal(p, points)), None)
                if gradient is None:
                    gradient = _cosine_gradient(B_center[idx], points, dB[idx])
                    shared.append((points, gradient))
                out, factor = gradient
                block = slice(1 + i * M, 1 + (i + 1) * M)
                if isinstance(idx, slice):  # written in place (the one-element case)
                    torch.mul(out, m._power_factor(*factor)[:, :, None], out=G[:, block])
                else:
                    G[idx, block] = out * m._power_factor(*factor)[:, :, None]
            if self.n_linear:
                scale = first.linear_scale[t].to(dB.dtype)[None, :, None]
                if isinstance(idx, slice):  # in place, as KernelModel.pair_feature_gradients
                    torch.mul(dB, scale, out=G[:, 1 + len(self.members) * M:])
                else:
                    G[idx, 1 + len(self.members) * M:] = dB[idx] * scale
        return G

    def map_gradient_rows(self, rows: torch.Tensor, t: int) -> torch.Tensor:
        """:meth:`KernelModel.map_gradient_rows` of each member's columns."""
        out = rows.clone()
        for i, m in enumerate(self.members):
            cols = self.member_columns(i)
            out[:, cols] = m.map_gradient_rows(rows[:, cols], t)
        return out


def _integer_power(x: torch.Tensor, n: int) -> torch.Tensor:
    """x^n (a new tensor) for an integer n >= 0 by repeated squaring: torch's pow takes a general (exp-log) path for
    exponents above 3, 10-25x slower on this machine."""
    out, base = torch.ones_like(x), x
    while n:
        if n & 1:
            out = out * base
        n >>= 1
        if n:
            base = base * base
    return out


def _gradient_buffer(dB: torch.Tensor, n_params: int, groups: list) -> torch.Tensor:
    """(P, n_params, 3) for the pair feature gradients: uninitialised but for the intercept's column (zero) where one
    element's entries are all of them (``groups`` from ``_by_type(whole=True)``: every other column is written), else
    zeros (a (P, n_params, 3) fill is memory-bound: ~10% of a large kernel's gradients)."""
    shape = (dB.shape[0], n_params, 3)
    if len(groups) == 1 and isinstance(groups[0][1], slice):
        G = torch.empty(shape, dtype=dB.dtype, device=dB.device)
        G[:, 0] = 0.0
        return G
    return torch.zeros(shape, dtype=dB.dtype, device=dB.device)


def _cosine_gradient(B: torch.Tensor, D: torch.Tensor, dB: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The gradients of the cosines s_pm = B_p_hat . D_m_hat w.r.t. the pair vectors, times |B_p|: (P, M, 3)
    (D_m_hat - s_pm B_p_hat) . dB_p, and (s (P, M), |B| (P,)), for B (P, K), D (M, K), dB (P, K, 3). The polynomial kernel's
    gradient is this times :meth:`KernelModel._power_factor`: the product with dB (3 P M K multiply-adds, the costly
    part) does not depend on zeta."""
    norm = B.norm(dim=1).clamp_min(1e-300)
    x = B / norm[:, None]
    y = _normalised(D)
    s = x @ y.T  # (P, M)
    # d (x_hat . y_hat)/dB = (y_hat - s x_hat) / |B|; in place on the one (P, M, 3) result (memory-bound)
    out = torch.einsum("mk,pka->pma", y, dB)
    xd = torch.einsum("pk,pka->pa", x, dB)
    out.addcmul_(s[:, :, None], xd[:, None, :], value=-1.0)
    return out, (s, norm)


def _normalised(X: torch.Tensor) -> torch.Tensor:
    """Rows of X over their norms (a zero row stays zero)."""
    X = torch.as_tensor(X)
    return X / X.norm(dim=1, keepdim=True).clamp_min(1e-300)


def _cur(X: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """m distinct rows of X sampled by their leverage on the top min(m, K) right singular vectors (CUR row selection)."""
    _, _, Vt = np.linalg.svd(X, full_matrices=False)
    k = min(m, Vt.shape[0])
    lev = ((X @ Vt[:k].T) ** 2).sum(1)
    p = lev / lev.sum() if lev.sum() > 0 else np.full(len(X), 1.0 / len(X))
    nonzero = int(np.count_nonzero(p))
    return np.sort(rng.choice(len(X), size=min(m, nonzero), replace=False, p=p))


def gap_weights(n_energy: int, n_force: int, n_stress: int, sigma_energy: float, sigma_force: float,
                sigma_stress: float | None = None) -> dict[str, float]:
    """GAP's expected errors as hybridpot's row weights (module docstring): w_kind = n_kind / sigma_kind^2.

    Args:
        n_energy, n_force, n_stress: the rows of each kind (structures; force components; 6 per structure with stress).
        sigma_energy: eV/atom; sigma_force: eV/A; sigma_stress: eV/atom on the virial per atom (None: no stress rows).

    Returns:
        {"energy": ..., "force": ..., "stress": ...} for :class:`hybridpot.fitting.assembly.Weights`; with
        ``regularization = 1 / delta^2`` the fit minimises GAP's objective.
    """
    for name, s in (("sigma_energy", sigma_energy), ("sigma_force", sigma_force), ("sigma_stress", sigma_stress)):
        if s is not None and not s > 0:
            raise ConfigError(f"{name} = {s}: must be > 0")
    return {"energy": n_energy / sigma_energy**2, "force": n_force / sigma_force**2,
            "stress": 0.0 if sigma_stress is None else n_stress / sigma_stress**2}


@dataclasses.dataclass
class KernelSettings(LinearSettings):
    """The keys of ``[model] type = "kernel"`` (plus ``regularization`` and ``cv_folds`` as for linear)."""

    kernel: str = option("polynomial",
        "'polynomial': (d_hat . d_hat')^zeta on normalised descriptors (SOAP-like); 'se': exp(-|d - d'|^2 / 2 length^2)")
    zeta: int = option(4, "exponent of the polynomial kernel, integer >= 1")
    length: float | None = option(None,
        "length scale of 'se' (descriptor units); default: the median distance between the sparse points")
    n_sparse: int = option(500,
        "sparse (representative) environments per element; clamped, with a warning, to the distinct environments there are")
    linear_term: float = option(1.0,
        "prior std of a linear term on the standardised descriptors, relative to the kernel's (0: none; the sum-of-kernels "
        "k + linear_term^2 z.z' / K on standardised descriptors z: it keeps the descriptor's magnitude, which the normalised "
        "polynomial kernel discards)")
    selection: str = option("fps",
        "how the sparse environments are chosen: 'fps' (farthest-point sampling) or 'cur' (leverage sampling), seeded")

    def check_values(self, where: str) -> None:
        super().check_values(where)
        if self.kernel not in KERNELS:
            raise ConfigError(f"{where} kernel = {self.kernel!r}: expected one of {', '.join(map(repr, KERNELS))}")
        if self.zeta < 1:
            raise ConfigError(f"{where} zeta = {self.zeta}: must be an integer >= 1 (2 and 4 are usual)")
        if self.kernel != "se" and self.length is not None:
            raise ConfigError(f"{where} length = {self.length}: only the 'se' kernel has a length scale")
        if self.length is not None and not self.length > 0:
            raise ConfigError(f"{where} length = {self.length}: must be > 0")
        if self.n_sparse < 1:
            raise ConfigError(f"{where} n_sparse = {self.n_sparse}: need at least 1 sparse environment per element")
        if not self.linear_term >= 0:
            raise ConfigError(f"{where} linear_term = {self.linear_term}: must be >= 0 (0: no linear term)")
        if self.selection not in SELECTIONS:
            raise ConfigError(f"{where} selection = {self.selection!r}: expected one of {', '.join(map(repr, SELECTIONS))}")


def _build(settings: KernelSettings, elements: list[str], n_features: int) -> KernelModel:
    return KernelModel(elements, n_features, settings.n_sparse, settings.kernel, settings.zeta, settings.length, settings.selection,
                       settings.linear_term)


#: registry entry (:mod:`hybridpot.registry`): linear in its (whitened) weights, so solved by the streamed QR
KERNEL = ModelType("kernel", KernelSettings, _build, lambda d, nested: KernelModel.from_dict(d), linear=True,
                   summary="sparse GP (GAP projected process): E_t(d) = e_t + sum_m alpha_m k(d, d_m), K_MM prior; GP variance")
