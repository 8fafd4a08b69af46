# Real spherical harmonics Y_lm(r / |r|) and their gradients with respect to the vector r.
#
# Convention (the one hybridpot takes from sphericart; `hybridpot/descriptors/angular.py`): real,
# orthonormal on the unit sphere, no Condon-Shortley phase, columns ordered
# (l, m) = (0, 0), (1, -1), (1, 0), (1, 1), (2, -2), ..., i.e. column l*l + l + m + 1 (1-based), so
# that Y_11 ~ +x, Y_1-1 ~ +y, Y_10 ~ +z.
#
# Method (written for this package). With u = r / |r| = (x, y, z) on the unit sphere,
#
#     Y_l0  = N_l0 Q_l^0(z),     Y_lm = N_lm Q_l^m(z) C_m(x, y),     Y_l,-m = N_lm Q_l^m(z) S_m(x, y)   (m > 0),
#
# where C_m + i S_m = (x + i y)^m and Q_l^m(z) = P_l^m(z) / (1 - z^2)^(m/2) is the associated
# Legendre function (without the Condon-Shortley phase) with its sin^m factor removed: a polynomial
# of degree l - m in z, from
#
#     Q_m^m = (2m - 1)!!,   Q_{m+1}^m = (2m + 1) z Q_m^m,
#     (l - m) Q_l^m = (2l - 1) z Q_{l-1}^m - (l + m - 1) Q_{l-2}^m,
#
# and N_l0 = sqrt((2l + 1) / 4pi), N_lm = sqrt(2 (2l + 1) / 4pi (l - m)! / (l + m)!) (m > 0).
# F(x, y, z) = N Q(z) C(x, y) is a polynomial that equals Y on the sphere, so the gradient of
# Y(r / |r|) is the tangential part of grad F at u, divided by |r|:
#
#     dY/dr = (grad F(u) - (u . grad F(u)) u) / |r|,
#     grad F = N (Q dC/dx, Q dC/dy, Q' C),   dC_m/dx = m C_{m-1}, dC_m/dy = -m S_{m-1},
#                                            dS_m/dx = m S_{m-1}, dS_m/dy = m C_{m-1}.
#
# Everything is scalar recurrences in registers: no allocation, usable inside a kernel.

"""
    harmonics_normalisation(T, lmax) -> Vector{T}

N_lm of every column (l, m), length (lmax + 1)^2 (column l*l + l + m + 1), including the
sqrt(2) of the m != 0 real harmonics. Computed once on the host.
"""
function harmonics_normalisation(::Type{T}, lmax::Integer) where {T<:AbstractFloat}
    lmax >= 0 || throw(ArgumentError("lmax must be >= 0, got $lmax"))
    out = Vector{T}(undef, (lmax + 1)^2)
    for l in 0:lmax, m in -l:l
        ratio = big(1) // big(1)  # (l - |m|)! / (l + |m|)! exactly, rounded once below
        for k in (l - abs(m) + 1):(l + abs(m))
            ratio //= k
        end
        value = sqrt(big(2l + 1) / (4 * big(pi)) * ratio) * (m == 0 ? 1 : sqrt(big(2)))
        out[l * l + l + m + 1] = T(value)
    end
    return out
end

"""
    angular_order(lmax) -> Vector{Int32}

The l of each of the (lmax + 1)^2 columns (column l*l + l + m + 1 -> l).
"""
angular_order(lmax::Integer) = Int32[l for l in 0:lmax for _ in -l:l]

"""
    harmonics!(Y, dY, p, x, y, z, r, lmax, normalisation, gradients)

Write Y_lm(u) into `Y[:, p]` ((lmax + 1)^2 values) and, if `gradients`, dY_lm/dr into
`dY[:, :, p]` (3 x (lmax + 1)^2, 1/Angstrom), for the unit vector u = (x, y, z) of a pair vector of
length `r` (Angstrom, > 0). `normalisation` is [`harmonics_normalisation`](@ref). Kernel-safe.
"""
@inline function harmonics!(Y::AbstractMatrix{T}, dY::AbstractArray{T,3}, p::Int, x::T, y::T, z::T, r::T,
                            lmax::Int, normalisation::AbstractVector{T}, gradients::Bool) where {T<:AbstractFloat}
    c, s = one(T), zero(T)            # C_m, S_m
    c_prev, s_prev = zero(T), zero(T)  # C_{m-1}, S_{m-1}
    q_mm = one(T)                     # Q_m^m = (2m - 1)!!
    inv_r = one(T) / r
    @inbounds for m in 0:lmax
        if m > 0
            c_prev, s_prev = c, s
            c, s = x * c_prev - y * s_prev, y * c_prev + x * s_prev
            q_mm *= T(2m - 1)
        end
        dc_dx, dc_dy = m * c_prev, -m * s_prev
        ds_dx, ds_dy = m * s_prev, m * c_prev
        # Q_l^m and dQ_l^m/dz for l = m, m + 1, ...: (q1, dq1) at l - 1, (q2, dq2) at l - 2
        q1, dq1 = zero(T), zero(T)
        q2, dq2 = zero(T), zero(T)
        for l in m:lmax
            if l == m
                q, dq = q_mm, zero(T)
            elseif l == m + 1
                q, dq = T(2m + 1) * z * q_mm, T(2m + 1) * q_mm
            else
                q = (T(2l - 1) * z * q1 - T(l + m - 1) * q2) / T(l - m)
                dq = (T(2l - 1) * (q1 + z * dq1) - T(l + m - 1) * dq2) / T(l - m)
            end
            q2, dq2 = q1, dq1
            q1, dq1 = q, dq
            column = l * l + l + m + 1
            _store_harmonic!(Y, dY, p, column, normalisation[column], q, dq, c, dc_dx, dc_dy, x, y, z, inv_r, gradients)
            if m > 0
                column = l * l + l - m + 1
                _store_harmonic!(Y, dY, p, column, normalisation[column], q, dq, s, ds_dx, ds_dy, x, y, z, inv_r, gradients)
            end
        end
    end
    return nothing
end

"""One column: Y = n q phi and dY/dr = (grad F - (u . grad F) u) / r with grad F = n (q dphi/dx, q dphi/dy, dq phi)."""
@inline function _store_harmonic!(Y, dY, p::Int, column::Int, n::T, q::T, dq::T, phi::T, dphi_dx::T, dphi_dy::T,
                                  x::T, y::T, z::T, inv_r::T, gradients::Bool) where {T<:AbstractFloat}
    @inbounds begin
        Y[column, p] = n * q * phi
        if gradients
            fx, fy, fz = n * q * dphi_dx, n * q * dphi_dy, n * dq * phi
            radial = fx * x + fy * y + fz * z
            dY[1, column, p] = (fx - radial * x) * inv_r
            dY[2, column, p] = (fy - radial * y) * inv_r
            dY[3, column, p] = (fz - radial * z) * inv_r
        end
    end
    return nothing
end
