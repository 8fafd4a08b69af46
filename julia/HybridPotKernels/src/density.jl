# Density coefficients from pairs and their vector-Jacobian product (hybridpot.descriptors.so3).
#
# For pairs p with vector r_p = x_j - x_i (Angstrom, periodic images included), centre i = centers[p],
# neighbour weight w_p and neighbour channel ch_p (1-based here),
#
#     c[lm, nu, i] = sum_{p: centers[p] = i, ch_p = ch(nu)} w_p g_{n l}(|r_p|) Y_lm(r_p / |r_p|),
#     nu = (ch - 1) nmax + n + 1,  n = 0..nmax-1,  l = l(lm),
#
# over pairs with |r_p| < rcut. Its VJP for a cotangent D = dE/dc ((lmax + 1)^2, nu, N) is, per pair,
#
#     dE/dr_p = r_hat sum_{n, lm} D[lm, nu_p(n), i] w g'_{n l} Y_lm + sum_{n, lm} D[lm, nu_p(n), i] w g_{n l} dY_lm/dr,
#
# the same expression as `_vjp_chunk` in so3.py. Three kernels: one per pair for the basis (w g,
# w g', Y, dY into preallocated work arrays), one per (lm, nu, atom) that sums its atom's pairs (a
# gather over a centre-sorted index: no atomics, deterministic order), one per pair for the VJP.

"""
    PairBasis

Per-pair radial and angular functions on the backend of the pair vectors (P pairs, Q = nmax (lmax + 1)
radial functions, L2 = (lmax + 1)^2 columns):

- `radial::M` (Q, P): w_p g_q(|r_p|), zero for |r_p| >= rcut;
- `radial_slope::M` (Q, P): w_p dg_q/dr (1/Angstrom);
- `angular::M` (L2, P): Y_lm(r_p / |r_p|);
- `angular_gradient::A` (3, L2, P): dY_lm/dr_p (1/Angstrom), or an empty (3, L2, 0) array when only values were asked.
"""
struct PairBasis{T<:AbstractFloat,M<:AbstractMatrix{T},A<:AbstractArray{T,3}}
    radial::M
    radial_slope::M
    angular::M
    angular_gradient::A
end

@kernel function _pair_basis_kernel!(G, dG, Y, dY, @Const(vectors), @Const(weights), @Const(coefficients), @Const(normalisation),
                                     h, rcut, lmax::Int, gradients::Bool)
    p = @index(Global, Linear)
    T = eltype(G)
    @inbounds begin
        vx, vy, vz = vectors[1, p], vectors[2, p], vectors[3, p]
        r = sqrt(vx * vx + vy * vy + vz * vz)
        n_q = size(G, 1)
        if r < rcut
            w = weights[p]
            interval, t = spline_interval(r, h, size(coefficients, 3))
            for q in 1:n_q
                g, dg = spline_value_slope(coefficients, q, interval, t, h)
                G[q, p] = w * g
                dG[q, p] = w * dg
            end
        else
            for q in 1:n_q
                G[q, p] = zero(T)
                dG[q, p] = zero(T)
            end
        end
        inv_r = one(T) / r
        harmonics!(Y, dY, p, vx * inv_r, vy * inv_r, vz * inv_r, r, lmax, normalisation, gradients)
    end
end

"""
    pair_basis(vectors, weights, spline; gradients=true) -> PairBasis

w g, w g', Y (and dY if `gradients`) of every pair. `vectors` (3, P) Angstrom, non-zero; `weights`
(P,); all on one backend (that of `vectors`), `spline` included ([`to_backend`](@ref)).
"""
function pair_basis(vectors::AbstractMatrix{T}, weights::AbstractVector{T}, spline::RadialSpline{T}; gradients::Bool=true) where {T<:AbstractFloat}
    size(vectors, 1) == 3 || throw(DimensionMismatch("pair vectors must be (3, P), got $(size(vectors))"))
    n_pairs = size(vectors, 2)
    length(weights) == n_pairs || throw(DimensionMismatch("$(length(weights)) weights for $n_pairs pairs"))
    backend = get_backend(vectors)
    if n_pairs > 0 && !(minimum(sum(abs2, vectors; dims=1)) > 0)
        throw(ArgumentError("pair vectors must be non-zero and finite (an atom paired with itself at zero distance?)"))
    end
    L2 = (spline.lmax + 1)^2
    G = KernelAbstractions.zeros(backend, T, n_functions(spline), n_pairs)
    dG = KernelAbstractions.zeros(backend, T, n_functions(spline), n_pairs)
    Y = KernelAbstractions.zeros(backend, T, L2, n_pairs)
    dY = KernelAbstractions.zeros(backend, T, 3, L2, gradients ? n_pairs : 0)
    if n_pairs > 0
        normalisation = to_backend(backend, harmonics_normalisation(T, spline.lmax))
        _pair_basis_kernel!(backend)(G, dG, Y, dY, vectors, weights, spline.coefficients, normalisation,
                                     spline.spacing, spline.rcut, spline.lmax, gradients; ndrange=n_pairs)
        KernelAbstractions.synchronize(backend)
    end
    return PairBasis(G, dG, Y, dY)
end

"""
    PairIndex

The pairs of each atom: `order[offsets[i]:offsets[i + 1] - 1]` are the pairs with centre i (in their
input order). Built on the host by a counting sort of the centres (O(P)) and moved to the backend.
"""
struct PairIndex{V<:AbstractVector{Int32}}
    order::V
    offsets::V
end

"""
    pair_index(centers, n_atoms; backend=get_backend(centers)) -> PairIndex

Centre-sorted pair index for 1-based `centers` in 1:n_atoms (checked).
"""
function pair_index(centers::AbstractVector{<:Integer}, n_atoms::Integer; backend=get_backend(centers))
    host = Array(centers)
    n_atoms >= 0 || throw(ArgumentError("n_atoms must be >= 0, got $n_atoms"))
    isempty(host) || (1 <= minimum(host) && maximum(host) <= n_atoms) ||
        throw(ArgumentError("pair centres must lie in 1:$n_atoms (1-based atom indices)"))
    length(host) < typemax(Int32) || throw(ArgumentError("more pairs than Int32 indices allow"))
    counts = zeros(Int32, n_atoms + 1)
    for i in host
        counts[i + 1] += 1
    end
    offsets = Vector{Int32}(undef, n_atoms + 1)
    offsets[1] = 1
    for i in 1:n_atoms
        offsets[i + 1] = offsets[i] + counts[i + 1]
    end
    next = offsets[1:n_atoms]
    order = Vector{Int32}(undef, length(host))
    for (p, i) in enumerate(host)
        order[next[i]] = p
        next[i] += 1
    end
    return PairIndex(to_backend(backend, order), to_backend(backend, offsets))
end

@kernel function _density_kernel!(c, @Const(G), @Const(Y), @Const(order), @Const(offsets), @Const(channels), @Const(l_of), nmax::Int, lmax::Int)
    column, nu, atom = @index(Global, NTuple)
    @inbounds begin
        n = (nu - 1) % nmax                 # radial index, from 0
        channel = (nu - 1) ÷ nmax + 1       # density channel, from 1
        q = n * (lmax + 1) + Int(l_of[column]) + 1
        acc = zero(eltype(c))
        for k in offsets[atom]:(offsets[atom + 1] - 1)
            p = order[k]
            if channels[p] == channel
                acc += G[q, p] * Y[column, p]
            end
        end
        c[column, nu, atom] = acc
    end
end

"""
    density!(c, basis, index, channels, spline, l_of) -> c

Density coefficients `c` ((lmax + 1)^2, n_channels nmax, N) from a [`PairBasis`](@ref), a
[`PairIndex`](@ref), the 1-based neighbour channel of each pair (`channels`, (P,), all 1 for one
density) and `l_of = angular_order(lmax)`; everything on one backend.
"""
function density!(c::AbstractArray{T,3}, basis::PairBasis{T}, index::PairIndex, channels::AbstractVector{<:Integer},
                  spline::RadialSpline{T}, l_of::AbstractVector{Int32}) where {T<:AbstractFloat}
    L2 = (spline.lmax + 1)^2
    size(c, 1) == L2 || throw(DimensionMismatch("c has $(size(c, 1)) (l, m) columns, expected $L2"))
    size(c, 2) % spline.nmax == 0 || throw(DimensionMismatch("c has $(size(c, 2)) radial channels, not a multiple of nmax = $(spline.nmax)"))
    length(index.offsets) == size(c, 3) + 1 || throw(DimensionMismatch("pair index for $(length(index.offsets) - 1) atoms, c for $(size(c, 3))"))
    length(channels) == size(basis.radial, 2) || throw(DimensionMismatch("$(length(channels)) channels for $(size(basis.radial, 2)) pairs"))
    _check_channels(channels, size(c, 2) ÷ spline.nmax)
    isempty(c) && return c  # no atoms: nothing to launch
    backend = get_backend(c)
    _density_kernel!(backend)(c, basis.radial, basis.angular, index.order, index.offsets, channels, l_of, spline.nmax, spline.lmax; ndrange=size(c))
    KernelAbstractions.synchronize(backend)
    return c
end

@kernel function _density_vjp_kernel!(out, @Const(dc), @Const(G), @Const(dG), @Const(Y), @Const(dY), @Const(vectors), @Const(centers),
                                      @Const(channels), @Const(l_of), nmax::Int, lmax::Int)
    p = @index(Global, Linear)
    T = eltype(out)
    @inbounds begin
        vx, vy, vz = vectors[1, p], vectors[2, p], vectors[3, p]
        inv_r = one(T) / sqrt(vx * vx + vy * vy + vz * vz)
        atom, channel = Int(centers[p]), Int(channels[p])
        big_l = lmax + 1
        along = zero(T)                     # sum D w g' Y: the radial component
        gx, gy, gz = zero(T), zero(T), zero(T)  # sum D w g dY: the tangential part
        for n in 0:(nmax - 1)
            nu = (channel - 1) * nmax + n + 1
            for column in 1:(big_l * big_l)
                q = n * big_l + Int(l_of[column]) + 1
                d = dc[column, nu, atom]
                along += d * dG[q, p] * Y[column, p]
                dg = d * G[q, p]
                gx += dg * dY[1, column, p]
                gy += dg * dY[2, column, p]
                gz += dg * dY[3, column, p]
            end
        end
        out[1, p] = along * vx * inv_r + gx
        out[2, p] = along * vy * inv_r + gy
        out[3, p] = along * vz * inv_r + gz
    end
end

"""
    density_vjp!(out, dc, basis, vectors, centers, channels, spline, l_of) -> out

dE/dr_p (3, P), eV/Angstrom when dE/dc `dc` is in eV per unit of c, from a [`PairBasis`](@ref) with
gradients; `centers` and `channels` 1-based, (P,). Each pair only reads: no atomics.
"""
function density_vjp!(out::AbstractMatrix{T}, dc::AbstractArray{T,3}, basis::PairBasis{T}, vectors::AbstractMatrix{T},
                      centers::AbstractVector{<:Integer}, channels::AbstractVector{<:Integer}, spline::RadialSpline{T},
                      l_of::AbstractVector{Int32}) where {T<:AbstractFloat}
    n_pairs = size(vectors, 2)
    size(out) == (3, n_pairs) || throw(DimensionMismatch("out must be (3, P) = $((3, n_pairs)), got $(size(out))"))
    size(basis.angular_gradient, 3) == n_pairs || throw(ArgumentError("the pair basis was computed without gradients (pair_basis(...; gradients=true))"))
    length(centers) == n_pairs && length(channels) == n_pairs || throw(DimensionMismatch("centres and channels must have one entry per pair"))
    size(dc, 1) == (spline.lmax + 1)^2 && size(dc, 2) % spline.nmax == 0 || throw(DimensionMismatch("dE/dc has shape $(size(dc))"))
    isempty(centers) || (1 <= minimum(centers) && maximum(centers) <= size(dc, 3)) || throw(ArgumentError("pair centres outside 1:$(size(dc, 3))"))
    _check_channels(channels, size(dc, 2) ÷ spline.nmax)
    if n_pairs > 0
        backend = get_backend(out)
        _density_vjp_kernel!(backend)(out, dc, basis.radial, basis.radial_slope, basis.angular, basis.angular_gradient, vectors, centers,
                                      channels, l_of, spline.nmax, spline.lmax; ndrange=n_pairs)
        KernelAbstractions.synchronize(backend)
    end
    return out
end

"""Host-side check that every channel is in 1:n_channels (the kernels do not check bounds)."""
function _check_channels(channels::AbstractVector{<:Integer}, n_channels::Integer)
    isempty(channels) || (1 <= minimum(channels) && maximum(channels) <= n_channels) ||
        throw(ArgumentError("pair channels must lie in 1:$n_channels (1-based)"))
    return nothing
end
