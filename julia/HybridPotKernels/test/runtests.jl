# Tests of HybridPotKernels: the descriptor contract and the calculator against the conformance data
# written by hybridpot itself (scripts/julia_conformance.py -> test/data), plus checks that need no
# Python (closed-form harmonics, finite differences, model-file errors).
#
#     julia --project=julia/HybridPotKernels -e 'using Pkg; Pkg.test()'

using HybridPotKernels
using HybridPotKernels: ModelFileError, evaluate
using JSON
using KernelAbstractions
using LinearAlgebra
using SHA: sha256
using StaticArrays: SVector
using Test
using Unitful
import AtomsBase
import AtomsCalculators

const DATA = joinpath(@__DIR__, "data")
const RTOL = 1e-12

"""An array of the JSON files ({shape, data}, row-major) as a Julia array with the axes reversed."""
read_floats(x) = reshape(Float64.(x["data"]), reverse(Int.(x["shape"]))...)
read_ints(x) = reshape(Int.(x["data"]), reverse(Int.(x["shape"]))...)

"""max |a - b| <= rtol max |b|: the criterion of tests/test_julia_conformance.py (scale-aware, so
entries that cancel to ~0 are judged against the array's magnitude, not their own)."""
function close_to(a, b; rtol=RTOL)
    size(a) == size(b) || return false
    scale = maximum(abs, b; init=0.0)
    return maximum(abs.(a .- b); init=0.0) <= rtol * max(scale, floatmin(Float64))
end

data_files(prefix, suffix) = sort([f for f in readdir(DATA) if startswith(f, prefix) && endswith(f, suffix)])

@testset "HybridPotKernels" begin
    @testset "conformance data present" begin
        @test length(data_files("so3_", ".json")) >= 2
        @test length(data_files("model_", ".json")) >= 4
    end

    @testset "spherical harmonics: closed forms and gradients" begin
        lmax = 6
        normalisation = harmonics_normalisation(Float64, lmax)
        L2 = (lmax + 1)^2
        Y, dY = zeros(L2, 1), zeros(3, L2, 1)
        harmonics_at(v) = (r = norm(v); HybridPotKernels.harmonics!(Y, dY, 1, v[1] / r, v[2] / r, v[3] / r, r, lmax, normalisation, true); (copy(Y[:, 1]), copy(dY[:, :, 1])))
        v = [0.3, -1.1, 0.7]
        x, y, z = v ./ norm(v)
        values, _ = harmonics_at(v)
        @test values[1] ≈ 1 / (2 * sqrt(pi)) rtol = 1e-15
        @test values[2] ≈ sqrt(3 / (4pi)) * y rtol = 1e-14   # (1, -1) ~ +y
        @test values[3] ≈ sqrt(3 / (4pi)) * z rtol = 1e-14   # (1, 0) ~ +z
        @test values[4] ≈ sqrt(3 / (4pi)) * x rtol = 1e-14   # (1, 1) ~ +x
        @test values[5] ≈ sqrt(15 / (4pi)) * x * y rtol = 1e-14
        @test values[7] ≈ sqrt(5 / (16pi)) * (3z^2 - 1) rtol = 1e-14
        @test values[9] ≈ sqrt(15 / (16pi)) * (x^2 - y^2) rtol = 1e-14
        # gradients against central differences, including a vector along z (the pole)
        for v in ([0.3, -1.1, 0.7], [-2.0, 0.4, 1.3], [0.0, 0.0, 1.7])
            _, gradient = harmonics_at(v)
            h = 1e-6
            for a in 1:3
                e = zeros(3)
                e[a] = h
                numeric = (harmonics_at(v .+ e)[1] .- harmonics_at(v .- e)[1]) ./ (2h)
                @test maximum(abs.(gradient[a, :] .- numeric)) < 1e-8
            end
        end
    end

    @testset "so3 contract: $file" for file in data_files("so3_", ".json")
        case = JSON.parsefile(joinpath(DATA, file))
        s = case["spline"]
        spline = RadialSpline(read_floats(s["coefficients"]), s["spacing"], s["rcut"], s["nmax"], s["lmax"])
        p = case["power"]
        table = PowerTable(Int32.(read_ints(p["a"]) .+ 1), Int32.(read_ints(p["b"]) .+ 1), Int32.(read_ints(p["l"])), read_floats(p["norm"]))
        own = power_table(Float64, case["n_channels"] * s["nmax"], s["lmax"])
        @test own.a == table.a && own.b == table.b && own.l == table.l   # hybridpot's column order
        @test close_to(own.norm, table.norm; rtol=1e-15)
        for structure in case["structures"]
            vectors = read_floats(structure["vectors"])
            centers = read_ints(structure["centers"]) .+ 1
            weights = read_floats(structure["weights"])
            channels = structure["channels"] === nothing ? nothing : read_ints(structure["channels"]) .+ 1
            evaluation = so3_descriptors(vectors, centers, weights, channels, structure["n_atoms"], spline, table)
            @test close_to(evaluation.c, read_floats(structure["c"]))
            @test close_to(evaluation.B, read_floats(structure["B"]))
            vjp = so3_vjp(read_floats(structure["dE_dB"]), evaluation)
            @test close_to(vjp.dc, read_floats(structure["dE_dc"]))
            @test close_to(vjp.dr, read_floats(structure["dE_dr"]))
        end
    end

    @testset "so3 VJP is the gradient (finite differences)" begin
        case = JSON.parsefile(joinpath(DATA, "so3_bessel_2elements_channels.json"))
        s, p = case["spline"], case["power"]
        spline = RadialSpline(read_floats(s["coefficients"]), s["spacing"], s["rcut"], s["nmax"], s["lmax"])
        table = PowerTable(Int32.(read_ints(p["a"]) .+ 1), Int32.(read_ints(p["b"]) .+ 1), Int32.(read_ints(p["l"])), read_floats(p["norm"]))
        structure = case["structures"][1]
        vectors = read_floats(structure["vectors"])
        centers, channels = read_ints(structure["centers"]) .+ 1, read_ints(structure["channels"]) .+ 1
        weights, dB = read_floats(structure["weights"]), read_floats(structure["dE_dB"])
        n_atoms = structure["n_atoms"]
        energy(v) = sum(dB .* so3_descriptors(v, centers, weights, channels, n_atoms, spline, table; gradients=false).B)
        dr = so3_vjp(dB, so3_descriptors(vectors, centers, weights, channels, n_atoms, spline, table)).dr
        h = 1e-6
        for pair in (1, 7, size(vectors, 2) ÷ 2), a in 1:3
            shifted = copy(vectors)
            shifted[a, pair] += h
            up = energy(shifted)
            shifted[a, pair] -= 2h
            numeric = (up - energy(shifted)) / (2h)
            @test abs(dr[a, pair] - numeric) <= 1e-6 * max(1.0, maximum(abs, dr))
        end
    end

    @testset "calculator: $file" for file in data_files("model_", ".json")
        case = JSON.parsefile(joinpath(DATA, file))
        model = read_model_file(joinpath(DATA, case["model_file"]))
        for structure in case["structures"]
            positions = read_floats(structure["positions"])
            cell = read_floats(structure["cell"])  # (3, 3), columns are the cell vectors
            pbc = Tuple(Bool.(structure["pbc"]))
            result = evaluate(model, positions, cell, pbc, structure["symbols"])
            @test isapprox(result.energy, structure["energy"]; rtol=RTOL)
            @test close_to(result.energies, read_floats(structure["energies"]))
            @test close_to(result.forces, read_floats(structure["forces"]))
        end
    end

    @testset "calculator forces are the gradient (finite differences)" begin
        model = read_model_file(joinpath(DATA, "model_eam_nn_2elements.hybridpot.lmp"))
        structure = JSON.parsefile(joinpath(DATA, "model_eam_nn_2elements.json"))["structures"][1]
        positions, cell = read_floats(structure["positions"]), read_floats(structure["cell"])
        pbc, symbols = Tuple(Bool.(structure["pbc"])), structure["symbols"]
        forces = evaluate(model, positions, cell, pbc, symbols).forces
        h = 1e-5
        for atom in (1, 2), a in 1:3
            moved = copy(positions)
            moved[a, atom] += h
            up = evaluate(model, moved, cell, pbc, symbols).energy
            moved[a, atom] -= 2h
            numeric = -(up - evaluate(model, moved, cell, pbc, symbols).energy) / (2h)
            @test abs(forces[a, atom] - numeric) <= 1e-6 * max(1.0, maximum(abs, forces))
        end
    end

    @testset "AtomsCalculators interface" begin
        case = JSON.parsefile(joinpath(DATA, "model_eam_linear_1element.json"))
        structure = case["structures"][1]
        @test all(structure["pbc"])
        positions, cell = read_floats(structure["positions"]), read_floats(structure["cell"])
        atoms = [Symbol(symbol) => SVector{3}(positions[:, a]) * u"Å" for (a, symbol) in enumerate(structure["symbols"])]
        system = AtomsBase.periodic_system(atoms, [SVector{3}(cell[:, k]) * u"Å" for k in 1:3])
        calc = HybridPotCalculator(joinpath(DATA, case["model_file"]))
        energy = AtomsCalculators.potential_energy(system, calc)
        @test isapprox(ustrip(u"eV", energy), structure["energy"]; rtol=RTOL)
        forces = AtomsCalculators.forces(system, calc)
        @test length(forces) == length(system)
        @test close_to(reduce(hcat, [ustrip.(u"eV/Å", f) for f in forces]), read_floats(structure["forces"]))
        both = AtomsCalculators.energy_forces(system, calc)
        @test both.energy == energy
        @test AtomsCalculators.calculate(AtomsCalculators.Energy(), system, calc).energy == energy
    end

    @testset "model file errors" begin
        original = read(joinpath(DATA, "model_none_nn_1element.hybridpot.lmp"), String)
        lines = split(original, '\n'; limit=3)  # magic, checksum, body
        body = lines[3]
        resigned(new_body) = "hybridpot-lammps 1\nsha256 " * bytes2hex(sha256(Vector{UInt8}(new_body))) * "\n" * new_body
        mktempdir() do dir
            write_and_read(text) = (path = joinpath(dir, "m.hybridpot.lmp"); write(path, text); read_model_file(path))
            @test write_and_read(original) isa HybridModel
            # an edited body no longer matches its checksum
            @test_throws ModelFileError write_and_read(replace(original, "cutoff 4.0" => "cutoff 4.5"))
            @test_throws ModelFileError write_and_read(replace(original, "hybridpot-lammps 1" => "hybridpot-lammps 2"))
            @test_throws ModelFileError write_and_read(replace(original, "hybridpot-lammps 1" => "something-else 1"))
            @test_throws ModelFileError write_and_read(resigned(replace(body, "baseline none" => "baseline tersoff")))
            @test_throws ModelFileError write_and_read(resigned(replace(body, "invariants power" => "invariants bispectrum")))
            @test_throws ModelFileError write_and_read(resigned(replace(body, "fallback none" => "fallback gamma 8 1.0 2.0")))
            @test_throws ModelFileError write_and_read(resigned(replace(body, "\nend" => "\n")))
            try
                write_and_read(resigned(replace(body, "baseline none" => "baseline tersoff")))
            catch err
                @test occursin("Tersoff", sprint(showerror, err))
            end
        end
    end

    @testset "element not in the model" begin
        model = read_model_file(joinpath(DATA, "model_none_nn_1element.hybridpot.lmp"))
        @test_throws ArgumentError evaluate(model, zeros(3, 1), zeros(3, 3), (false, false, false), ["Zr"])
    end
end
