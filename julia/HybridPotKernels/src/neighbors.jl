# A full neighbour list for the calculator: every pair (i, j, image) with 0 < |r_ij| < cutoff, in both
# directions, r_ij = x_j - x_i + n_1 a_1 + n_2 a_2 + n_3 a_3 (periodic directions only).
#
# Brute force over atom pairs and lattice images: O(N^2 n_images). Correct for any cell shape and
# any mix of periodic and open directions, and plenty for the conformance tests and small MD; an MD
# code with its own neighbour finder can pass pairs to `evaluate_pairs` instead.

"""
    PairList(i, j, vectors)

Directed pairs: centre `i[p]`, neighbour `j[p]` (1-based) and `vectors[:, p]` = r_p (Angstrom).
"""
struct PairList
    i::Vector{Int}
    j::Vector{Int}
    vectors::Matrix{Float64}
end

"""|r_p|, Angstrom."""
@inline pair_distance(pairs::PairList, p::Int) =
    @inbounds sqrt(pairs.vectors[1, p]^2 + pairs.vectors[2, p]^2 + pairs.vectors[3, p]^2)

"""
    neighbor_pairs(positions, cell, pbc, cutoff) -> PairList

All directed pairs closer than `cutoff` (Angstrom). `positions` (3, N) Angstrom; `cell` (3, 3) with the
cell vectors as columns (Angstrom; ignored when no direction is periodic); `pbc` periodicity per cell
vector. Positions are wrapped into the cell along periodic directions first (pair vectors then differ
from unwrapped ones by lattice vectors only).
"""
function neighbor_pairs(positions::AbstractMatrix{<:Real}, cell::AbstractMatrix{<:Real}, pbc::NTuple{3,Bool}, cutoff::Real)
    size(positions, 1) == 3 || throw(DimensionMismatch("positions must be (3, N), got $(size(positions))"))
    size(cell) == (3, 3) || throw(DimensionMismatch("cell must be (3, 3) with the cell vectors as columns, got $(size(cell))"))
    cutoff > 0 || throw(ArgumentError("cutoff must be positive, got $cutoff"))
    all(isfinite, positions) || throw(ArgumentError("positions must be finite"))
    x = Matrix{Float64}(positions)
    lattice = Matrix{Float64}(cell)
    n_images = (0, 0, 0)
    if any(pbc)
        volume = abs(det(lattice))
        volume > 1e-12 || throw(ArgumentError("a periodic system needs a cell of non-zero volume (cell vectors as columns), got $lattice"))
        fractional = lattice \ x
        for a in 1:3
            pbc[a] && (fractional[a, :] .-= floor.(fractional[a, :]))
        end
        x = lattice * fractional
        # distance between the lattice planes spanned by the other two cell vectors
        heights = ntuple(a -> volume / norm(cross(lattice[:, mod1(a + 1, 3)], lattice[:, mod1(a + 2, 3)])), 3)
        n_images = ntuple(a -> pbc[a] ? ceil(Int, cutoff / heights[a]) + 1 : 0, 3)
    end
    cutoff2 = Float64(cutoff)^2
    centres, neighbours, vectors = Int[], Int[], Float64[]
    n_atoms = size(x, 2)
    for n1 in -n_images[1]:n_images[1], n2 in -n_images[2]:n_images[2], n3 in -n_images[3]:n_images[3]
        shift = n1 * lattice[:, 1] + n2 * lattice[:, 2] + n3 * lattice[:, 3]
        at_origin = n1 == 0 && n2 == 0 && n3 == 0
        for i in 1:n_atoms, j in 1:n_atoms
            (at_origin && i == j) && continue
            dx = x[1, j] - x[1, i] + shift[1]
            dy = x[2, j] - x[2, i] + shift[2]
            dz = x[3, j] - x[3, i] + shift[3]
            if dx * dx + dy * dy + dz * dz < cutoff2
                push!(centres, i)
                push!(neighbours, j)
                append!(vectors, (dx, dy, dz))
            end
        end
    end
    return PairList(centres, neighbours, reshape(vectors, 3, :))
end

"""The pairs of `pairs` with |r_p| < `cutoff`."""
function within(pairs::PairList, cutoff::Real)
    keep = [pair_distance(pairs, p) < cutoff for p in eachindex(pairs.i)]
    return PairList(pairs.i[keep], pairs.j[keep], pairs.vectors[:, keep])
end
