# The numeric contract `so3_descriptors` of hybridpot (hybridpot/descriptors/so3.py) on any
# KernelAbstractions backend: pair vectors, centres, weights and channels in; density coefficients
# c, power-spectrum features B and, for a cotangent dE/dB, the adjoint dE/dc and the VJP dE/dr_p out.
#
# Array layouts are those of numpy with the axes reversed (the same memory): vectors (3, P),
# c ((lmax + 1)^2, nu, N), B (K, N), dE/dr (3, P). Indices (centres, channels) are 1-based here;
# hybridpot's are 0-based (the Python bridge adds 1).

"""
    to_backend(backend, x)

A copy of array `x` on KernelAbstractions `backend` (`x` itself when it is already an `Array` and
the backend is `CPU()`); also for a [`RadialSpline`](@ref) and a [`PowerTable`](@ref).
"""
to_backend(::CPU, x::Array) = x
function to_backend(backend::KernelAbstractions.Backend, x::AbstractArray)
    y = KernelAbstractions.allocate(backend, eltype(x), size(x)...)
    copyto!(y, x)
    return y
end
to_backend(backend::KernelAbstractions.Backend, s::RadialSpline) = RadialSpline(to_backend(backend, s.coefficients), s.spacing, s.rcut, s.nmax, s.lmax)
to_backend(backend::KernelAbstractions.Backend, t::PowerTable) =
    PowerTable(to_backend(backend, t.a), to_backend(backend, t.b), to_backend(backend, t.l), to_backend(backend, t.norm))

"""
    SO3Evaluation

Everything [`so3_descriptors`](@ref) computed and [`so3_vjp`](@ref) needs again: `c`, `B`, the
[`PairBasis`](@ref), the [`PairIndex`](@ref), the inputs (`vectors`, `centers`, `channels`), the
`spline`, the power `table` and `l_of` = [`angular_order`](@ref), all on one backend.
"""
struct SO3Evaluation{T<:AbstractFloat,C<:AbstractArray{T,3},M<:AbstractMatrix{T},PB<:PairBasis{T},I<:PairIndex,X<:AbstractMatrix{T},
                     V<:AbstractVector,W<:AbstractVector,S<:RadialSpline{T},P<:PowerTable,L<:AbstractVector{Int32}}
    c::C
    B::M
    basis::PB
    index::I
    vectors::X
    centers::V
    channels::W
    spline::S
    table::P
    l_of::L
end

"""
    so3_descriptors(vectors, centers, weights, channels, n_atoms, spline, table; gradients=true) -> SO3Evaluation

hybridpot's `so3_descriptors` contract with the power spectrum.

# Arguments
- `vectors::AbstractMatrix{T}` (3, P): r_p = x_j - x_i (+ periodic shift), Angstrom, non-zero; pairs
  with |r_p| >= `spline.rcut` contribute nothing.
- `centers::AbstractVector{<:Integer}` (P,): 1-based centre atom of each pair, any order.
- `weights::AbstractVector{T}` (P,): neighbour weight w_p.
- `channels`: (P,) 1-based neighbour channel, or `nothing` for one density.
- `n_atoms`: N.
- `spline::RadialSpline{T}`, `table::PowerTable`: the radial table and the feature columns; the number of
  radial channels nu = n_channels * nmax is the largest channel the table refers to.
- `gradients`: also compute dY (needed by [`so3_vjp`](@ref)).

Everything runs on the backend of `vectors` (`CPU()` threads for `Array`s, CUDA for `CuArray`s);
`spline` and `table` must be there too ([`to_backend`](@ref)). Returns an [`SO3Evaluation`](@ref)
with `c` ((lmax + 1)^2, nu, N) and `B` (K, N).
"""
function so3_descriptors(vectors::AbstractMatrix{T}, centers::AbstractVector{<:Integer}, weights::AbstractVector{T},
                         channels::Union{Nothing,AbstractVector{<:Integer}}, n_atoms::Integer, spline::RadialSpline{T},
                         table::PowerTable; gradients::Bool=true) where {T<:AbstractFloat}
    backend = get_backend(vectors)
    n_pairs = size(vectors, 2)
    length(centers) == n_pairs || throw(DimensionMismatch("$(length(centers)) centres for $n_pairs pairs"))
    n_radial = Int(maximum(Array(table.a)))
    n_radial % spline.nmax == 0 || throw(DimensionMismatch("the power table has $n_radial radial channels, not a multiple of nmax = $(spline.nmax)"))
    n_channels = n_radial ÷ spline.nmax
    if channels === nothing
        n_channels == 1 || throw(ArgumentError("the power table has $n_channels density channels: give the pairs' channels"))
        channels = KernelAbstractions.ones(backend, Int32, n_pairs)
    end
    basis = pair_basis(vectors, weights, spline; gradients=gradients)
    index = pair_index(centers, n_atoms; backend=backend)
    l_of = to_backend(backend, angular_order(spline.lmax))
    c = KernelAbstractions.zeros(backend, T, (spline.lmax + 1)^2, n_radial, n_atoms)
    density!(c, basis, index, channels, spline, l_of)
    B = power_spectrum(c, table)
    return SO3Evaluation(c, B, basis, index, vectors, centers, channels, spline, table, l_of)
end

"""
    so3_vjp(dB, evaluation) -> (dc = dE/dc, dr = dE/dr)

For a cotangent `dB` = dE/dB (K, N) (eV per unit of B): dE/dc ((lmax + 1)^2, nu, N) = (dB/dc)^T dE/dB
and dE/dr_p (3, P) = (dc/dr_p)^T dE/dc (eV/Angstrom), the derivative through the centre's density.
Forces follow as F_i += dE/dr_p, F_j -= dE/dr_p for pair p = (i, j).
"""
function so3_vjp(dB::AbstractMatrix{T}, ev::SO3Evaluation{T}) where {T<:AbstractFloat}
    backend = get_backend(ev.c)
    dc = KernelAbstractions.zeros(backend, T, size(ev.c)...)
    power_spectrum_adjoint!(dc, dB, ev.c, ev.table, ev.l_of)
    dr = KernelAbstractions.zeros(backend, T, 3, size(ev.vectors, 2))
    density_vjp!(dr, dc, ev.basis, ev.vectors, ev.centers, ev.channels, ev.spline, ev.l_of)
    return (dc=dc, dr=dr)
end
