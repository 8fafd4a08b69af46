// Host-side parts of the model: table set-up, the views of kernels.h, and the Tersoff baseline (host
// only: its bond order couples three atoms and its forces go to the neighbours).
#include "model.h"

#include <algorithm>
#include <cmath>

namespace hybridpot {

void SphericalHarmonics::init(int lmax_)
{
  lmax = lmax_;
  norm.assign((lmax + 1) * (lmax + 2) / 2, 0.0);
  const double pi = 3.14159265358979323846;
  for (int l = 0; l <= lmax; ++l)
    for (int m = 0; m <= l; ++m) {
      double ratio = 1.0;    // (l - m)! / (l + m)!
      for (int k = l - m + 1; k <= l + m; ++k) ratio /= k;
      const double v = std::sqrt((2 * l + 1) / (4.0 * pi) * ratio);
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

InvariantsView Invariants::view() const
{
  InvariantsView v;
  v.bispectrum = bispectrum ? 1 : 0;
  v.n_features = n_features;
  v.L2 = L2;
  v.a = a.data();
  v.b = b.data();
  v.l = l.data();
  v.norm = norm.data();
  v.t_of = t_of.data();
  v.t_l1 = t_l1.data();
  v.t_l2 = t_l2.data();
  v.t_l = t_l.data();
  v.entry_start = entry_start.data();
  v.entry_m = entry_m.data();
  v.entry_value = entry_value.data();
  return v;
}

DescriptorView Descriptor::view() const
{
  DescriptorView v;
  v.rcut = rcut;
  v.nmax = nmax;
  v.L = L;
  v.L2 = L2;
  v.nu = nu;
  v.weight = weight.data();
  v.channel = channel.data();
  v.l_of_lm = l_of_lm.data();
  v.parity = parity.data();
  v.spline = spline.view();
  v.ylm = ylm.view();
  v.invariants = invariants.view();
  return v;
}

void Model::finalize()
{
  member_views.clear();
  if (kind == MODEL_NN) {
    work = 2 * (node_offsets.back() + widths.back());    // node values and their gradients
  } else if (kind == MODEL_COMMITTEE) {
    int most = 0;
    for (Model &m : members) {
      m.finalize();
      most = std::max(most, m.work);
    }
    work = most + n_features;
    for (const Model &m : members) member_views.push_back(m.view());
  } else if (kind == MODEL_KERNEL) {
    work = n_features;    // dE/d B_hat
  } else {
    work = 0;
  }
}

ModelView Model::view() const
{
  ModelView v;
  v.kind = kind;
  v.n_features = n_features;
  v.block = block;
  v.coef = coef.data();
  v.activation = activation;
  v.n_layers = static_cast<int>(widths.size());
  v.widths = widths.data();
  v.node_offsets = node_offsets.data();
  v.param_offsets = param_offsets.data();
  v.work = work;
  v.n_members = static_cast<int>(member_views.size());
  v.members = member_views.data();
  v.kernel_se = kernel_se;
  v.zeta = zeta;
  v.n_sparse = n_sparse;
  v.kernel_linear = kernel_linear;
  v.length = length;
  return v;
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
