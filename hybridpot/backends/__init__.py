"""Alternative compute backends for hybridpot's numeric contracts.

* :mod:`hybridpot.backends.julia`: the SO(3) descriptor contract in Julia (``julia/HybridPotKernels``),
  called through juliacall. Nothing here imports juliacall until the Julia backend is used.
"""
