# The so3 contract on a CUDA GPU against the same conformance data (not part of Pkg.test: it needs
# CUDA.jl and a GPU). In an environment with CUDA, JSON and HybridPotKernels (developed from this
# folder's parent):
#
#     julia --project=ENV julia/HybridPotKernels/test/cuda.jl
#
# The kernels are the ones runtests.jl checks on the CPU; only the backend changes.

using CUDA
using HybridPotKernels
using JSON
using Test

CUDA.functional() || error("CUDA.jl reports no functional GPU here")

const DATA = joinpath(@__DIR__, "data")
read_floats(x) = reshape(Float64.(x["data"]), reverse(Int.(x["shape"]))...)
read_ints(x) = reshape(Int.(x["data"]), reverse(Int.(x["shape"]))...)
close_to(a, b; rtol=1e-12) = size(a) == size(b) && maximum(abs.(a .- b); init=0.0) <= rtol * max(maximum(abs, b; init=0.0), floatmin(Float64))

@testset "so3 contract on CUDA: $file" for file in sort(filter(f -> startswith(f, "so3_") && endswith(f, ".json"), readdir(DATA)))
    backend = CUDABackend()
    case = JSON.parsefile(joinpath(DATA, file))
    s, p = case["spline"], case["power"]
    spline = to_backend(backend, RadialSpline(read_floats(s["coefficients"]), s["spacing"], s["rcut"], s["nmax"], s["lmax"]))
    table = to_backend(backend, PowerTable(Int32.(read_ints(p["a"]) .+ 1), Int32.(read_ints(p["b"]) .+ 1), Int32.(read_ints(p["l"])), read_floats(p["norm"])))
    for structure in case["structures"]
        gpu(x) = to_backend(backend, x)
        channels = structure["channels"] === nothing ? nothing : gpu(Int32.(read_ints(structure["channels"]) .+ 1))
        evaluation = so3_descriptors(gpu(read_floats(structure["vectors"])), gpu(Int32.(read_ints(structure["centers"]) .+ 1)),
                                     gpu(read_floats(structure["weights"])), channels, structure["n_atoms"], spline, table)
        @test evaluation.c isa CuArray
        @test close_to(Array(evaluation.c), read_floats(structure["c"]))
        @test close_to(Array(evaluation.B), read_floats(structure["B"]))
        vjp = so3_vjp(gpu(read_floats(structure["dE_dB"])), evaluation)
        @test close_to(Array(vjp.dc), read_floats(structure["dE_dc"]))
        @test close_to(Array(vjp.dr), read_floats(structure["dE_dr"]))
    end
end
