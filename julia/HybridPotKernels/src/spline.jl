# Tabulated radial functions: the quintic Hermite table of hybridpot.descriptors.spline.RadialSpline.
#
# Python stores the coefficients as a numpy array (n_intervals, 6, nmax * (lmax + 1)); here the same
# memory is read with the axes reversed, (nmax * (lmax + 1), 6, n_intervals), so that
# `coefficients[q, k + 1, i + 1]` is the coefficient a_k of interval i (both from 0) of radial
# function q = n * (lmax + 1) + l + 1 (n, l from 0). On interval i, with t = r / h - i in [0, 1],
#
#     g_q(r) = sum_{k=0}^{5} a_k t^k,        dg_q/dr = (sum_{k=1}^{5} k a_k t^(k-1)) / h,
#
# and the interval is i = clamp(floor(r / h), 0, n_intervals - 1), exactly as hybridpot computes it
# (so r = rcut uses the last interval at t = 1).

"""
    RadialSpline(coefficients, spacing, rcut, nmax, lmax)

Quintic Hermite table of the radial functions g_nl(r), r in [0, rcut] (Angstrom): the numbers of
hybridpot's `RadialSpline` (see `hybridpot/descriptors/spline.py`).

# Fields
- `coefficients::A`: `(nmax * (lmax + 1), 6, n_intervals)`, the numpy array
  `(n_intervals, 6, nmax * (lmax + 1))` with its axes reversed; any `AbstractArray{T,3}`, e.g. a
  `CuArray` to evaluate on the GPU.
- `spacing::T`: the node spacing h, Angstrom.
- `rcut::T`: the cutoff r_c, Angstrom; pairs with r >= r_c contribute nothing.
- `nmax::Int`, `lmax::Int`: radial functions per l, largest l.

Units of g: those of the table (A^(3/2) for the LAMMPS basis, A^(-3/2) for the Bessel basis).
"""
struct RadialSpline{T<:AbstractFloat,A<:AbstractArray{T,3}}
    coefficients::A
    spacing::T
    rcut::T
    nmax::Int
    lmax::Int

    function RadialSpline(coefficients::A, spacing::Real, rcut::Real, nmax::Integer, lmax::Integer) where {T<:AbstractFloat,A<:AbstractArray{T,3}}
        nmax >= 1 || throw(ArgumentError("nmax must be >= 1, got $nmax"))
        lmax >= 0 || throw(ArgumentError("lmax must be >= 0, got $lmax"))
        size(coefficients, 1) == nmax * (lmax + 1) ||
            throw(DimensionMismatch("spline coefficients have $(size(coefficients, 1)) functions, expected nmax * (lmax + 1) = $(nmax * (lmax + 1))"))
        size(coefficients, 2) == 6 || throw(DimensionMismatch("spline coefficients need 6 per interval (quintic), got $(size(coefficients, 2))"))
        size(coefficients, 3) >= 1 || throw(DimensionMismatch("spline table has no intervals"))
        (isfinite(spacing) && spacing > 0) || throw(ArgumentError("spline spacing must be a positive number of Angstrom, got $spacing"))
        (isfinite(rcut) && rcut > 0) || throw(ArgumentError("rcut must be a positive number of Angstrom, got $rcut"))
        return new{T,A}(coefficients, T(spacing), T(rcut), Int(nmax), Int(lmax))
    end
end

"""Number of intervals of the table."""
n_intervals(spline::RadialSpline) = size(spline.coefficients, 3)

"""Number of tabulated functions, nmax * (lmax + 1)."""
n_functions(spline::RadialSpline) = size(spline.coefficients, 1)

"""
    spline_interval(r, h, n) -> (i, t)

1-based interval `i` and local coordinate `t` of distance `r` (Angstrom) on a table of `n` intervals
of width `h`: i - 1 = clamp(floor(r / h), 0, n - 1), t = r / h - (i - 1). Kernel-safe (no
allocation, no exception: the float is clamped before the truncation to an integer).
"""
@inline function spline_interval(r::T, h::T, n::Int) where {T<:AbstractFloat}
    s = r / h
    index = clamp(floor(s), zero(T), T(n - 1))
    return unsafe_trunc(Int, index) + 1, s - index
end

"""
    spline_value_slope(coefficients, q, i, t, h) -> (g, dg/dr)

Value and r-derivative (1/Angstrom times the unit of g) of function `q` on interval `i` (both
1-based) at local coordinate `t`, by Horner's rule in the order hybridpot uses.
"""
@inline function spline_value_slope(coefficients::AbstractArray{T,3}, q::Int, i::Int, t::T, h::T) where {T<:AbstractFloat}
    @inbounds begin
        a5 = coefficients[q, 6, i]
        value = a5
        slope = 5 * a5
        value = coefficients[q, 5, i] + value * t
        slope = 4 * coefficients[q, 5, i] + slope * t
        value = coefficients[q, 4, i] + value * t
        slope = 3 * coefficients[q, 4, i] + slope * t
        value = coefficients[q, 3, i] + value * t
        slope = 2 * coefficients[q, 3, i] + slope * t
        value = coefficients[q, 2, i] + value * t
        slope = coefficients[q, 2, i] + slope * t
        value = coefficients[q, 1, i] + value * t
    end
    return value, slope / h
end
