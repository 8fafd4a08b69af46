// The per-pair and per-atom math of the hybrid, written once for the host and for Kokkos devices.
//
// Every function here works on plain "views": structs of sizes and raw pointers into the tables of a
// model file (lammps-plugin/FORMAT.md). The host pair style (pair_hpot.cpp) builds the views from the
// std::vectors of model.h; the Kokkos driver (kokkos/hpot_kokkos.h) builds them from Kokkos::Views in
// device memory. Compiled with HYBRIDPOT_KOKKOS the functions are KOKKOS_INLINE_FUNCTION, so the same
// source runs on CPU threads and GPUs; no function allocates, throws or calls the C++ library beyond
// <cmath>.
//
// Conventions (those of hybridpot/descriptors/so3.py): a pair vector is r = x_j - x_i (neighbour minus
// centre); the "gradient" of a pair is g = dE/dr; the force on the centre is +g, on the neighbour -g.
// Units: eV and Angstrom.
#ifndef HYBRIDPOT_KERNELS_H
#define HYBRIDPOT_KERNELS_H

#if defined(HYBRIDPOT_KOKKOS)
#include <Kokkos_Core.hpp>
#define HPOT_FN KOKKOS_INLINE_FUNCTION
#else
#define HPOT_FN inline
#endif

#include <cmath>

namespace hybridpot {

HPOT_FN int imin(int a, int b) { return a < b ? a : b; }
HPOT_FN int imax(int a, int b) { return a > b ? a : b; }
HPOT_FN double dmin(double a, double b) { return a < b ? a : b; }
HPOT_FN double dmax(double a, double b) { return a > b ? a : b; }

// sum_k a[k] b[k] in eight interleaved partial sums: a single running sum waits for each add before the next (the
// compiler may not reorder it without -ffast-math), which made the kernel model's M x K dot products latency-bound
// (the plugin's Cu kernel row: 202 -> 120 us/atom-step)
HPOT_FN double dot(const double *a, const double *b, int n)
{
  double s[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[k + j] * b[k + j];
  for (; k < n; ++k) s[0] += a[k] * b[k];
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// sum_k (a[k] - b[k])^2, interleaved as dot()
HPOT_FN double squared_distance(const double *a, const double *b, int n)
{
  double s[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int j = 0; j < 8; ++j) s[j] += (a[k + j] - b[k + j]) * (a[k + j] - b[k + j]);
  for (; k < n; ++k) s[0] += (a[k] - b[k]) * (a[k] - b[k]);
  return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

// ------------------------------------------------------------------ radial spline
// hybridpot.descriptors.spline.RadialSpline.forward: s = r / h, i = clamp(floor(s), 0, n - 1), t = s - i,
// g_q(r) = sum_k coef[i][k][q] t^k, q = n * (lmax + 1) + l

struct SplineView {
  const double *coef = nullptr;    // [interval][6][nq]
  int n_intervals = 0, nq = 0;
  double h = 0.0;
};

HPOT_FN void spline_values(const SplineView &s, double r, double *g)
{
  const double x = r / s.h;
  const int i = imin(imax(static_cast<int>(floor(x)), 0), s.n_intervals - 1);
  const double t = x - i;
  const int nq = s.nq;
  const double *c = s.coef + static_cast<long>(i) * 6 * nq;
  for (int q = 0; q < nq; ++q) g[q] = c[5 * nq + q];
  for (int k = 4; k >= 0; --k) {    // Horner's rule, the functions in the inner loop
    const double *ck = c + k * nq;
    for (int q = 0; q < nq; ++q) g[q] = ck[q] + g[q] * t;
  }
}

HPOT_FN void spline_values_and_derivatives(const SplineView &s, double r, double *g, double *dg)
{
  const double x = r / s.h;
  const int i = imin(imax(static_cast<int>(floor(x)), 0), s.n_intervals - 1);
  const double t = x - i;
  const int nq = s.nq;
  const double *c = s.coef + static_cast<long>(i) * 6 * nq;
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
    dg[q] = dg[q] / s.h;
  }
}

// ------------------------------------------------------------------ spherical harmonics
// Real orthonormal Y_lm, no Condon-Shortley phase (sphericart's convention), index l*l + l + m.
// Solid harmonics R_lm = N_lm q_l^|m| {c_m | 1 | s_|m|}, (x + i y)^m = c_m + i s_m,
// q_l^m = r^(l-m) d^m P_l / dt^m (z / r). Recurrences: q_m^m = (2m - 1)!!, q_{m+1}^m = (2m + 1) z q_m^m,
// q_l^m = a_lm z q_{l-1}^m - b_lm r^2 q_{l-2}^m with a = (2l - 1) / (l - m), b = (l + m - 1) / (l - m).
// Gradients: dq_l^m/dx = -x q_{l-1}^{m+1}, dq_l^m/dy = -y q_{l-1}^{m+1}, dq_l^m/dz = (l + m) q_{l-1}^m,
// dc_m/dx = m c_{m-1}, dc_m/dy = -m s_{m-1}, ds_m/dx = m s_{m-1}, ds_m/dy = m c_{m-1}.
// On the unit sphere Y = R(u), and dY/dr = (grad R(u) - l Y u) / |r|.

struct YlmView {
  int lmax = 0;
  const double *norm = nullptr;    // N_lm, m >= 0, at l (l + 1) / 2 + m (sqrt 2 included for m > 0)
  const double *rec_a = nullptr;   // a_lm at l (lmax + 2) + m
  const double *rec_b = nullptr;   // b_lm at l (lmax + 2) + m
};

HPOT_FN int ylm_q_size(int lmax) { return (lmax + 2) * (lmax + 2); }

// q[l (lmax + 2) + m] for 0 <= m <= l (entries past the diagonal are not set: they are zero); cs = [c | s]
HPOT_FN void legendre_table(const YlmView &v, double x, double y, double z, double *q, double *cs)
{
  const int lmax = v.lmax, stride = lmax + 2;
  q[0] = 1.0;
  for (int m = 1; m <= lmax; ++m) q[m * stride + m] = (2 * m - 1) * q[(m - 1) * stride + (m - 1)];
  for (int m = 0; m < lmax; ++m) q[(m + 1) * stride + m] = (2 * m + 1) * z * q[m * stride + m];
  for (int m = 0; m <= lmax; ++m)
    for (int l = m + 2; l <= lmax; ++l)
      q[l * stride + m] = v.rec_a[l * stride + m] * z * q[(l - 1) * stride + m] - v.rec_b[l * stride + m] * q[(l - 2) * stride + m];
  double *c = cs, *s = cs + lmax + 1;
  c[0] = 1.0;
  s[0] = 0.0;
  for (int m = 1; m <= lmax; ++m) {
    c[m] = x * c[m - 1] - y * s[m - 1];
    s[m] = x * s[m - 1] + y * c[m - 1];
  }
}

// Y[(lmax+1)^2] of the unit vector u; q: ylm_q_size(lmax), cs: 2 (lmax + 1) numbers of scratch
HPOT_FN void ylm_values(const YlmView &v, const double u[3], double *Y, double *q, double *cs)
{
  legendre_table(v, u[0], u[1], u[2], q, cs);
  const int lmax = v.lmax, stride = lmax + 2;
  const double *c = cs, *s = cs + lmax + 1;
  for (int l = 0; l <= lmax; ++l) {
    const int centre = l * l + l;
    const double *n = v.norm + l * (l + 1) / 2;
    Y[centre] = n[0] * q[l * stride];
    for (int m = 1; m <= l; ++m) {
      const double nq = n[m] * q[l * stride + m];
      Y[centre + m] = nq * c[m];
      Y[centre - m] = nq * s[m];
    }
  }
}

// Y and dY/dr (dY[a L2 + lm], 1/A) of the vector r with |r| = rnorm
HPOT_FN void ylm_values_and_gradients(const YlmView &v, const double r[3], double rnorm, double *Y, double *dY, double *q,
                                      double *cs)
{
  const double inv = 1.0 / rnorm;
  const double x = r[0] * inv, y = r[1] * inv, z = r[2] * inv;
  legendre_table(v, x, y, z, q, cs);
  const int lmax = v.lmax, stride = lmax + 2, L2 = (lmax + 1) * (lmax + 1);
  const double *c = cs, *s = cs + lmax + 1;
  double *dx = dY, *dy = dY + L2, *dz = dY + 2 * L2;
  Y[0] = v.norm[0];
  dx[0] = dy[0] = dz[0] = 0.0;
  for (int l = 1; l <= lmax; ++l) {
    const int centre = l * l + l;
    const double *n = v.norm + l * (l + 1) / 2;
    const double *ql = q + l * stride, *qd = q + (l - 1) * stride;    // q_l^m and q_{l-1}^m
    {
      const double val = n[0] * ql[0];
      const double q1 = l >= 2 ? qd[1] : 0.0;    // q_{l-1}^1 (zero for l = 1)
      const double gx = -n[0] * x * q1, gy = -n[0] * y * q1, gz = n[0] * l * qd[0];
      Y[centre] = val;
      dx[centre] = (gx - l * val * x) * inv;
      dy[centre] = (gy - l * val * y) * inv;
      dz[centre] = (gz - l * val * z) * inv;
    }
    for (int m = 1; m <= l; ++m) {
      const double a = n[m] * ql[m];                        // N q_l^m
      const double qup = m + 1 <= l - 1 ? qd[m + 1] : 0.0;    // q_{l-1}^{m+1}, zero past the diagonal
      const double qm = m <= l - 1 ? qd[m] : 0.0;             // q_{l-1}^m
      const double ax = -n[m] * x * qup, ay = -n[m] * y * qup, az = n[m] * (l + m) * qm;
      double val = a * c[m];    // cosine part (m > 0)
      double gx = ax * c[m] + a * m * c[m - 1], gy = ay * c[m] - a * m * s[m - 1], gz = az * c[m];
      Y[centre + m] = val;
      dx[centre + m] = (gx - l * val * x) * inv;
      dy[centre + m] = (gy - l * val * y) * inv;
      dz[centre + m] = (gz - l * val * z) * inv;
      val = a * s[m];    // sine part (m < 0)
      gx = ax * s[m] + a * m * s[m - 1];
      gy = ay * s[m] + a * m * c[m - 1];
      gz = az * s[m];
      Y[centre - m] = val;
      dx[centre - m] = (gx - l * val * x) * inv;
      dy[centre - m] = (gy - l * val * y) * inv;
      dz[centre - m] = (gz - l * val * z) * inv;
    }
  }
}

// ------------------------------------------------------------------ invariants
// hybridpot.descriptors.invariants: power spectrum B_k = norm_k sum_m c[a_k][l_k m] c[b_k][l_k m];
// bispectrum B_k = sum T_t[m1, m2, m] c[b_k][l1 m1] c[b_k][l2 m2] c[a_k][l m], t = t_of[k] = (l1, l2, l).

struct InvariantsView {
  int bispectrum = 0, n_features = 0, L2 = 0;
  const int *a = nullptr, *b = nullptr;
  const int *l = nullptr;            // power spectrum
  const double *norm = nullptr;      // power spectrum
  const int *t_of = nullptr, *t_l1 = nullptr, *t_l2 = nullptr, *t_l = nullptr;    // bispectrum
  const int *entry_start = nullptr;  // entries of triple t: entry_start[t] .. entry_start[t + 1]
  const int *entry_m = nullptr;      // (m1, m2, m) offsets in the l1, l2 and l blocks, 3 per entry
  const double *entry_value = nullptr;
};

HPOT_FN void invariant_features(const InvariantsView &v, const double *c, double *B)
{
  const int L2 = v.L2;
  for (int k = 0; k < v.n_features; ++k) {
    if (!v.bispectrum) {
      const int l = v.l[k];
      const double *ca = c + v.a[k] * L2 + l * l, *cb = c + v.b[k] * L2 + l * l;
      double sum = 0.0;
      for (int m = 0; m < 2 * l + 1; ++m) sum += ca[m] * cb[m];
      B[k] = v.norm[k] * sum;
    } else {
      const int t = v.t_of[k];
      const double *c1 = c + v.b[k] * L2 + v.t_l1[t] * v.t_l1[t], *c2 = c + v.b[k] * L2 + v.t_l2[t] * v.t_l2[t];
      const double *c3 = c + v.a[k] * L2 + v.t_l[t] * v.t_l[t];
      double sum = 0.0;
      for (int e = v.entry_start[t]; e < v.entry_start[t + 1]; ++e)
        sum += v.entry_value[e] * c1[v.entry_m[3 * e]] * c2[v.entry_m[3 * e + 1]] * c3[v.entry_m[3 * e + 2]];
      B[k] = sum;
    }
  }
}

// D[nu L2] += dE/dc given dE/dB (D zeroed by the caller)
HPOT_FN void invariant_adjoint(const InvariantsView &v, const double *c, const double *dEdB, double *D)
{
  const int L2 = v.L2;
  for (int k = 0; k < v.n_features; ++k) {
    if (!v.bispectrum) {
      const double f = dEdB[k] * v.norm[k];
      const int l = v.l[k], off = l * l;
      const double *ca = c + v.a[k] * L2 + off, *cb = c + v.b[k] * L2 + off;
      double *da = D + v.a[k] * L2 + off, *db = D + v.b[k] * L2 + off;
      for (int m = 0; m < 2 * l + 1; ++m) {
        da[m] += f * cb[m];
        db[m] += f * ca[m];
      }
    } else {
      const double f = dEdB[k];
      if (f == 0.0) continue;
      const int t = v.t_of[k];
      const int o1 = v.b[k] * L2 + v.t_l1[t] * v.t_l1[t], o2 = v.b[k] * L2 + v.t_l2[t] * v.t_l2[t];
      const int o3 = v.a[k] * L2 + v.t_l[t] * v.t_l[t];
      for (int e = v.entry_start[t]; e < v.entry_start[t + 1]; ++e) {
        const double w = f * v.entry_value[e];
        const int i1 = o1 + v.entry_m[3 * e], i2 = o2 + v.entry_m[3 * e + 1], i3 = o3 + v.entry_m[3 * e + 2];
        const double x1 = c[i1], x2 = c[i2], x3 = c[i3];
        D[i1] += w * x2 * x3;
        D[i2] += w * x1 * x3;
        D[i3] += w * x1 * x2;
      }
    }
  }
}

// ------------------------------------------------------------------ models
// hybridpot.models.polynomial (linear, quadratic in the ML-IAP order), .nn (per-element MLP on
// standardised inputs), .committee (the mean of its members), .kernel (sparse GP: e_t + sum_m alpha_m k(B, D_m))

enum ModelKind { MODEL_LINEAR = 0, MODEL_QUADRATIC = 1, MODEL_NN = 2, MODEL_COMMITTEE = 3, MODEL_KERNEL = 4 };
enum Activation { ACT_TANH = 0, ACT_SIGMOID = 1, ACT_RELU = 2, ACT_LINEAR = 3 };

struct ModelView {
  int kind = MODEL_LINEAR, n_features = 0;
  int block = 0;                      // numbers per element in coef
  const double *coef = nullptr;       // linear/quadratic: the coefficient row; nn: shift K, scale K, per layer W then b
  int activation = ACT_TANH, n_layers = 0;
  const int *widths = nullptr;        // nn: nodes of each layer (the last: 1)
  const int *node_offsets = nullptr;  // nn: first node of each group in the work arrays (input group first), n_layers + 1
  const int *param_offsets = nullptr; // nn: offset of each layer's W in the element's block (b follows W)
  int work = 0;                       // doubles of scratch one evaluation needs
  int n_members = 0;
  const ModelView *members = nullptr; // committee: its members (not committees)
  int kernel_se = 0, zeta = 1, n_sparse = 0;    // kernel: 0 polynomial (d_hat . D_hat_m)^zeta, 1 squared exponential
  int kernel_linear = 0;              // kernel: 1 when each block ends with a linear term's weights v <K> (E += v . B)
  double length = 1.0;                // kernel (se): length scale
};

// the kernel model's optional linear term: e + v . B, dEdB += v
HPOT_FN double kernel_linear_term(const ModelView &m, const double *v, const double *B, double *dEdB, double e)
{
  if (!m.kernel_linear) return e;
  for (int k = 0; k < m.n_features; ++k) dEdB[k] += v[k];
  return e + dot(v, B, m.n_features);
}

// kernel model of element t: block = e_t, alpha <M>, sparse points <M x K> (polynomial: already normalised)
// [, linear-term weights v <K>]; dE/dB into dEdB, work: K doubles
HPOT_FN double kernel_model_energy(const ModelView &m, int t, const double *B, double *dEdB, double *work)
{
  const int K = m.n_features, M = m.n_sparse;
  const double *w = m.coef + static_cast<long>(t) * m.block;
  const double *alpha = w + 1, *D = w + 1 + M, *v = D + static_cast<long>(M) * K;
  double e = w[0];
  if (m.kernel_se) {
    const double inv_l2 = 1.0 / (m.length * m.length);
    for (int k = 0; k < K; ++k) dEdB[k] = 0.0;
    for (int s = 0; s < M; ++s) {
      if (alpha[s] == 0.0) continue;
      const double *y = D + static_cast<long>(s) * K;
      const double d2 = squared_distance(B, y, K);
      const double ak = alpha[s] * exp(-0.5 * d2 * inv_l2);
      e += ak;
      for (int k = 0; k < K; ++k) dEdB[k] -= ak * inv_l2 * (B[k] - y[k]);
    }
    return kernel_linear_term(m, v, B, dEdB, e);
  }
  const double norm = sqrt(dot(B, B, K));
  const double inv = norm > 0.0 ? 1.0 / norm : 0.0;
  double *g = work;    // dE/d x_hat
  for (int k = 0; k < K; ++k) g[k] = 0.0;
  for (int s = 0; s < M; ++s) {
    if (alpha[s] == 0.0) continue;
    const double *y = D + static_cast<long>(s) * K;
    const double c = dot(B, y, K) * inv;
    double p = 1.0;    // c^(zeta - 1)
    for (int z = 1; z < m.zeta; ++z) p *= c;
    e += alpha[s] * p * c;
    const double f = alpha[s] * m.zeta * p;
    for (int k = 0; k < K; ++k) g[k] += f * y[k];
  }
  // d x_hat / dB = (I - x_hat x_hat^T) / |B|
  const double gx = dot(g, B, K) * inv;
  for (int k = 0; k < K; ++k) dEdB[k] = (g[k] - gx * B[k] * inv) * inv;
  return kernel_linear_term(m, v, B, dEdB, e);
}

HPOT_FN double activate(int a, double x)
{
  if (a == ACT_TANH) return tanh(x);
  if (a == ACT_SIGMOID) return 1.0 / (1.0 + exp(-x));
  if (a == ACT_RELU) return x > 0.0 ? x : 0.0;
  return x;
}

// derivative from the activation's input x and output y
HPOT_FN double activate_derivative(int a, double x, double y)
{
  if (a == ACT_TANH) return 1.0 - y * y;
  if (a == ACT_SIGMOID) return y * (1.0 - y);
  if (a == ACT_RELU) return x > 0.0 ? 1.0 : 0.0;
  return 1.0;
}

// per-atom energy (eV) of element t of a linear, quadratic or nn model, and dE/dB
HPOT_FN double single_model_energy(const ModelView &m, int t, const double *B, double *dEdB, double *work)
{
  if (m.kind == MODEL_KERNEL) return kernel_model_energy(m, t, B, dEdB, work);
  const int K = m.n_features;
  const double *w = m.coef + static_cast<long>(t) * m.block;
  if (m.kind == MODEL_LINEAR || m.kind == MODEL_QUADRATIC) {
    double e = w[0] + dot(w + 1, B, K);
    for (int k = 0; k < K; ++k) dEdB[k] = w[1 + k];
    if (m.kind == MODEL_QUADRATIC) {
      const double *q = w + 1 + K;    // upper triangle row by row, the diagonal (with 1/2) first in each row
      for (int k = 0; k < K; ++k) {
        const double bk = B[k];
        const double off = dot(q + 1, B + k + 1, K - k - 1);    // sum_{j > k} q_kj B_j
        e += bk * (0.5 * q[0] * bk + off);
        dEdB[k] += q[0] * bk + off;
        for (int j = k + 1; j < K; ++j) dEdB[j] += q[j - k] * bk;
        q += K - k;
      }
    }
    return e;
  }
  // NN: forward keeping each node's pre-activation (in g) and output (in y), then back-propagation
  const int nl = m.n_layers;
  const int total = m.node_offsets[nl] + m.widths[nl - 1];
  double *y = work, *g = work + total;
  const double *shift = w, *scale = w + K;
  for (int k = 0; k < K; ++k) y[k] = (B[k] - shift[k]) / scale[k];
  for (int layer = 0; layer < nl; ++layer) {
    const int in_off = m.node_offsets[layer], in_width = layer == 0 ? K : m.widths[layer - 1];
    const int out_off = m.node_offsets[layer + 1], out_width = m.widths[layer];
    const double *W = w + m.param_offsets[layer], *bias = W + out_width * in_width;
    const bool last = layer == nl - 1;
    for (int o = 0; o < out_width; ++o) {
      const double s = bias[o] + dot(W + o * in_width, y + in_off, in_width);
      g[out_off + o] = s;
      y[out_off + o] = last ? s : activate(m.activation, s);
    }
  }
  const int out = m.node_offsets[nl];
  const double e = y[out];
  g[out] = 1.0;
  for (int layer = nl - 1; layer >= 0; --layer) {
    const int out_off = m.node_offsets[layer + 1], out_width = m.widths[layer];
    const int prev_off = m.node_offsets[layer], prev_width = layer == 0 ? K : m.widths[layer - 1];
    const double *W = w + m.param_offsets[layer];
    for (int i = 0; i < prev_width; ++i) {
      double s = 0.0;
      for (int o = 0; o < out_width; ++o) s += W[o * prev_width + i] * g[out_off + o];
      if (layer > 0) s *= activate_derivative(m.activation, g[prev_off + i], y[prev_off + i]);
      g[prev_off + i] = s;    // the pre-activation read just above is no longer needed
    }
  }
  for (int k = 0; k < K; ++k) dEdB[k] = g[k] / scale[k];
  return e;
}

HPOT_FN double model_energy(const ModelView &m, int t, const double *B, double *dEdB, double *work)
{
  if (m.kind != MODEL_COMMITTEE) return single_model_energy(m, t, B, dEdB, work);
  const int K = m.n_features;
  double *member_grad = work, *rest = work + K;
  for (int k = 0; k < K; ++k) dEdB[k] = 0.0;
  double e = 0.0;
  for (int c = 0; c < m.n_members; ++c) {
    e += single_model_energy(m.members[c], t, B, member_grad, rest);
    for (int k = 0; k < K; ++k) dEdB[k] += member_grad[k];
  }
  const double inv = 1.0 / m.n_members;
  for (int k = 0; k < K; ++k) dEdB[k] *= inv;
  return e * inv;
}

// ------------------------------------------------------------------ extrapolation grade, fallback
// hybridpot.uq.ActiveSet.grade and hybridpot.uq.Fallback (scope "atom", measure "gamma")

struct ExtrapolationView {
  int M = 0;                       // K + 1 (0: no active set)
  const double *inv = nullptr;     // per element: A^-1 (M x M, row-major)
  int fallback = 0, p = 16;
  double lower = 1.0, upper = 2.0;
  const double *reference = nullptr;    // per element, eV
};

// gamma = max_k |(x A^-1)_k| of x = [1, B]; c (M numbers) receives x A^-1
HPOT_FN double grade(const ExtrapolationView &x, int t, const double *B, double *c)
{
  const int M = x.M;
  const double *inv = x.inv + static_cast<long>(t) * M * M;
  for (int k = 0; k < M; ++k) c[k] = inv[k];
  for (int j = 1; j < M; ++j) {
    const double xj = B[j - 1];
    const double *row = inv + j * M;
    for (int k = 0; k < M; ++k) c[k] += xj * row[k];
  }
  double largest = 0.0;
  for (int k = 0; k < M; ++k) largest = dmax(largest, fabs(c[k]));
  return largest;
}

// E_ML -> e_t + s (E_ML - e_t) with its gradient (s from the smooth p-norm grade); returns s
HPOT_FN double fallback_apply(const ExtrapolationView &x, int t, const double *B, double &energy, double *dEdB, double &gamma,
                              double *c)
{
  const int M = x.M;
  gamma = grade(x, t, B, c);
  const double m = gamma > 1e-300 ? gamma : 1e-300;
  double sum = 0.0;
  for (int k = 0; k < M; ++k) sum += pow(c[k] / m, x.p);
  const double g = m * pow(sum, 1.0 / x.p);
  const double width = x.upper - x.lower;
  const double u_raw = (g - x.lower) / width;
  const double u = dmin(dmax(u_raw, 0.0), 1.0);
  const double s = 1.0 - u * u * u * (10.0 - 15.0 * u + 6.0 * u * u);
  const double delta = energy - x.reference[t];
  // dE/dB = s dE_ML/dB + (E_ML - e_t) ds/du du/dg dg/dB, dg/dc_k = (c_k / g)^(p - 1), dc_k/dB_j = A^-1[j + 1][k]
  const double dsdg = (u_raw > 0.0 && u_raw < 1.0) ? -30.0 * u * u * (1.0 - u) * (1.0 - u) / width : 0.0;
  const double *inv = x.inv + static_cast<long>(t) * M * M;
  for (int j = 0; j < M - 1; ++j) dEdB[j] *= s;
  if (dsdg != 0.0 && g > 0.0) {
    const double f = delta * dsdg;
    for (int k = 0; k < M; ++k) c[k] = f * pow(c[k] / g, x.p - 1);
    for (int j = 1; j < M; ++j) {
      const double *row = inv + j * M;
      double acc = 0.0;
      for (int k = 0; k < M; ++k) acc += row[k] * c[k];
      dEdB[j - 1] += acc;
    }
  }
  energy = x.reference[t] + s * delta;
  return s;
}

// ------------------------------------------------------------------ the descriptor of one atom

struct DescriptorView {
  double rcut = 0.0;
  int nmax = 0, L = 0, L2 = 0, nu = 0;
  const double *weight = nullptr;    // per element: weight as a neighbour
  const int *channel = nullptr;      // per element: density channel as a neighbour
  const int *l_of_lm = nullptr;      // l of each (l, m) column
  const double *parity = nullptr;    // (-1)^l of each (l, m) column
  SplineView spline;
  YlmView ylm;
  InvariantsView invariants;
};

// scratch doubles of density_add (g, Y, q, cs) and pair_gradient (g, dg, Y, dY, q, cs, h, dh)
HPOT_FN int density_work(const DescriptorView &d) { return d.spline.nq + d.L2 + ylm_q_size(d.ylm.lmax) + 2 * d.L; }
HPOT_FN int gradient_work(const DescriptorView &d) { return 2 * d.spline.nq + 6 * d.L2 + ylm_q_size(d.ylm.lmax) + 2 * d.L; }

// c[nu][lm] += w_j g_nl(d) Y_lm(r / d) for one neighbour (element tj) at r, |r| = d < rcut
HPOT_FN void density_add(const DescriptorView &d, const double r[3], double dist, int tj, double *c, double *work)
{
  double *g = work, *Y = g + d.spline.nq, *q = Y + d.L2, *cs = q + ylm_q_size(d.ylm.lmax);
  spline_values(d.spline, dist, g);
  const double u[3] = {r[0] / dist, r[1] / dist, r[2] / dist};
  ylm_values(d.ylm, u, Y, q, cs);
  const double wt = d.weight[tj];
  double *block = c + d.channel[tj] * d.nmax * d.L2;
  for (int n = 0; n < d.nmax; ++n) {
    double *row = block + n * d.L2;
    const double *gn = g + n * d.L;
    for (int l = 0; l < d.L; ++l) {
      const double gw = wt * gn[l];
      for (int lm = l * l; lm < (l + 1) * (l + 1); ++lm) row[lm] += gw * Y[lm];
    }
  }
}

// dE/dr of the pair (i, j) through both atoms' densities: the gradient of
// [w_j D_i[channel of j] + (-1)^l w_i D_j[channel of i]] . (g Y)(r), added to grad[3]
HPOT_FN void pair_gradient(const DescriptorView &d, const double r[3], double dist, int ti, int tj, const double *Di_all,
                           const double *Dj_all, double *work, double *grad)
{
  const int nq = d.spline.nq, L = d.L, L2 = d.L2;
  double *g = work, *dg = g + nq, *Y = dg + nq, *dY = Y + L2, *h = dY + 3 * L2, *dh = h + L2, *q = dh + L2;
  double *cs = q + ylm_q_size(d.ylm.lmax);
  spline_values_and_derivatives(d.spline, dist, g, dg);
  ylm_values_and_gradients(d.ylm, r, dist, Y, dY, q, cs);
  const double *Di = Di_all + d.channel[tj] * d.nmax * L2;
  const double *Dj = Dj_all + d.channel[ti] * d.nmax * L2;
  const double wj = d.weight[tj], wi = d.weight[ti];
  // H_lm = sum_n D_eff[n][lm] g_nl and H'_lm with g' (n outer, lm inner: contiguous rows of D)
  for (int lm = 0; lm < L2; ++lm) h[lm] = dh[lm] = 0.0;
  for (int n = 0; n < d.nmax; ++n) {
    const double *di = Di + n * L2, *dj = Dj + n * L2, *gn = g + n * L, *dgn = dg + n * L;
    for (int lm = 0; lm < L2; ++lm) {
      const double deff = wj * di[lm] + wi * d.parity[lm] * dj[lm];
      h[lm] += deff * gn[d.l_of_lm[lm]];
      dh[lm] += deff * dgn[d.l_of_lm[lm]];
    }
  }
  double radial = 0.0, tx = 0.0, ty = 0.0, tz = 0.0;
  const double *dYx = dY, *dYy = dY + L2, *dYz = dY + 2 * L2;
  for (int lm = 0; lm < L2; ++lm) {
    radial += dh[lm] * Y[lm];
    tx += h[lm] * dYx[lm];
    ty += h[lm] * dYy[lm];
    tz += h[lm] * dYz[lm];
  }
  grad[0] += radial * r[0] / dist + tx;
  grad[1] += radial * r[1] / dist + ty;
  grad[2] += radial * r[2] / dist + tz;
}

// scratch doubles of atom_residual (B, dE/dB, the model's work, the grade's c)
HPOT_FN int residual_work(const DescriptorView &d, const ModelView &m, const ExtrapolationView &x)
{
  return 2 * d.invariants.n_features + m.work + x.M + 1;
}

// The residual energy of an atom of element t from its density c, and D = dE/dc (zeroed here); with
// the fallback, its switch s; the grade gamma when asked for (and an active set exists).
HPOT_FN double atom_residual(const DescriptorView &d, const ModelView &m, const ExtrapolationView &x, int t, const double *c,
                             double *D, double *work, bool want_grade, double &gamma, double &s)
{
  const int K = d.invariants.n_features;
  double *B = work, *dEdB = B + K, *model_work = dEdB + K, *cvec = model_work + m.work;
  invariant_features(d.invariants, c, B);
  double energy = model_energy(m, t, B, dEdB, model_work);
  s = 1.0;
  gamma = 0.0;
  if (x.fallback)
    s = fallback_apply(x, t, B, energy, dEdB, gamma, cvec);
  else if (want_grade && x.M > 0)
    gamma = grade(x, t, B, cvec);
  for (int k = 0; k < d.nu * d.L2; ++k) D[k] = 0.0;
  invariant_adjoint(d.invariants, c, dEdB, D);
  return energy;
}

// ------------------------------------------------------------------ EAM and Lennard-Jones
// hybridpot.empirical.eam.spline_lookup (LAMMPS's eam interpolation; the slope also past the last knot)

struct EAMView {
  int nrho = 0, nr = 0;
  double drho = 0.0, dr = 0.0, cutoff = 0.0, rhomax = 0.0, scale = 1.0;
  const double *frho = nullptr, *rhor = nullptr, *z2r = nullptr;    // [row][interval][c3 c4 c5 c6]
};

HPOT_FN void eam_lookup(const double *table, int row, int n, double x, double delta, double &value, double &slope)
{
  const double inv = 1.0 / delta;
  double p = x * inv + 1.0;
  const int m = imin(imax(static_cast<int>(trunc(p)), 1), n - 1);
  p = dmin(p - m, 1.0);
  const double *c = table + (static_cast<long>(row) * (n - 1) + (m - 1)) * 4;
  value = ((c[0] * p + c[1]) * p + c[2]) * p + c[3];
  slope = ((3.0 * c[0] * p + 2.0 * c[1]) * p + c[2]) * inv;
}

HPOT_FN int eam_pair_row(int a, int b) { return a >= b ? a * (a + 1) / 2 + b : b * (b + 1) / 2 + a; }

// one neighbour (element tj at d < cutoff) of an atom of element ti: its density contribution and half its
// pair energy (unscaled); keep[3] = f'_tj(d), f'_ti(d), phi'(d) for the force pass
HPOT_FN void eam_neighbor(const EAMView &e, int ti, int tj, double d, double &rho, double &half_pair, double *keep)
{
  double value, slope, z, dz;
  eam_lookup(e.rhor, tj, e.nr, d, e.dr, value, slope);
  rho = value;
  keep[0] = slope;
  if (tj != ti) eam_lookup(e.rhor, ti, e.nr, d, e.dr, value, slope);
  keep[1] = slope;
  eam_lookup(e.z2r, eam_pair_row(ti, tj), e.nr, d, e.dr, z, dz);
  const double phi = z / d;
  half_pair = 0.5 * phi;
  keep[2] = (dz - phi) / d;
}

// F(rho) with LAMMPS's linear extension above rhomax (unscaled), and F'(rho)
HPOT_FN double eam_embedding(const EAMView &e, int ti, double rho, double &slope)
{
  double value;
  eam_lookup(e.frho, ti, e.nrho, rho, e.drho, value, slope);
  if (rho > e.rhomax) value += slope * (rho - e.rhomax);
  return value;
}

struct LJView {
  int n_elements = 0, shift = 0;
  const double *epsilon = nullptr, *sigma = nullptr, *cutoff = nullptr;    // [a T + b]
};

// the pair energy (shifted if asked) and its derivative at d < cutoff, pair index k = a T + b
HPOT_FN void lj_pair(const LJView &lj, int k, double d, double &e, double &de)
{
  const double s6 = pow(lj.sigma[k] / d, 6);
  e = 4.0 * lj.epsilon[k] * (s6 * s6 - s6);
  de = 4.0 * lj.epsilon[k] * (-12.0 * s6 * s6 + 6.0 * s6) / d;
  if (lj.shift) {
    const double c6 = pow(lj.sigma[k] / lj.cutoff[k], 6);
    e -= 4.0 * lj.epsilon[k] * (c6 * c6 - c6);
  }
}

}    // namespace hybridpot

#endif
