"""Fitting the ML residual: targets, streamed design matrices, solvers, NN training, co-fitting."""
