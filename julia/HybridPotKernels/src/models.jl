# Per-element residual models on the features B (hybridpot.models): E_t(B) and dE/dB, on the host.
#
#     linear:     E = b0 + sum_k b_k B_k
#     quadratic:  E = b0 + sum_k b_k B_k + sum_{k <= l} q_kl f_kl,  f_kk = B_k^2 / 2,  f_kl = B_k B_l,
#                 (k, l) over the upper triangle row by row (the LAMMPS ML-IAP order)
#     nn:         x = (B - shift) ./ scale, h = act(W h + b) per hidden layer, a linear output node
#     committee:  the mean of the members
#
# Energies in eV; B in the unit of the descriptor; dE/dB in eV per unit of B.

"""Abstract type of the residual models read from a model file."""
abstract type ResidualModel end

"""
    LinearModel(coefficients)

`coefficients` (1 + K, T): column t is element t's row [b0, b_1, ..., b_K] of the model file.
"""
struct LinearModel <: ResidualModel
    coefficients::Matrix{Float64}
end

"""
    QuadraticModel(coefficients, n_features)

`coefficients` (1 + K + K (K + 1) / 2, T): [b0, b, q in the upper-triangle order] per element.
"""
struct QuadraticModel <: ResidualModel
    coefficients::Matrix{Float64}
    n_features::Int
end

"""One dense layer: `weight` (out, in), `bias` (out,)."""
struct DenseLayer
    weight::Matrix{Float64}
    bias::Vector{Float64}
end

"""
    NNModel(activation, shift, scale, layers)

Per-element networks: `shift`, `scale` (K, T); `layers[t]` the hidden layers then the output node
(out = 1) of element t; `activation` one of `:tanh`, `:sigmoid`, `:relu`, `:linear` (hidden layers only).
"""
struct NNModel <: ResidualModel
    activation::Symbol
    shift::Matrix{Float64}
    scale::Matrix{Float64}
    layers::Vector{Vector{DenseLayer}}
end

"""The mean of its member models."""
struct CommitteeModel <: ResidualModel
    members::Vector{ResidualModel}
end

const ACTIVATIONS = (:tanh, :sigmoid, :relu, :linear)

"""
    residual_energies!(energies, gradient, model, B, types) -> energies

Per-atom energies `energies` (N,), eV, and `gradient` = dE_i/dB_i (K, N) for features `B` (K, N) and
1-based element indices `types` (N,). Host arrays.
"""
function residual_energies!(energies::AbstractVector{Float64}, gradient::AbstractMatrix{Float64}, model::LinearModel,
                            B::AbstractMatrix{Float64}, types::AbstractVector{<:Integer})
    coef = model.coefficients
    _check_model_shapes(coef, size(B, 1) + 1, B, types, energies, gradient)
    @inbounds for i in axes(B, 2)
        t = types[i]
        e = coef[1, t]
        for k in axes(B, 1)
            e += coef[k + 1, t] * B[k, i]
            gradient[k, i] = coef[k + 1, t]
        end
        energies[i] = e
    end
    return energies
end

function residual_energies!(energies::AbstractVector{Float64}, gradient::AbstractMatrix{Float64}, model::QuadraticModel,
                            B::AbstractMatrix{Float64}, types::AbstractVector{<:Integer})
    coef, n_k = model.coefficients, model.n_features
    size(B, 1) == n_k || throw(DimensionMismatch("quadratic model on $n_k features, B has $(size(B, 1))"))
    _check_model_shapes(coef, 1 + n_k + n_k * (n_k + 1) ÷ 2, B, types, energies, gradient)
    @inbounds for i in axes(B, 2)
        t = types[i]
        e = coef[1, t]
        for k in 1:n_k
            e += coef[k + 1, t] * B[k, i]
            gradient[k, i] = coef[k + 1, t]
        end
        column = n_k + 2
        for k in 1:n_k, l in k:n_k
            q = coef[column, t]
            column += 1
            if k == l
                e += q * (B[k, i] * B[k, i] / 2)
                gradient[k, i] += q * B[k, i]
            else
                e += q * (B[k, i] * B[l, i])
                gradient[k, i] += q * B[l, i]
                gradient[l, i] += q * B[k, i]
            end
        end
        energies[i] = e
    end
    return energies
end

function residual_energies!(energies::AbstractVector{Float64}, gradient::AbstractMatrix{Float64}, model::NNModel,
                            B::AbstractMatrix{Float64}, types::AbstractVector{<:Integer})
    n_k = size(model.shift, 1)
    size(B, 1) == n_k || throw(DimensionMismatch("nn model on $n_k features, B has $(size(B, 1))"))
    length(energies) == length(types) == size(B, 2) && size(gradient) == size(B) || throw(DimensionMismatch("energies, gradient, B and types disagree"))
    all(t -> 1 <= t <= length(model.layers), types) || throw(ArgumentError("element index outside 1:$(length(model.layers))"))
    for t in eachindex(model.layers)
        atoms = findall(==(t), types)
        isempty(atoms) && continue
        x = (B[:, atoms] .- model.shift[:, t]) ./ model.scale[:, t]
        e, dx = _network_energy_gradient(model.layers[t], model.activation, x)
        energies[atoms] .= e
        gradient[:, atoms] .= dx ./ model.scale[:, t]
    end
    return energies
end

function residual_energies!(energies::AbstractVector{Float64}, gradient::AbstractMatrix{Float64}, model::CommitteeModel,
                            B::AbstractMatrix{Float64}, types::AbstractVector{<:Integer})
    isempty(model.members) && throw(ArgumentError("a committee needs at least one member"))
    fill!(energies, 0.0)
    fill!(gradient, 0.0)
    e, g = similar(energies), similar(gradient)
    for member in model.members
        residual_energies!(e, g, member, B, types)
        energies .+= e
        gradient .+= g
    end
    energies ./= length(model.members)
    gradient ./= length(model.members)
    return energies
end

"""Forward and backward pass of one network on inputs `x` (K, n): energies (n,) and dE/dx (K, n)."""
function _network_energy_gradient(layers::Vector{DenseLayer}, activation::Symbol, x::Matrix{Float64})
    inputs = Matrix{Float64}[]   # the input of each layer
    slopes = Matrix{Float64}[]   # act'(W h + b) of each hidden layer
    h = x
    for layer in layers[1:end-1]
        push!(inputs, h)
        z = layer.weight * h .+ layer.bias
        h = _activate(activation, z)
        push!(slopes, _activation_slope(activation, z, h))
    end
    output = layers[end]
    energies = vec(output.weight * h .+ output.bias)
    delta = repeat(permutedims(output.weight), 1, size(x, 2))  # dE/dh of the last hidden layer, (width, n)
    for k in length(layers)-1:-1:1
        delta = permutedims(layers[k].weight) * (delta .* slopes[k])
    end
    return energies, delta
end

function _activate(kind::Symbol, z::Matrix{Float64})
    kind === :tanh && return tanh.(z)
    kind === :sigmoid && return @. 1 / (1 + exp(-z))
    kind === :relu && return max.(z, 0.0)
    kind === :linear && return copy(z)
    throw(ArgumentError("unknown activation $kind; expected one of $(ACTIVATIONS)"))
end

function _activation_slope(kind::Symbol, z::Matrix{Float64}, h::Matrix{Float64})
    kind === :tanh && return @. 1 - h * h
    kind === :sigmoid && return @. h * (1 - h)
    kind === :relu && return Float64.(z .> 0)  # torch's convention: slope 0 at z = 0
    kind === :linear && return ones(size(z))
    throw(ArgumentError("unknown activation $kind; expected one of $(ACTIVATIONS)"))
end

function _check_model_shapes(coef::Matrix{Float64}, n_params::Int, B, types, energies, gradient)
    size(coef, 1) == n_params || throw(DimensionMismatch("model rows have $(size(coef, 1)) numbers, expected $n_params for K = $(size(B, 1))"))
    length(energies) == length(types) == size(B, 2) && size(gradient) == size(B) || throw(DimensionMismatch("energies, gradient, B and types disagree"))
    all(t -> 1 <= t <= size(coef, 2), types) || throw(ArgumentError("element index outside 1:$(size(coef, 2))"))
    return nothing
end
