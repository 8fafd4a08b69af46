# The power spectrum of the density coefficients and its adjoint (hybridpot.descriptors.invariants.PowerSpectrum).
#
# Column k of the features of atom i is
#
#     B[k, i] = norm_k sum_m c[l_k^2 + l_k + m + 1, a_k, i] c[l_k^2 + l_k + m + 1, b_k, i],
#
# with the table (a_k, b_k, l_k, norm_k) of the `invariants power` section of a hybridpot-lammps
# model file. hybridpot's (and LAMMPS so3's) table is [`power_table`](@ref): radial channel pairs
# b <= a in the order (1,1), (2,1), (2,2), (3,1), ...; within each pair l = 0..lmax; norm_l =
# 2 sqrt(2) pi / sqrt(2l + 1). The adjoint is (dB/dc)^T dE/dB:
#
#     dE/dc[lm, nu, i] = sum_{k: l_k = l(lm)} norm_k dE/dB[k, i] ([a_k = nu] c[lm, b_k, i] + [b_k = nu] c[lm, a_k, i]).

"""
    PowerTable(a, b, l, norm)

The column table of a power spectrum: feature k is `norm[k] * sum_m c[., a[k], i] c[., b[k], i]` over
the (2 l[k] + 1) columns of order `l[k]`. `a`, `b` are 1-based radial channels, `l` the angular
order (from 0), `norm` the factor. Move it to a GPU with [`to_backend`](@ref).
"""
struct PowerTable{IV<:AbstractVector{Int32},TV<:AbstractVector{<:AbstractFloat}}
    a::IV
    b::IV
    l::IV
    norm::TV

    function PowerTable(a::IV, b::IV, l::IV, norm::TV) where {IV<:AbstractVector{Int32},TV<:AbstractVector{<:AbstractFloat}}
        length(a) == length(b) == length(l) == length(norm) ||
            throw(DimensionMismatch("power table columns of different lengths: $(length(a)), $(length(b)), $(length(l)), $(length(norm))"))
        return new{IV,TV}(a, b, l, norm)
    end
end

"""Number of features K."""
n_features(table::PowerTable) = length(table.a)

"""
    power_table(T, n_radial, lmax) -> PowerTable

hybridpot's power-spectrum columns for `n_radial` radial channels (nu = n_channels * nmax):
column k = (a (a - 1) / 2 + b - 1) (lmax + 1) + l + 1 for 1 <= b <= a <= n_radial, 0 <= l <= lmax,
with norm_l = 2 sqrt(2) pi / sqrt(2l + 1) (the LAMMPS so3 normalisation).
"""
function power_table(::Type{T}, n_radial::Integer, lmax::Integer) where {T<:AbstractFloat}
    a, b, l, norm = Int32[], Int32[], Int32[], T[]
    for n1 in 1:n_radial, n2 in 1:n1, order in 0:lmax
        push!(a, n1)
        push!(b, n2)
        push!(l, order)
        push!(norm, T(2 * sqrt(big(2)) * big(pi) / sqrt(big(2 * order + 1))))
    end
    return PowerTable(a, b, l, norm)
end

@kernel function _power_spectrum_kernel!(B, @Const(c), @Const(a), @Const(b), @Const(l), @Const(factor))
    k, i = @index(Global, NTuple)
    @inbounds begin
        order = Int(l[k])
        n1, n2 = Int(a[k]), Int(b[k])
        acc = zero(eltype(B))
        for column in (order * order + 1):((order + 1) * (order + 1))
            acc += c[column, n1, i] * c[column, n2, i]
        end
        B[k, i] = factor[k] * acc
    end
end

@kernel function _power_adjoint_kernel!(dc, @Const(dB), @Const(c), @Const(a), @Const(b), @Const(l), @Const(factor), @Const(l_of))
    column, nu, i = @index(Global, NTuple)
    @inbounds begin
        order = l_of[column]
        acc = zero(eltype(dc))
        for k in eachindex(a)
            if l[k] == order
                w = factor[k] * dB[k, i]
                if a[k] == nu
                    acc += w * c[column, b[k], i]
                end
                if b[k] == nu
                    acc += w * c[column, a[k], i]
                end
            end
        end
        dc[column, nu, i] = acc
    end
end

"""
    power_spectrum!(B, c, table) -> B

Features `B` (K, N) of the density coefficients `c` ((lmax + 1)^2, nu, N), on the backend of `c`.
"""
function power_spectrum!(B::AbstractMatrix{T}, c::AbstractArray{T,3}, table::PowerTable) where {T<:AbstractFloat}
    size(B) == (n_features(table), size(c, 3)) || throw(DimensionMismatch("B must be (K, N) = $((n_features(table), size(c, 3))), got $(size(B))"))
    _check_table(table, c)
    isempty(B) && return B  # no atoms or no features: nothing to launch
    backend = get_backend(c)
    _power_spectrum_kernel!(backend)(B, c, table.a, table.b, table.l, table.norm; ndrange=size(B))
    KernelAbstractions.synchronize(backend)
    return B
end

"""
    power_spectrum(c, table) -> B

Allocating form of [`power_spectrum!`](@ref): B (K, N) on the backend of `c`.
"""
function power_spectrum(c::AbstractArray{T,3}, table::PowerTable) where {T<:AbstractFloat}
    B = KernelAbstractions.zeros(get_backend(c), T, n_features(table), size(c, 3))
    return power_spectrum!(B, c, table)
end

"""
    power_spectrum_adjoint!(dc, dB, c, table, l_of) -> dc

dE/dc ((lmax + 1)^2, nu, N) from dE/dB (K, N) at coefficients `c`; `l_of` is
[`angular_order`](@ref)`(lmax)` on the backend of `c`.
"""
function power_spectrum_adjoint!(dc::AbstractArray{T,3}, dB::AbstractMatrix{T}, c::AbstractArray{T,3}, table::PowerTable,
                                 l_of::AbstractVector{Int32}) where {T<:AbstractFloat}
    size(dc) == size(c) || throw(DimensionMismatch("dc must have the shape of c, $(size(c)); got $(size(dc))"))
    size(dB) == (n_features(table), size(c, 3)) || throw(DimensionMismatch("dE/dB must be (K, N) = $((n_features(table), size(c, 3))), got $(size(dB))"))
    length(l_of) == size(c, 1) || throw(DimensionMismatch("l_of has $(length(l_of)) columns, c has $(size(c, 1))"))
    _check_table(table, c)
    isempty(dc) && return dc
    backend = get_backend(c)
    _power_adjoint_kernel!(backend)(dc, dB, c, table.a, table.b, table.l, table.norm, l_of; ndrange=size(dc))
    KernelAbstractions.synchronize(backend)
    return dc
end

"""
    power_spectrum_adjoint(dB, c, table) -> dc

Allocating form of [`power_spectrum_adjoint!`](@ref).
"""
function power_spectrum_adjoint(dB::AbstractMatrix{T}, c::AbstractArray{T,3}, table::PowerTable) where {T<:AbstractFloat}
    backend = get_backend(c)
    lmax = isqrt(size(c, 1)) - 1
    dc = KernelAbstractions.zeros(backend, T, size(c)...)
    return power_spectrum_adjoint!(dc, dB, c, table, to_backend(backend, angular_order(lmax)))
end

"""Host-side check that the table fits c (channels in 1:nu, orders in 0:lmax); the kernels do not check bounds."""
function _check_table(table::PowerTable, c::AbstractArray)
    nu, lmax = size(c, 2), isqrt(size(c, 1)) - 1
    (lmax + 1)^2 == size(c, 1) || throw(DimensionMismatch("c has $(size(c, 1)) (l, m) columns, not a square (lmax + 1)^2"))
    a, b, l = Array(table.a), Array(table.b), Array(table.l)
    all(x -> 1 <= x <= nu, a) && all(x -> 1 <= x <= nu, b) ||
        throw(ArgumentError("power table refers to radial channels outside 1:$nu"))
    all(x -> 0 <= x <= lmax, l) || throw(ArgumentError("power table refers to angular orders outside 0:$lmax"))
    return nothing
end
