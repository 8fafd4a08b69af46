"""
    HybridPotKernels

Julia kernels mirroring hybridpot's SO(3) descriptor contract (`hybridpot.descriptors.so3_descriptors`):
density coefficients, power spectrum, their adjoints and the VJP dE/dr_p, written with
KernelAbstractions.jl so the same kernels run on CPU threads and on CUDA; and an
AtomsCalculators.jl calculator for models exported as `hybridpot-lammps` files (baselines none,
EAM, LJ; linear, quadratic and NN residuals).

Units: eV, Angstrom (LAMMPS `metal`). Arrays are numpy's with the axes reversed (numpy (P, 3) is
Julia (3, P)); indices are 1-based in Julia, 0-based in hybridpot's files and Python.
"""
module HybridPotKernels

using KernelAbstractions
using LinearAlgebra: cross, det, norm
using SHA: sha256
using StaticArrays: SVector
using Unitful: @u_str, ustrip
import AtomsBase
import AtomsCalculators

include("spline.jl")
include("harmonics.jl")
include("power.jl")
include("density.jl")
include("contract.jl")
include("models.jl")
include("baselines.jl")
include("neighbors.jl")
include("modelfile.jl")
include("calculator.jl")
include("python.jl")

export RadialSpline, PowerTable, power_table, angular_order, harmonics_normalisation, to_backend
export PairBasis, pair_basis, PairIndex, pair_index, density!, density_vjp!, power_spectrum, power_spectrum!,
       power_spectrum_adjoint, power_spectrum_adjoint!
export SO3Evaluation, so3_descriptors, so3_vjp
export ModelFileError, HybridModel, read_model_file, PairList, neighbor_pairs, evaluate, evaluate_pairs, HybridPotCalculator

end # module
