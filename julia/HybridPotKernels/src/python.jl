# Entry points for hybridpot's Python bridge (hybridpot/backends/julia.py, through juliacall).
#
# They take hybridpot's arrays as juliacall passes them (numpy arrays seen with the axes reversed:
# vectors (3, P), spline coefficients (Q, 6, n_intervals)) and 0-based indices, copy them into Julia
# arrays, and run the contract on the CPU backend (Julia's threads).

"""
    python_so3(vectors, centers0, weights, channels0, n_atoms, n_channels, coefficients, spacing, rcut, nmax, lmax) -> SO3Evaluation

[`so3_descriptors`](@ref) on copies of the inputs: `centers0`, `channels0` 0-based (channels0 may
be `nothing`), `coefficients` (Q, 6, n_intervals). Read `c` and `B` from the result.
"""
function python_so3(vectors, centers0, weights, channels0, n_atoms::Integer, n_channels::Integer, coefficients,
                    spacing::Real, rcut::Real, nmax::Integer, lmax::Integer)
    v = Matrix{Float64}(vectors)
    centers = Int32.(collect(centers0)) .+ Int32(1)
    w = Vector{Float64}(collect(weights))
    channels = channels0 === nothing ? nothing : Int32.(collect(channels0)) .+ Int32(1)
    spline = RadialSpline(Array{Float64,3}(coefficients), spacing, rcut, nmax, lmax)
    table = power_table(Float64, n_channels * nmax, lmax)
    return so3_descriptors(v, centers, w, channels, n_atoms, spline, table)
end

"""
    python_so3_vjp(evaluation, dB) -> dE/dr (3, P)

[`so3_vjp`](@ref) for a cotangent `dB` (K, N) (numpy (N, K) seen reversed).
"""
python_so3_vjp(evaluation::SO3Evaluation, dB) = so3_vjp(Matrix{Float64}(dB), evaluation).dr
