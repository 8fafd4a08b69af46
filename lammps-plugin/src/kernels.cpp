// Per-atom math of the hybrid: see model.h. Each function mirrors the hybridpot Python code named in
// its comment, operation for operation where the order of floating-point operations matters little
// (agreement is checked to 1e-10 relative against hybridpot by the plugin's tests).
#include "model.h"

#include <algorithm>
#include <cmath>

namespace hybridpot {

// ------------------------------------------------------------------ radial spline
// hybridpot.descriptors.spline.RadialSpline.forward: s = r / h, i = clamp(floor(s), 0, n - 1), t = s - i

void RadialSpline::values(double r, double *g) const
{
  const double s = r / h;
  const int i = std::min(std::max(static_cast<int>(std::floor(s)), 0), n_intervals - 1);
  const double t = s - i;
  const double *c = coef.data() + size_t(i) * 6 * nq;
  // Horner's rule, the functions q in the inner loop (contiguous: vectorised)
  for (int q = 0; q < nq; ++q) g[q] = c[5 * nq + q];
  for (int k = 4; k >= 0; --k) {
    const double *ck = c + k * nq;
    for (int q = 0; q < nq; ++q) g[q] = ck[q] + g[q] * t;
  }
}

void RadialSpline::values_and_derivatives(double r, double *g, double *dg) const
{
  const double s = r / h;
  const int i = std::min(std::max(static_cast<int>(std::floor(s)), 0), n_intervals - 1);
  const double t = s - i;
  const double *c = coef.data() + size_t(i) * 6 * nq;
  for (int q = 0; q < nq; ++q) {
    g[q] = c[5 * nq + q];
    dg[q] = 5.0 * c[5 * nq + q];
  }
  for (int k = 4; k >= 1; --k) {
    const double *ck = c + k * nq;
    for (int q = 0; q < nq; ++q) {
      g[q] = ck[q] + g[q] * t;
      dg[q] = k * ck[q] + dg[q] * t;
    }
  }
  for (int q = 0; q < nq; ++q) {
    g[q] = c[q] + g[q] * t;
    dg[q] = dg[q] / h;
  }
}

// ------------------------------------------------------------------ spherical harmonics
// Solid harmonics R_lm = N_lm q_l^|m| {c_m | 1 | s_|m|} with (x + i y)^m = c_m + i s_m and
// q_l^m = r^(l-m) d^m P_l / dt^m (z / r), the Legendre polynomial's m-th derivative (no Condon-Shortley
// phase). Recurrences: q_m^m = (2m - 1)!!, q_{m+1}^m = (2m + 1) z q_m^m,
// (l - m) q_l^m = (2l - 1) z q_{l-1}^m - (l + m - 1) r^2 q_{l-2}^m. Gradients of the homogeneous
// polynomials: dq_l^m/dx = -x q_{l-1}^{m+1}, dq_l^m/dy = -y q_{l-1}^{m+1}, dq_l^m/dz = (l + m) q_{l-1}^m,
// dc_m/dx = m c_{m-1}, dc_m/dy = -m s_{m-1}, ds_m/dx = m s_{m-1}, ds_m/dy = m c_{m-1}.
// On the unit sphere Y = R(u), and dY/dr = (grad R(u) - l Y u) / |r|.

void SphericalHarmonics::init(int lmax_)
{
  lmax = lmax_;
  norm.assign((lmax + 1) * (lmax + 2) / 2, 0.0);
  const double pi = 3.14159265358979323846;
  for (int l = 0; l <= lmax; ++l)
    for (int m = 0; m <= l; ++m) {
      double ratio = 1.0;    // (l - m)! / (l + m)!
      for (int k = l - m + 1; k <= l + m; ++k) ratio /= k;
      double v = std::sqrt((2 * l + 1) / (4.0 * pi) * ratio);
      norm[l * (l + 1) / 2 + m] = m > 0 ? v * std::sqrt(2.0) : v;
    }
  const int stride = lmax + 2;
  rec_a.assign(stride * stride, 0.0);
  rec_b.assign(stride * stride, 0.0);
  for (int m = 0; m <= lmax; ++m)
    for (int l = m + 2; l <= lmax; ++l) {
      rec_a[l * stride + m] = double(2 * l - 1) / (l - m);
      rec_b[l * stride + m] = double(l + m - 1) / (l - m);
    }
}

namespace {

// q[l * (lmax + 2) + m] for 0 <= m <= l (entries past the diagonal are not set: they are zero) at the unit
// vector's z, with the recurrence coefficients a = (2l - 1) / (l - m), b = (l + m - 1) / (l - m) precomputed;
// cs = [c_0 .. c_lmax | s_0 .. s_lmax]
void legendre_table(int lmax, const double *rec_a, const double *rec_b, double x, double y, double z, double *q, double *cs)
{
  const int stride = lmax + 2;
  q[0] = 1.0;
  for (int m = 1; m <= lmax; ++m) q[m * stride + m] = (2 * m - 1) * q[(m - 1) * stride + (m - 1)];
  for (int m = 0; m < lmax; ++m) q[(m + 1) * stride + m] = (2 * m + 1) * z * q[m * stride + m];
  for (int m = 0; m <= lmax; ++m)
    for (int l = m + 2; l <= lmax; ++l)
      q[l * stride + m] = rec_a[l * stride + m] * z * q[(l - 1) * stride + m] - rec_b[l * stride + m] * q[(l - 2) * stride + m];
  double *c = cs, *s = cs + lmax + 1;
  c[0] = 1.0;
  s[0] = 0.0;
  for (int m = 1; m <= lmax; ++m) {
    c[m] = x * c[m - 1] - y * s[m - 1];
    s[m] = x * s[m - 1] + y * c[m - 1];
  }
}

}    // namespace

void SphericalHarmonics::values(const double u[3], double *Y, double *q, double *cs) const
{
  legendre_table(lmax, rec_a.data(), rec_b.data(), u[0], u[1], u[2], q, cs);
  const int stride = lmax + 2;
  const double *c = cs, *s = cs + lmax + 1;
  for (int l = 0; l <= lmax; ++l) {
    const int centre = l * l + l;
    const double *n = norm.data() + l * (l + 1) / 2;
    Y[centre] = n[0] * q[l * stride];
    for (int m = 1; m <= l; ++m) {
      const double nq = n[m] * q[l * stride + m];
      Y[centre + m] = nq * c[m];
      Y[centre - m] = nq * s[m];
    }
  }
}

void SphericalHarmonics::values_and_gradients(const double r[3], double rnorm, double *Y, double *dY, double *q,
                                              double *cs) const
{
  const double inv = 1.0 / rnorm;
  const double x = r[0] * inv, y = r[1] * inv, z = r[2] * inv;
  legendre_table(lmax, rec_a.data(), rec_b.data(), x, y, z, q, cs);
  const int stride = lmax + 2, L2 = (lmax + 1) * (lmax + 1);
  const double *c = cs, *s = cs + lmax + 1;
  double *dx = dY, *dy = dY + L2, *dz = dY + 2 * L2;
  Y[0] = norm[0];
  dx[0] = dy[0] = dz[0] = 0.0;
  for (int l = 1; l <= lmax; ++l) {
    const int centre = l * l + l;
    const double *n = norm.data() + l * (l + 1) / 2;
    const double *ql = q + l * stride, *qd = q + (l - 1) * stride;    // q_l^m and q_{l-1}^m
    // m = 0
    {
      const double v = n[0] * ql[0];
      const double q1 = l >= 2 ? qd[1] : 0.0;    // q_{l-1}^1 (zero for l = 1)
      const double gx = -n[0] * x * q1, gy = -n[0] * y * q1, gz = n[0] * l * qd[0];
      Y[centre] = v;
      dx[centre] = (gx - l * v * x) * inv;
      dy[centre] = (gy - l * v * y) * inv;
      dz[centre] = (gz - l * v * z) * inv;
    }
    for (int m = 1; m <= l; ++m) {
      const double a = n[m] * ql[m];                  // N q_l^m
      const double qup = m + 1 <= l - 1 ? qd[m + 1] : 0.0;    // q_{l-1}^{m+1}, zero past the diagonal
      const double qm = m <= l - 1 ? qd[m] : 0.0;             // q_{l-1}^m
      const double ax = -n[m] * x * qup;        // N dq/dx
      const double ay = -n[m] * y * qup;        // N dq/dy
      const double az = n[m] * (l + m) * qm;    // N dq/dz
      // cosine part (m > 0)
      double v = a * c[m];
      double gx = ax * c[m] + a * m * c[m - 1];
      double gy = ay * c[m] - a * m * s[m - 1];
      double gz = az * c[m];
      Y[centre + m] = v;
      dx[centre + m] = (gx - l * v * x) * inv;
      dy[centre + m] = (gy - l * v * y) * inv;
      dz[centre + m] = (gz - l * v * z) * inv;
      // sine part (m < 0)
      v = a * s[m];
      gx = ax * s[m] + a * m * s[m - 1];
      gy = ay * s[m] + a * m * c[m - 1];
      gz = az * s[m];
      Y[centre - m] = v;
      dx[centre - m] = (gx - l * v * x) * inv;
      dy[centre - m] = (gy - l * v * y) * inv;
      dz[centre - m] = (gz - l * v * z) * inv;
    }
  }
}

// ------------------------------------------------------------------ invariants
// hybridpot.descriptors.invariants: PowerSpectrum and Bispectrum (their forward and adjoints)

void Invariants::features(const double *c, double *B) const
{
  if (kind == POWER) {
    for (int k = 0; k < n_features; ++k) {
      const double *ca = c + a[k] * L2 + l[k] * l[k], *cb = c + b[k] * L2 + l[k] * l[k];
      double sum = 0.0;
      for (int m = 0; m < 2 * l[k] + 1; ++m) sum += ca[m] * cb[m];
      B[k] = norm[k] * sum;
    }
    return;
  }
  for (int k = 0; k < n_features; ++k) {
    const int t = t_of[k];
    const double *c1 = c + b[k] * L2 + t_l1[t] * t_l1[t], *c2 = c + b[k] * L2 + t_l2[t] * t_l2[t];
    const double *c3 = c + a[k] * L2 + t_l[t] * t_l[t];
    double sum = 0.0;
    for (const Entry &e : t_entries[t]) sum += e.value * c1[e.m1] * c2[e.m2] * c3[e.m];
    B[k] = sum;
  }
}

void Invariants::adjoint(const double *c, const double *dEdB, double *D) const
{
  if (kind == POWER) {
    for (int k = 0; k < n_features; ++k) {
      const double f = dEdB[k] * norm[k];
      const int off = l[k] * l[k], width = 2 * l[k] + 1;
      const double *ca = c + a[k] * L2 + off, *cb = c + b[k] * L2 + off;
      double *da = D + a[k] * L2 + off, *db = D + b[k] * L2 + off;
      for (int m = 0; m < width; ++m) {
        da[m] += f * cb[m];
        db[m] += f * ca[m];
      }
    }
    return;
  }
  for (int k = 0; k < n_features; ++k) {
    const double f = dEdB[k];
    if (f == 0.0) continue;
    const int t = t_of[k];
    const int o1 = b[k] * L2 + t_l1[t] * t_l1[t], o2 = b[k] * L2 + t_l2[t] * t_l2[t], o3 = a[k] * L2 + t_l[t] * t_l[t];
    for (const Entry &e : t_entries[t]) {
      const double v = f * e.value;
      const double x1 = c[o1 + e.m1], x2 = c[o2 + e.m2], x3 = c[o3 + e.m];
      D[o1 + e.m1] += v * x2 * x3;
      D[o2 + e.m2] += v * x1 * x3;
      D[o3 + e.m] += v * x1 * x2;
    }
  }
}

// ------------------------------------------------------------------ models
// hybridpot.models.polynomial.PolynomialModel, hybridpot.models.nn.NNModel, hybridpot.models.committee

int Model::work_size() const
{
  if (kind == NN) return 2 * (offsets.back() + widths.back());    // node values and their gradients
  if (kind == COMMITTEE) {
    int most = 0;
    for (const Model &m : members) most = std::max(most, m.work_size());
    return most + n_features;
  }
  return 0;
}

namespace {

inline double activate(Model::Activation a, double x)
{
  switch (a) {
    case Model::TANH: return std::tanh(x);
    case Model::SIGMOID: return 1.0 / (1.0 + std::exp(-x));
    case Model::RELU: return x > 0.0 ? x : 0.0;
    default: return x;
  }
}

// derivative from the activation's input x and output y
inline double activate_derivative(Model::Activation a, double x, double y)
{
  switch (a) {
    case Model::TANH: return 1.0 - y * y;
    case Model::SIGMOID: return y * (1.0 - y);
    case Model::RELU: return x > 0.0 ? 1.0 : 0.0;
    default: return 1.0;
  }
}

}    // namespace

double Model::energy(int t, const double *B, double *dEdB, double *work) const
{
  const int K = n_features;
  if (kind == LINEAR || kind == QUADRATIC) {
    const double *w = coef.data() + size_t(t) * n_params;
    double e = w[0];
    for (int k = 0; k < K; ++k) {
      e += w[1 + k] * B[k];
      dEdB[k] = w[1 + k];
    }
    if (kind == QUADRATIC) {
      const double *q = w + 1 + K;
      for (int k = 0; k < K; ++k) {
        const double bk = B[k];
        e += 0.5 * q[0] * bk * bk;
        double grad = q[0] * bk;
        for (int j = k + 1; j < K; ++j) {
          e += q[j - k] * bk * B[j];
          grad += q[j - k] * B[j];
          dEdB[j] += q[j - k] * bk;
        }
        dEdB[k] += grad;
        q += K - k;
      }
    }
    return e;
  }
  if (kind == COMMITTEE) {
    double *member_grad = work, *rest = work + K;
    for (int k = 0; k < K; ++k) dEdB[k] = 0.0;
    double e = 0.0;
    for (const Model &m : members) {
      e += m.energy(t, B, member_grad, rest);
      for (int k = 0; k < K; ++k) dEdB[k] += member_grad[k];
    }
    const double inv = 1.0 / members.size();
    for (int k = 0; k < K; ++k) dEdB[k] *= inv;
    return e * inv;
  }
  // NN: forward, keeping every layer's pre-activations (in g) and outputs (in y), then back-propagation
  const int n_layers = static_cast<int>(widths.size());
  const int total = offsets[n_layers] + widths[n_layers - 1];
  double *y = work, *g = work + total;    // node values by group (the standardised input first), gradients
  const double *sh = shift[t].data(), *sc = scale[t].data();
  for (int k = 0; k < K; ++k) y[k] = (B[k] - sh[k]) / sc[k];
  for (int layer = 0; layer < n_layers; ++layer) {
    const int in_off = offsets[layer], in_width = layer == 0 ? K : widths[layer - 1];
    const int out_off = offsets[layer + 1], out_width = widths[layer];
    const double *Wl = W[t][layer].data(), *bl = bias[t][layer].data();
    const bool last = layer == n_layers - 1;
    for (int o = 0; o < out_width; ++o) {
      double s = bl[o];
      const double *row = Wl + size_t(o) * in_width;
      for (int i = 0; i < in_width; ++i) s += row[i] * y[in_off + i];
      g[out_off + o] = s;    // the pre-activation, until the backward pass overwrites it
      y[out_off + o] = last ? s : activate(activation, s);
    }
  }
  const int in_off = offsets[n_layers];
  const double e = y[in_off];
  // backward: g[group] becomes dE/d(pre-activation) of that group's nodes (dE/dx for the input)
  g[in_off] = 1.0;
  for (int layer = n_layers - 1; layer >= 0; --layer) {
    const int out_off = offsets[layer + 1], out_width = widths[layer];
    const int prev_off = offsets[layer], prev_width = layer == 0 ? K : widths[layer - 1];
    const double *Wl = W[t][layer].data();
    for (int i = 0; i < prev_width; ++i) {
      double s = 0.0;
      for (int o = 0; o < out_width; ++o) s += Wl[size_t(o) * prev_width + i] * g[out_off + o];
      if (layer > 0) s *= activate_derivative(activation, g[prev_off + i], y[prev_off + i]);
      g[prev_off + i] = s;
    }
  }
  for (int k = 0; k < K; ++k) dEdB[k] = g[k] / sc[k];
  return e;
}

// ------------------------------------------------------------------ extrapolation grade, fallback
// hybridpot.uq.ActiveSet.grade and hybridpot.uq.Fallback (scope "atom", measure "gamma")

double Extrapolation::gamma(int t, const double *B, double *work) const
{
  const double *inv_t = inv.data() + size_t(t) * M * M;
  double *c = work;
  for (int k = 0; k < M; ++k) c[k] = inv_t[k];    // x_0 = 1
  for (int j = 1; j < M; ++j) {
    const double xj = B[j - 1];
    const double *row = inv_t + size_t(j) * M;
    for (int k = 0; k < M; ++k) c[k] += xj * row[k];
  }
  double largest = 0.0;
  for (int k = 0; k < M; ++k) largest = std::max(largest, std::fabs(c[k]));
  return largest;
}

double Extrapolation::apply(int t, const double *B, double &energy, double *dEdB, double &gamma_out, double *work) const
{
  double *c = work;
  gamma_out = gamma(t, B, c);
  const double m = gamma_out > 1e-300 ? gamma_out : 1e-300;
  double sum = 0.0;
  for (int k = 0; k < M; ++k) sum += std::pow(c[k] / m, p);
  const double g = m * std::pow(sum, 1.0 / p);
  const double width = upper - lower;
  const double u_raw = (g - lower) / width;
  const double u = std::min(std::max(u_raw, 0.0), 1.0);
  const double s = 1.0 - u * u * u * (10.0 - 15.0 * u + 6.0 * u * u);
  const double ref = reference[t];
  const double delta = energy - ref;
  // dE/dB = s dE_ML/dB + (E_ML - e_t) ds/du du/dg dg/dB, dg/dc_k = (c_k / g)^(p - 1), dc_k/dB_j = A^-1[j + 1][k]
  const double dsdg = (u_raw > 0.0 && u_raw < 1.0) ? -30.0 * u * u * (1.0 - u) * (1.0 - u) / width : 0.0;
  const double *inv_t = inv.data() + size_t(t) * M * M;
  for (int j = 0; j < M - 1; ++j) dEdB[j] *= s;
  if (dsdg != 0.0 && g > 0.0) {
    const double f = delta * dsdg;
    for (int k = 0; k < M; ++k) c[k] = f * std::pow(c[k] / g, p - 1);
    for (int j = 1; j < M; ++j) {
      const double *row = inv_t + size_t(j) * M;
      double sum_k = 0.0;
      for (int k = 0; k < M; ++k) sum_k += row[k] * c[k];
      dEdB[j - 1] += sum_k;
    }
  }
  energy = ref + s * delta;
  return s;
}

// ------------------------------------------------------------------ EAM spline
// hybridpot.empirical.eam.spline_lookup (LAMMPS's eam interpolation; slope also past the last knot)

void EAM::lookup(const std::vector<double> &table, int row, int n, double x, double delta, double &value, double &slope)
{
  const double inv = 1.0 / delta;
  double p = x * inv + 1.0;
  int m = static_cast<int>(std::trunc(p));
  m = std::min(std::max(m, 1), n - 1);
  p -= m;
  p = std::min(p, 1.0);
  const double *c = table.data() + (size_t(row) * (n - 1) + (m - 1)) * 4;
  value = ((c[0] * p + c[1]) * p + c[2]) * p + c[3];
  slope = ((3.0 * c[0] * p + 2.0 * c[1]) * p + c[2]) * inv;
}

// ------------------------------------------------------------------ Tersoff
// hybridpot.empirical.tersoff.Tersoff.forward and _bond_order (LAMMPS pair_style tersoff's branches)

namespace {

const double EXP_GUARD = 69.0776;
const double HALF_PI = 1.57079632679489661923;

inline void cutoff_function(double r, double R, double D, double &fc, double &dfc)
{
  if (r < R - D) {
    fc = 1.0;
    dfc = 0.0;
  } else if (r > R + D) {
    fc = 0.0;
    dfc = 0.0;
  } else {
    const double width = D > 0.0 ? D : 1.0;
    const double arg = HALF_PI * (r - R) / width;
    fc = 0.5 * (1.0 - std::sin(arg));
    dfc = -0.5 * std::cos(arg) * HALF_PI / width;
  }
}

// b(x) = (1 + x^n)^(-1/(2n)) with LAMMPS's asymptotic branches, and db/dx
inline void bond_order(double x, double n, double &b, double &db)
{
  double c1 = 0.0, c2 = 0.0, c3 = 0.0, c4 = 0.0;
  if (n > 0.0) {
    c1 = std::pow(2.0 * n * 1e-16, -1.0 / n);
    c2 = std::pow(2.0 * n * 1e-8, -1.0 / n);
    c3 = 1.0 / c2;
    c4 = 1.0 / c1;
  }
  const double two_n = 2.0 * (n > 0.0 ? n : 1.0);
  if (x > c2) {
    if (x > c1) {
      b = 1.0 / std::sqrt(x);
      db = -0.5 * b / x;
    } else {
      const double xn = std::pow(x, -n), rs = 1.0 / std::sqrt(x);
      b = (1.0 - xn / two_n) * rs;
      db = (n * xn / (two_n * x)) * rs - 0.5 * (1.0 - xn / two_n) * rs / x;
    }
  } else if (x < c4) {
    b = 1.0;
    db = 0.0;
  } else if (x < c3) {
    const double xn = std::pow(x, n);
    b = 1.0 - xn / two_n;
    db = -n * xn / (two_n * x);
  } else {
    const double xn = std::pow(x, n);
    b = std::pow(1.0 + xn, -1.0 / (2.0 * n));
    db = -0.5 * b / (1.0 + xn) * std::pow(x, n - 1.0);
  }
}

}    // namespace

double tersoff_centre(const Tersoff &t, int ti, long tag_i, const NeighborEntry *nb, int n, double *grad, double *half_energy,
                      std::vector<double> &scratch)
{
  const int T = t.n_elements;
  if (static_cast<int>(scratch.size()) < 3 * n) scratch.resize(3 * n);
  double *dzeta = scratch.data();    // d zeta_ij / d r_ik for every entry k
  double energy = 0.0;
  for (int e = 0; e < 3 * n; ++e) grad[e] = 0.0;
  for (int e = 0; e < n; ++e) {
    half_energy[e] = 0.0;
    const NeighborEntry &J = nb[e];
    const int row_ij = ti * T + J.element;
    const int pj = row_ij * T + J.element;    // ijj entry
    if (!(J.d < t.cut(pj))) continue;
    const double rij = J.d;
    const double uij[3] = {J.r[0] / rij, J.r[1] / rij, J.r[2] / rij};
    double zeta = 0.0;
    double dz_ij[3] = {0.0, 0.0, 0.0};
    for (int f = 0; f < n; ++f) {
      dzeta[3 * f] = dzeta[3 * f + 1] = dzeta[3 * f + 2] = 0.0;
      if (f == e) continue;
      const NeighborEntry &K = nb[f];
      const int pk = row_ij * T + K.element;    // ijk entry
      if (!(K.d < t.cut(pk))) continue;
      const double rik = K.d;
      const double uik[3] = {K.r[0] / rik, K.r[1] / rik, K.r[2] / rik};
      const double cos = (J.r[0] * K.r[0] + J.r[1] * K.r[1] + J.r[2] * K.r[2]) / (rij * rik);
      const double c = t.param(pk, Tersoff::C), d = t.param(pk, Tersoff::D), h = t.param(pk, Tersoff::H);
      const double gam = t.param(pk, Tersoff::GAMMA), lam3 = t.param(pk, Tersoff::LAMBDA3);
      const double c2 = c * c, d2 = d * d, hc = h - cos, den = d2 + hc * hc;
      const double g = gam * (1.0 + c2 / d2 - c2 / den);
      const double dg = -2.0 * gam * c2 * hc / (den * den);    // dg / dcos
      const double base = lam3 * (rij - rik);
      const bool cubic = t.param(pk, Tersoff::M) == 3.0;
      const double a = cubic ? base * base * base : base;
      const double da = cubic ? 3.0 * base * base * lam3 : lam3;    // da / d(rij - rik)
      double ex, dex;
      if (a > EXP_GUARD) {
        ex = 1e30;
        dex = 0.0;
      } else if (a < -EXP_GUARD) {
        ex = 0.0;
        dex = 0.0;
      } else {
        ex = std::exp(a);
        dex = ex * da;
      }
      double fc, dfc;
      cutoff_function(rik, t.param(pk, Tersoff::R), t.param(pk, Tersoff::DD), fc, dfc);
      zeta += fc * g * ex;
      for (int a3 = 0; a3 < 3; ++a3) {
        const double dcos_ij = (uik[a3] - cos * uij[a3]) / rij;
        const double dcos_ik = (uij[a3] - cos * uik[a3]) / rik;
        dz_ij[a3] += fc * (dg * ex * dcos_ij + g * dex * uij[a3]);
        dzeta[3 * f + a3] = dfc * g * ex * uik[a3] + fc * (dg * ex * dcos_ik - g * dex * uik[a3]);
      }
    }
    const double beta = t.param(pj, Tersoff::BETA);
    double b, db;
    bond_order(beta * zeta, t.param(pj, Tersoff::N), b, db);
    double fc, dfc;
    cutoff_function(rij, t.param(pj, Tersoff::R), t.param(pj, Tersoff::DD), fc, dfc);
    const double A = t.param(pj, Tersoff::A), lam1 = t.param(pj, Tersoff::LAMBDA1);
    const double Bc = t.param(pj, Tersoff::B), lam2 = t.param(pj, Tersoff::LAMBDA2);
    const double e1 = std::exp(-lam1 * rij), e2 = std::exp(-lam2 * rij);
    const double rep = A * e1 * fc, drep = A * e1 * (dfc - lam1 * fc);
    const double att = -Bc * e2 * fc, datt = -Bc * e2 * (dfc - lam2 * fc);
    // repulsion of the unordered pair from the atom chosen by the parity of the IDs (LAMMPS tersoff)
    double w;
    if (tag_i == J.tag)
      w = 0.5;
    else {
      const bool odd = (tag_i + J.tag) % 2 == 1;
      w = (tag_i > J.tag ? odd : !odd) ? 1.0 : 0.0;
    }
    half_energy[e] = 0.5 * w * rep + 0.25 * b * att;
    energy += 2.0 * half_energy[e];
    const double radial = w * drep + 0.5 * b * datt;
    const double through_zeta = 0.5 * att * db * beta;
    for (int a3 = 0; a3 < 3; ++a3) grad[3 * e + a3] += radial * uij[a3] + through_zeta * dz_ij[a3];
    if (through_zeta != 0.0)
      for (int f = 0; f < n; ++f)
        for (int a3 = 0; a3 < 3; ++a3) grad[3 * f + a3] += through_zeta * dzeta[3 * f + a3];
  }
  return energy;
}

}    // namespace hybridpot
