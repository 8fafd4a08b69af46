"""Uncertainty of a fitted hybrid: Bayesian posterior, committees, extrapolation grade, fallback.

Three sources of uncertainty, all attached to a :class:`~hybridpot.potential.HybridPotential` as
``potential.uq_data`` (a :class:`UQData`) and kept by the model file:

* **Posterior** (linear and quadratic models, :mod:`.posterior`). The solver's evidence
  maximisation gives the prior precision alpha, the noise precision beta of the *weighted* rows
  and the posterior covariance Sigma of the coefficients (model order, (T*M, T*M)). A quantity
  that is linear in the coefficients, q = phi . w, has the parametric (epistemic) variance
  phi Sigma phi^T; the noise models are described in :mod:`.calibration`.
* **Committee** (NN models, :class:`~hybridpot.models.committee.CommitteeModel`): the spread of
  energies, per-atom energies and forces over the members, calibrated out of bag where the members
  were trained on bootstrap resamples (:func:`committee_calibration`): members fitted closely agree
  far better than they predict.
* **Extrapolation grade** gamma (D-optimality, MaxVol; :mod:`.active_set`).

The **fallback** (:mod:`hybridpot.fallback`, enabled with :func:`enable_fallback`) switches the
residual off smoothly where the grade (or the std) leaves the training data.

Modules: :mod:`.active_set`, :mod:`.posterior` and :mod:`.local_noise` (the state; the "local" energy noise of a
structure from its nearest training structures' held-out errors), :mod:`.query` (:class:`UQData` and the
queries: :func:`uncertainty`, :func:`extrapolation_grades`, :func:`fallback_switches`,
:func:`enable_fallback`) and :mod:`.calibration` (building the data after a fit: :func:`attach_uq`).
Measured calibration, coverage and fallback errors: benchmarks/uq.py, benchmarks/README.md (Uncertainty).
"""

from hybridpot.fallback import SCOPES, Fallback
from hybridpot.uq.active_set import ActiveSet
from hybridpot.uq.calibration import attach_uq, committee_calibration, posterior_from_fit
from hybridpot.uq.posterior import Posterior
from hybridpot.uq.query import (
    UQData,
    disable_fallback,
    enable_fallback,
    extrapolation_grades,
    fallback_from_dict,
    fallback_switches,
    member_potential,
    uncertainty,
    uq_data,
)

__all__ = [
    "SCOPES", "ActiveSet", "Fallback", "Posterior", "UQData", "attach_uq", "committee_calibration", "disable_fallback",
    "enable_fallback", "extrapolation_grades", "fallback_from_dict", "fallback_switches", "member_potential",
    "posterior_from_fit", "uncertainty", "uq_data",
]
