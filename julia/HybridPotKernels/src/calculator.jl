# Energies and forces of an exported hybridpot model, and an AtomsCalculators.jl calculator for Julia
# MD codes (Molly.jl and others that take AtomsCalculators calculators).
#
#     E = sum_i [E_ML,t_i(B_i) + E_baseline,i],   F_a = sum_{p: i_p = a} dE/dr_p - sum_{p: j_p = a} dE/dr_p
#
# (hybridpot/potential.py: `evaluate`). The descriptor kernels run on the calculator's
# KernelAbstractions backend (CPU threads by default); the model and the baseline on the host.

"""
    element_indices(model, species) -> Vector{Int}

1-based element index of every atom (`species`: symbols as strings or `Symbol`s); an element the
model does not cover is an error naming it.
"""
function element_indices(model::HybridModel, species::AbstractVector)
    types = Vector{Int}(undef, length(species))
    for (a, s) in enumerate(species)
        t = findfirst(==(String(s)), model.elements)
        t === nothing && throw(ArgumentError("atom $a is $(s), which the model $(model.path) does not cover (elements $(join(model.elements, ", ")))"))
        types[a] = t
    end
    return types
end

"""
    evaluate_pairs(model, pairs, types; backend=CPU()) -> (energy, energies, dE_dr)

Total energy (eV), per-atom energies (N,) and dE/dr_p (3, P) for a full [`PairList`](@ref) covering
`model.cutoff` and 1-based element indices `types` (N,).
"""
function evaluate_pairs(model::HybridModel, pairs::PairList, types::AbstractVector{<:Integer}; backend::KernelAbstractions.Backend=CPU())
    n_atoms = length(types)
    energies = zeros(n_atoms)
    dE_dr = zeros(3, length(pairs.i))
    _residual!(energies, dE_dr, model, pairs, types, backend)
    baseline_energies!(energies, dE_dr, model.baseline, pairs, types)
    return (energy=sum(energies), energies=energies, dE_dr=dE_dr)
end

"""The ML residual: per-atom energies and dE/dr_p through the descriptor kernels, added in place."""
function _residual!(energies::Vector{Float64}, dE_dr::Matrix{Float64}, model::HybridModel, pairs::PairList,
                    types::AbstractVector{<:Integer}, backend::KernelAbstractions.Backend)
    d = model.descriptor
    inside = [p for p in eachindex(pairs.i) if pair_distance(pairs, p) < d.rcut]
    neighbour_types = types[pairs.j[inside]]
    vectors = to_backend(backend, pairs.vectors[:, inside])
    centers = to_backend(backend, Int32.(pairs.i[inside]))
    weights = to_backend(backend, d.weights[neighbour_types])
    channels = to_backend(backend, d.channel[neighbour_types])
    evaluation = so3_descriptors(vectors, centers, weights, channels, length(types), to_backend(backend, d.spline), to_backend(backend, d.table))
    B = Array(evaluation.B)
    e, gradient = zeros(length(types)), zeros(size(B))
    residual_energies!(e, gradient, model.model, B, types)
    energies .+= e
    dr = so3_vjp(to_backend(backend, gradient), evaluation).dr
    dE_dr[:, inside] .+= Array(dr)
    return nothing
end

"""
    forces_from_pairs(dE_dr, pairs, n_atoms) -> (3, N) forces, eV/Angstrom
"""
function forces_from_pairs(dE_dr::Matrix{Float64}, pairs::PairList, n_atoms::Integer)
    forces = zeros(3, n_atoms)
    @inbounds for p in eachindex(pairs.i), a in 1:3
        forces[a, pairs.i[p]] += dE_dr[a, p]
        forces[a, pairs.j[p]] -= dE_dr[a, p]
    end
    return forces
end

"""
    evaluate(model, positions, cell, pbc, species; backend=CPU()) -> (energy, energies, forces)

Energy (eV), per-atom energies (N,) and forces (3, N), eV/Angstrom, of one structure: `positions`
(3, N) Angstrom, `cell` (3, 3) with the cell vectors as columns, `pbc` periodicity per cell vector,
`species` the chemical symbols.
"""
function evaluate(model::HybridModel, positions::AbstractMatrix{<:Real}, cell::AbstractMatrix{<:Real}, pbc::NTuple{3,Bool},
                  species::AbstractVector; backend::KernelAbstractions.Backend=CPU())
    size(positions, 2) == length(species) || throw(DimensionMismatch("$(size(positions, 2)) positions for $(length(species)) species"))
    types = element_indices(model, species)
    pairs = neighbor_pairs(positions, cell, pbc, model.cutoff)
    result = evaluate_pairs(model, pairs, types; backend=backend)
    return (energy=result.energy, energies=result.energies, forces=forces_from_pairs(result.dE_dr, pairs, length(types)))
end

"""
    HybridPotCalculator(path; backend=CPU())
    HybridPotCalculator(model::HybridModel; backend=CPU())

An AtomsCalculators.jl calculator for a `hybridpot-lammps` model file: `potential_energy`
(eV), `forces` (eV/Angstrom, one `SVector` per atom) and `energy_forces` for any AtomsBase system,
with the descriptor kernels on `backend` (e.g. `CUDABackend()` after `using CUDA`).
"""
struct HybridPotCalculator{M<:HybridModel,B<:KernelAbstractions.Backend}
    model::M
    backend::B
end
HybridPotCalculator(model::HybridModel; backend::KernelAbstractions.Backend=CPU()) = HybridPotCalculator(model, backend)
HybridPotCalculator(path::AbstractString; backend::KernelAbstractions.Backend=CPU()) = HybridPotCalculator(read_model_file(path), backend)

"""
    system_arrays(system) -> (positions (3, N), cell (3, 3), pbc, species)

Unit-stripped arrays (Angstrom) of an AtomsBase system; the cell is read only when some direction is periodic.
"""
function system_arrays(system)
    n = length(system)
    positions = Matrix{Float64}(undef, 3, n)
    for (a, x) in enumerate(AtomsBase.position(system, :))
        positions[:, a] = ustrip.(u"Å", x)
    end
    periodic = Tuple(AtomsBase.periodicity(system))
    length(periodic) == 3 || throw(ArgumentError("HybridPotKernels needs a 3-dimensional system, got $(length(periodic)) dimensions"))
    pbc = (Bool(periodic[1]), Bool(periodic[2]), Bool(periodic[3]))
    cell = zeros(3, 3)
    if any(pbc)
        for (k, v) in enumerate(AtomsBase.cell_vectors(system))
            cell[:, k] = ustrip.(u"Å", v)
        end
    end
    species = [String(AtomsBase.atomic_symbol(system, a)) for a in 1:n]
    return positions, cell, pbc, species
end

"""Evaluate the calculator's model on an AtomsBase system (unitless: eV, eV/Angstrom)."""
function evaluate(calc::HybridPotCalculator, system)
    positions, cell, pbc, species = system_arrays(system)
    return evaluate(calc.model, positions, cell, pbc, species; backend=calc.backend)
end

_force_vectors(forces::Matrix{Float64}) = [SVector{3,Float64}(forces[1, a], forces[2, a], forces[3, a]) * u"eV/Å" for a in axes(forces, 2)]

AtomsCalculators.energy_unit(::HybridPotCalculator) = u"eV"
AtomsCalculators.length_unit(::HybridPotCalculator) = u"Å"

AtomsCalculators.potential_energy(system, calc::HybridPotCalculator; kwargs...) = evaluate(calc, system).energy * u"eV"
AtomsCalculators.forces(system, calc::HybridPotCalculator; kwargs...) = _force_vectors(evaluate(calc, system).forces)

function AtomsCalculators.energy_forces(system, calc::HybridPotCalculator; kwargs...)
    result = evaluate(calc, system)
    return (energy=result.energy * u"eV", forces=_force_vectors(result.forces))
end

function AtomsCalculators.calculate(::AtomsCalculators.Energy, system, calc::HybridPotCalculator, parameters=nothing, state=nothing; kwargs...)
    return (energy=AtomsCalculators.potential_energy(system, calc), state=nothing)
end

function AtomsCalculators.calculate(::AtomsCalculators.Forces, system, calc::HybridPotCalculator, parameters=nothing, state=nothing; kwargs...)
    return (forces=AtomsCalculators.forces(system, calc), state=nothing)
end
