# Reader of the `hybridpot-lammps` model file, version 1 (lammps-plugin/FORMAT.md): the file the LAMMPS
# plugin reads, written by `hybridpot export --lammps`.
#
# Supported: descriptor so3 with `invariants power`; models linear, quadratic, nn and committees of
# them; `fallback none`; baselines none, eam and lj. Refused with a ModelFileError naming the file and
# the reason: a wrong magic word, an unknown version, a checksum mismatch, the bispectrum, a gamma
# fallback, the Tersoff baseline, and anything malformed (counts, unknown keywords, bad numbers).

"""An error in a model file: `path` and what is wrong."""
struct ModelFileError <: Exception
    path::String
    message::String
end
Base.showerror(io::IO, e::ModelFileError) = print(io, "ModelFileError: ", e.path, ": ", e.message)

"""
    SO3Descriptor

The descriptor section: `rcut` (Angstrom), `nmax`, `lmax`, `n_channels`, per element the neighbour
`weights` and the 1-based density `channel`, the radial [`RadialSpline`](@ref) and the power
[`PowerTable`](@ref) (host arrays).
"""
struct SO3Descriptor
    rcut::Float64
    nmax::Int
    lmax::Int
    n_channels::Int
    weights::Vector{Float64}
    channel::Vector{Int32}
    spline::RadialSpline{Float64,Array{Float64,3}}
    table::PowerTable{Vector{Int32},Vector{Float64}}
end

"""
    HybridModel

A model file read by [`read_model_file`](@ref): `elements` (symbols, element index = position),
`cutoff` (Angstrom, the largest interaction distance), the [`SO3Descriptor`](@ref), the
[`ResidualModel`](@ref) and the [`Baseline`](@ref); `path` for messages.
"""
struct HybridModel{M<:ResidualModel,B<:Baseline}
    elements::Vector{String}
    cutoff::Float64
    descriptor::SO3Descriptor
    model::M
    baseline::B
    path::String
end

const MAGIC = "hybridpot-lammps"
const SUPPORTED_VERSION = 1

"""Whitespace-separated tokens of the body (comments removed) and the reading position."""
mutable struct TokenStream
    tokens::Vector{SubString{String}}
    position::Int
    path::String
end

function _tokens(body::String, path::String)
    tokens = SubString{String}[]
    for line in eachsplit(body, '\n')
        hash = findfirst('#', line)
        content = hash === nothing ? line : line[1:prevind(line, hash)]
        append!(tokens, split(content))
    end
    return TokenStream(tokens, 1, path)
end

_fail(ts::TokenStream, message::AbstractString) = throw(ModelFileError(ts.path, "token $(ts.position): " * message))

_peek(ts::TokenStream) = ts.position <= length(ts.tokens) ? ts.tokens[ts.position] : nothing

function _next!(ts::TokenStream, what::AbstractString)
    ts.position <= length(ts.tokens) || throw(ModelFileError(ts.path, "the file ends where $what was expected"))
    token = ts.tokens[ts.position]
    ts.position += 1
    return token
end

function _expect!(ts::TokenStream, keyword::AbstractString)
    token = _next!(ts, "'$keyword'")
    token == keyword || _fail(ts, "expected '$keyword', found '$token'")
    return nothing
end

"""Consume `keyword` if it is the next token (for the optional labels some writers may put before a block)."""
_optional!(ts::TokenStream, keyword::AbstractString) = (_peek(ts) == keyword && (ts.position += 1); nothing)

function _integer!(ts::TokenStream, what::AbstractString; minimum::Int=typemin(Int))
    token = _next!(ts, what)
    value = tryparse(Int, token)
    value === nothing && _fail(ts, "$what must be an integer, found '$token'")
    value >= minimum || _fail(ts, "$what must be >= $minimum, got $value")
    return value
end

function _float!(ts::TokenStream, what::AbstractString)
    token = _next!(ts, what)
    value = tryparse(Float64, token)
    (value === nothing || !isfinite(value)) && _fail(ts, "$what must be a finite number, found '$token'")
    return value
end

_floats!(ts::TokenStream, n::Integer, what::AbstractString) = [_float!(ts, "$what ($k of $n)") for k in 1:n]
_integers!(ts::TokenStream, n::Integer, what::AbstractString) = [_integer!(ts, "$what ($k of $n)") for k in 1:n]

"""
    read_model_file(path) -> HybridModel

Read and check a `hybridpot-lammps` version-1 file (header, SHA-256 of the body, every section).
"""
function read_model_file(path::AbstractString)
    path = String(path)
    isfile(path) || throw(ModelFileError(path, "no such file"))
    text = read(path, String)
    first_end = findfirst('\n', text)
    first_end === nothing && throw(ModelFileError(path, "not a hybridpot-lammps file (no header line)"))
    header = split(text[1:prevind(text, first_end)])
    (length(header) >= 1 && header[1] == MAGIC) ||
        throw(ModelFileError(path, "not a hybridpot-lammps file (first word '$(isempty(header) ? "" : header[1])', expected '$MAGIC')"))
    version = length(header) >= 2 ? tryparse(Int, header[2]) : nothing
    version == SUPPORTED_VERSION ||
        throw(ModelFileError(path, "format version $(length(header) >= 2 ? header[2] : "missing") is not supported (this reader knows version $SUPPORTED_VERSION)"))
    second_end = findnext('\n', text, nextind(text, first_end))
    second_end === nothing && throw(ModelFileError(path, "missing the sha256 line"))
    checksum = split(text[nextind(text, first_end):prevind(text, second_end)])
    (length(checksum) == 2 && checksum[1] == "sha256" && occursin(r"^[0-9a-f]{64}$", checksum[2])) ||
        throw(ModelFileError(path, "second line must be 'sha256 <64 lower-case hex digits>'"))
    body = text[nextind(text, second_end):end]
    actual = bytes2hex(sha256(Vector{UInt8}(body)))
    actual == checksum[2] || throw(ModelFileError(path, "checksum mismatch: the file says $(checksum[2]), its body hashes to $actual (edited or truncated?)"))
    return _parse_body(_tokens(body, path))
end

function _parse_body(ts::TokenStream)
    _expect!(ts, "elements")
    n_types = _integer!(ts, "the number of elements"; minimum=1)
    elements = [String(_next!(ts, "an element symbol")) for _ in 1:n_types]
    allunique(elements) || _fail(ts, "elements listed twice: $elements")
    _expect!(ts, "cutoff")
    cutoff = _float!(ts, "the cutoff")
    cutoff > 0 || _fail(ts, "the cutoff must be positive")
    descriptor = _parse_descriptor(ts, n_types)
    model = _parse_model(ts, n_types, n_features(descriptor.table))
    _parse_fallback(ts, n_types, n_features(descriptor.table))
    baseline = _parse_baseline(ts, n_types)
    _expect!(ts, "end")
    _peek(ts) === nothing || _fail(ts, "unexpected '$(_peek(ts))' after 'end'")
    max(descriptor.rcut, baseline_cutoff(baseline)) <= cutoff * (1 + 1e-12) ||
        _fail(ts, "the cutoff $cutoff is smaller than the descriptor's ($(descriptor.rcut)) or the baseline's ($(baseline_cutoff(baseline)))")
    return HybridModel(elements, cutoff, descriptor, model, baseline, ts.path)
end

function _parse_descriptor(ts::TokenStream, n_types::Int)
    _expect!(ts, "descriptor")
    kind = _next!(ts, "the descriptor kind")
    kind == "so3" || _fail(ts, "descriptor '$kind' is not supported (only so3)")
    _expect!(ts, "rcut")
    rcut = _float!(ts, "rcut")
    _expect!(ts, "nmax")
    nmax = _integer!(ts, "nmax"; minimum=1)
    _expect!(ts, "lmax")
    lmax = _integer!(ts, "lmax"; minimum=0)
    _expect!(ts, "channels")
    n_channels = _integer!(ts, "channels"; minimum=1)
    _expect!(ts, "weights")
    weights = _floats!(ts, n_types, "neighbour weights")
    _expect!(ts, "channel")
    channel = _integers!(ts, n_types, "element channels")
    all(c -> 0 <= c < n_channels, channel) || _fail(ts, "element channels must lie in 0:$(n_channels - 1), got $channel")
    _expect!(ts, "spline")
    n_int = _integer!(ts, "the number of spline intervals"; minimum=1)
    spacing = _float!(ts, "the spline spacing")
    isapprox(n_int * spacing, rcut; rtol=1e-12) || _fail(ts, "spline: $n_int intervals of $spacing A do not span rcut = $rcut")
    n_q = nmax * (lmax + 1)
    # file order [interval][k][n (lmax + 1) + l] is Julia's (q, k, interval) column-major
    coefficients = reshape(_floats!(ts, n_int * 6 * n_q, "spline coefficients"), n_q, 6, n_int)
    spline = RadialSpline(coefficients, spacing, rcut, nmax, lmax)
    table = _parse_invariants(ts, n_channels * nmax, lmax)
    return SO3Descriptor(rcut, nmax, lmax, n_channels, weights, Int32.(channel .+ 1), spline, table)
end

function _parse_invariants(ts::TokenStream, n_radial::Int, lmax::Int)
    _expect!(ts, "invariants")
    kind = _next!(ts, "the invariants kind")
    kind == "bispectrum" && _fail(ts, "bispectrum invariants are not supported by HybridPotKernels (power spectrum only); evaluate this model with hybridpot or the LAMMPS plugin")
    kind == "power" || _fail(ts, "unknown invariants '$kind' (expected power)")
    n_k = _integer!(ts, "the number of features"; minimum=1)
    a, b, l, factor = Int32[], Int32[], Int32[], Float64[]
    for k in 1:n_k
        ak, bk, lk = _integer!(ts, "a of feature $k"), _integer!(ts, "b of feature $k"), _integer!(ts, "l of feature $k")
        (0 <= ak < n_radial && 0 <= bk < n_radial && 0 <= lk <= lmax) ||
            _fail(ts, "feature $k refers to channels ($ak, $bk) or order $lk outside 0:$(n_radial - 1), 0:$lmax")
        push!(a, ak + 1)
        push!(b, bk + 1)
        push!(l, lk)
        push!(factor, _float!(ts, "norm of feature $k"))
    end
    maximum(a) == n_radial || _fail(ts, "the power table never uses radial channel $(n_radial - 1) of $n_radial")
    return PowerTable(a, b, l, factor)
end

function _parse_model(ts::TokenStream, n_types::Int, n_k::Int)
    _expect!(ts, "model")
    return _parse_model_body(ts, n_types, n_k)
end

function _parse_model_body(ts::TokenStream, n_types::Int, n_k::Int)
    kind = _next!(ts, "the model kind")
    if kind == "linear" || kind == "quadratic"
        n_params = _integer!(ts, "the number of model parameters"; minimum=1)
        expected = kind == "linear" ? 1 + n_k : 1 + n_k + n_k * (n_k + 1) ÷ 2
        n_params == expected || _fail(ts, "a $kind model on K = $n_k features has $expected parameters per element, the file says $n_params")
        coefficients = reshape(_floats!(ts, n_types * n_params, "$kind coefficients"), n_params, n_types)
        return kind == "linear" ? LinearModel(coefficients) : QuadraticModel(coefficients, n_k)
    elseif kind == "nn"
        n_hidden = _integer!(ts, "the number of hidden layers"; minimum=0)
        widths = [_integer!(ts, "the width of hidden layer $h"; minimum=1) for h in 1:n_hidden]
        activation = Symbol(_next!(ts, "the activation"))
        activation in ACTIVATIONS || _fail(ts, "activation '$activation' is not one of $(ACTIVATIONS)")
        shift, scale = zeros(n_k, n_types), zeros(n_k, n_types)
        layers = Vector{Vector{DenseLayer}}(undef, n_types)
        sizes = vcat(n_k, widths, 1)
        for t in 1:n_types
            _optional!(ts, "shift")
            shift[:, t] = _floats!(ts, n_k, "nn input shift of element $t")
            _optional!(ts, "scale")
            scale[:, t] = _floats!(ts, n_k, "nn input scale of element $t")
            all(!iszero, scale[:, t]) || _fail(ts, "nn input scale of element $t has a zero")
            layers[t] = DenseLayer[]
            for k in 1:length(sizes)-1
                n_in, n_out = sizes[k], sizes[k + 1]
                _optional!(ts, "weight")
                # row-major (out, in) in the file: read as (in, out) column-major, then transpose
                weight = permutedims(reshape(_floats!(ts, n_out * n_in, "nn weight of element $t, layer $k"), n_in, n_out))
                _optional!(ts, "bias")
                bias = _floats!(ts, n_out, "nn bias of element $t, layer $k")
                push!(layers[t], DenseLayer(weight, bias))
            end
        end
        return NNModel(activation, shift, scale, layers)
    elseif kind == "committee"
        n_members = _integer!(ts, "the number of committee members"; minimum=1)
        members = ResidualModel[]
        for _ in 1:n_members
            _optional!(ts, "model")
            push!(members, _parse_model_body(ts, n_types, n_k))
        end
        return CommitteeModel(members)
    end
    _fail(ts, "unknown model '$kind' (expected linear, quadratic, nn or committee)")
end

function _parse_fallback(ts::TokenStream, n_types::Int, n_k::Int)
    _expect!(ts, "active_set")
    if _peek(ts) == "none"
        ts.position += 1
    else
        m = _integer!(ts, "the active-set size"; minimum=1)
        m == n_k + 1 || _fail(ts, "the active set must be (K + 1) x (K + 1) = $(n_k + 1), the file says $m")
        _floats!(ts, n_types * m * m, "active-set inverses")  # read and checked; used only by the fallback
    end
    _expect!(ts, "fallback")
    kind = _next!(ts, "the fallback kind")
    kind == "none" && return nothing
    kind == "gamma" && _fail(ts, "the extrapolation fallback ('fallback gamma') is not implemented in HybridPotKernels; export the model without it")
    _fail(ts, "unknown fallback '$kind'")
end

function _parse_baseline(ts::TokenStream, n_types::Int)
    _expect!(ts, "baseline")
    kind = _next!(ts, "the baseline kind")
    kind == "none" && return NoBaseline()
    if kind == "eam"
        nrho = _integer!(ts, "NRHO"; minimum=2)
        drho = _float!(ts, "DRHO")
        nr = _integer!(ts, "NR"; minimum=2)
        dr = _float!(ts, "DR")
        cutoff = _float!(ts, "the EAM cutoff")
        rhomax = _float!(ts, "RHOMAX")
        scale = _float!(ts, "SCALE")
        (drho > 0 && dr > 0 && cutoff > 0) || _fail(ts, "DRHO, DR and the EAM cutoff must be positive")
        n_pairs = n_types * (n_types + 1) ÷ 2
        _expect!(ts, "frho")
        frho = reshape(_floats!(ts, n_types * (nrho - 1) * 4, "frho coefficients"), 4, nrho - 1, n_types)
        _expect!(ts, "rhor")
        rhor = reshape(_floats!(ts, n_types * (nr - 1) * 4, "rhor coefficients"), 4, nr - 1, n_types)
        _expect!(ts, "z2r")
        z2r = reshape(_floats!(ts, n_pairs * (nr - 1) * 4, "z2r coefficients"), 4, nr - 1, n_pairs)
        return EAMBaseline(frho, rhor, z2r, drho, dr, cutoff, rhomax, scale)
    elseif kind == "lj"
        shift = _integer!(ts, "the LJ shift flag")
        shift in (0, 1) || _fail(ts, "the LJ shift flag must be 0 or 1, got $shift")
        n_pairs = n_types * (n_types + 1) ÷ 2
        epsilon, sigma, cut = zeros(n_pairs), zeros(n_pairs), zeros(n_pairs)
        for k in 1:n_pairs
            epsilon[k] = _float!(ts, "LJ epsilon of pair $k")
            sigma[k] = _float!(ts, "LJ sigma of pair $k")
            cut[k] = _float!(ts, "LJ cutoff of pair $k")
            (sigma[k] > 0 && cut[k] > 0 && epsilon[k] >= 0) || _fail(ts, "LJ pair $k needs sigma > 0, cutoff > 0, epsilon >= 0")
        end
        return LJBaseline(epsilon, sigma, cut, shift == 1, n_types)
    elseif kind == "tersoff"
        _fail(ts, "the Tersoff baseline is not implemented in HybridPotKernels (EAM, LJ or none); evaluate this model with hybridpot or the LAMMPS plugin")
    end
    _fail(ts, "unknown baseline '$kind' (expected none, eam, lj or tersoff)")
end
