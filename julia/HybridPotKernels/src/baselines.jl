# Empirical baselines of an exported model, evaluated as hybridpot (and LAMMPS) do, on the host.
#
# Both work on a full pair list (every pair in both directions) and give per-atom energies (eV)
# and dE/dr_p per pair (eV/Angstrom), each directed pair p = (i, j) carrying the derivative of the
# energy terms it enters through its centre i:
#
#   EAM (hybridpot/empirical/eam.py):   E_i = s [F_{t_i}(rho_i) + 1/2 sum_j z_{t_i t_j}(r_ij) / r_ij],
#                                       rho_i = sum_j f_{t_j}(r_ij),  r_ij < cutoff,
#                                       dE/dr_p = s [F'(rho_i) f'_{t_j}(r) + 1/2 d(z/r)/dr] r_hat.
#   LJ  (hybridpot/empirical/lj.py):    E_i = 1/2 sum_j [4 eps ((sigma/r)^12 - (sigma/r)^6) - shift], r_ij < rc_ab.
#
# EAM tables are LAMMPS's cubic splines: on interval m (1-based) with p = x / delta + 1 - m,
# value = ((c3 p + c4) p + c5) p + c6; m = clamp(trunc(x / delta + 1), 1, n - 1) and p <= 1 (beyond
# the last knot the value is held while the slope is kept, as in LAMMPS forces); above rhomax F is
# extended linearly with its end slope.

"""Abstract type of the baselines read from a model file."""
abstract type Baseline end

"""No baseline: the model is the residual alone."""
struct NoBaseline <: Baseline end

"""
    EAMBaseline

`frho` (4, nrho - 1, T), `rhor` (4, nr - 1, T), `z2r` (4, nr - 1, T (T + 1) / 2): the spline
coefficients (c3, c4, c5, c6) per interval, pair rows a >= b in the order (1,1), (2,1), (2,2), ...;
`drho`, `dr` (Angstrom) the grid spacings, `cutoff` (Angstrom), `rhomax`, and `scale` multiplying every
energy (hybridpot's `energy_scale`; the tables are unscaled).
"""
struct EAMBaseline <: Baseline
    frho::Array{Float64,3}
    rhor::Array{Float64,3}
    z2r::Array{Float64,3}
    drho::Float64
    dr::Float64
    cutoff::Float64
    rhomax::Float64
    scale::Float64
end

"""
    LJBaseline

Per element pair k (a <= b in the order (1,1), (1,2), ..., (2,2), ...): `epsilon` (eV), `sigma`,
`cutoff` (Angstrom); `shift` subtracts the pair energy at the cutoff; `n_types` elements.
"""
struct LJBaseline <: Baseline
    epsilon::Vector{Float64}
    sigma::Vector{Float64}
    cutoff::Vector{Float64}
    shift::Bool
    n_types::Int
end

"""Largest pair distance the baseline looks at, Angstrom."""
baseline_cutoff(::NoBaseline) = 0.0
baseline_cutoff(b::EAMBaseline) = b.cutoff
baseline_cutoff(b::LJBaseline) = maximum(b.cutoff)

"""Row of the unordered element pair (a, b) (1-based) in the a >= b order of `z2r`."""
@inline eam_pair_row(a::Int, b::Int) = (hi = max(a, b); lo = min(a, b); hi * (hi - 1) ÷ 2 + lo)

"""Row of the element pair (a, b) (1-based) in the a <= b order of the LJ table for `n` elements."""
@inline lj_pair_row(a::Int, b::Int, n::Int) = (lo = min(a, b); hi = max(a, b); (lo - 1) * n - (lo - 1) * (lo - 2) ÷ 2 + (hi - lo) + 1)

"""
    eam_lookup(coefficients, row, x, delta) -> (value, slope)

LAMMPS's cubic-spline lookup of table `row` at `x` (distance in Angstrom or density), knots at
(k - 1) delta: the value (held beyond the last knot) and d value / dx (LAMMPS's force coefficient).
"""
@inline function eam_lookup(coefficients::Array{Float64,3}, row::Int, x::Float64, delta::Float64)
    n_knots = size(coefficients, 2) + 1
    p = x * (1.0 / delta) + 1.0
    m = clamp(trunc(p), 1.0, Float64(n_knots - 1))
    p = min(p - m, 1.0)
    k = unsafe_trunc(Int, m)
    c3 = @inbounds coefficients[1, k, row]
    c4 = @inbounds coefficients[2, k, row]
    c5 = @inbounds coefficients[3, k, row]
    c6 = @inbounds coefficients[4, k, row]
    value = ((c3 * p + c4) * p + c5) * p + c6
    slope = (3.0 * c3 / delta * p + 2.0 * c4 / delta) * p + c5 / delta
    return value, slope
end

"""
    baseline_energies!(energies, dE_dr, baseline, pairs, types) -> energies

Add the baseline's per-atom energies to `energies` (N,) and its dE/dr_p to `dE_dr` (3, P) for the
[`PairList`](@ref) `pairs` (a full list) and 1-based element indices `types` (N,).
"""
baseline_energies!(energies::Vector{Float64}, dE_dr::Matrix{Float64}, ::NoBaseline, pairs, types) = energies

function baseline_energies!(energies::Vector{Float64}, dE_dr::Matrix{Float64}, eam::EAMBaseline, pairs, types::AbstractVector{<:Integer})
    n_atoms = length(energies)
    rho = zeros(n_atoms)
    @inbounds for p in eachindex(pairs.i)
        r = pair_distance(pairs, p)
        r < eam.cutoff || continue
        rho[pairs.i[p]] += eam_lookup(eam.rhor, types[pairs.j[p]], r, eam.dr)[1]
    end
    slope_f = zeros(n_atoms)  # F'(rho_i)
    @inbounds for a in 1:n_atoms
        value, slope = eam_lookup(eam.frho, types[a], rho[a], eam.drho)
        if rho[a] > eam.rhomax
            value += slope * (rho[a] - eam.rhomax)
        end
        energies[a] += eam.scale * value
        slope_f[a] = slope
    end
    @inbounds for p in eachindex(pairs.i)
        r = pair_distance(pairs, p)
        r < eam.cutoff || continue
        i, j = pairs.i[p], pairs.j[p]
        z, dz = eam_lookup(eam.z2r, eam_pair_row(types[i], types[j]), r, eam.dr)
        energies[i] += eam.scale * 0.5 * (z / r)
        _, df = eam_lookup(eam.rhor, types[j], r, eam.dr)
        along = eam.scale * (slope_f[i] * df + 0.5 * (dz - z / r) / r)
        for a in 1:3
            dE_dr[a, p] += along * pairs.vectors[a, p] / r
        end
    end
    return energies
end

function baseline_energies!(energies::Vector{Float64}, dE_dr::Matrix{Float64}, lj::LJBaseline, pairs, types::AbstractVector{<:Integer})
    @inbounds for p in eachindex(pairs.i)
        i, j = pairs.i[p], pairs.j[p]
        k = lj_pair_row(types[i], types[j], lj.n_types)
        r = pair_distance(pairs, p)
        r < lj.cutoff[k] || continue
        eps, sigma = lj.epsilon[k], lj.sigma[k]
        x6 = (sigma / r)^6
        e = 4.0 * eps * (x6 * x6 - x6)
        if lj.shift
            xc = (sigma / lj.cutoff[k])^6
            e -= 4.0 * eps * (xc * xc - xc)
        end
        energies[i] += 0.5 * e
        along = 0.5 * 24.0 * eps * x6 * (1.0 - 2.0 * x6) / r  # 1/2 de/dr
        for a in 1:3
            dE_dr[a, p] += along * pairs.vectors[a, p] / r
        end
    end
    return energies
end
