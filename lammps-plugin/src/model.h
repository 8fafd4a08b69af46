// The fitted hybrid as read from a hybridpot-lammps model file (FORMAT.md), and the per-atom math that
// evaluates it: radial spline tables, real spherical harmonics, density coefficients, invariants
// (power spectrum, bispectrum) and their adjoints, per-element models (linear, quadratic, nn,
// committee), the extrapolation grade and fallback switch, and the EAM / LJ / Tersoff baselines.
//
// Nothing here depends on LAMMPS: pair_hpot.cpp feeds it neighbour vectors and collects
// energies and pair-vector gradients. Units: eV and Angstrom. Conventions (shared with hybridpot's
// Python code, hybridpot/descriptors/so3.py): a pair vector is r = x_j - x_i (neighbour minus
// centre); its "gradient" g = dE/dr; the force on the centre is +g and on the neighbour -g.
#ifndef HYBRIDPOT_MODEL_H
#define HYBRIDPOT_MODEL_H

#include <string>
#include <vector>

namespace hybridpot {

// ------------------------------------------------------------------ descriptor parts

// Quintic Hermite table of g_nl(r) on [0, rcut]: coef[interval][k][n * (lmax + 1) + l], k = 0..5.
struct RadialSpline {
  int n_intervals = 0, nmax = 0, lmax = 0, nq = 0;    // nq = nmax * (lmax + 1)
  double h = 0.0, rcut = 0.0;
  std::vector<double> coef;

  void values(double r, double *g) const;                             // g[nq]
  void values_and_derivatives(double r, double *g, double *dg) const;  // g[nq], dg/dr[nq] (1/A)
};

// Real orthonormal spherical harmonics Y_lm (no Condon-Shortley phase), index l*l + l + m.
struct SphericalHarmonics {
  int lmax = 0;
  std::vector<double> norm;    // N_lm for m >= 0 at l * (l + 1) / 2 + m (sqrt 2 included for m > 0)
  std::vector<double> rec_a, rec_b;    // (2l - 1) / (l - m) and (l + m - 1) / (l - m) at l * (lmax + 2) + m

  void init(int lmax_);
  // Y[(lmax+1)^2] of the unit vector u; q and cs are scratch of size q_size() and 2 (lmax + 1)
  void values(const double u[3], double *Y, double *q, double *cs) const;
  // Y and dY/dr (dY[a * L2 + lm], 1/A) of the vector r with |r| = rnorm
  void values_and_gradients(const double r[3], double rnorm, double *Y, double *dY, double *q, double *cs) const;
  int q_size() const { return (lmax + 2) * (lmax + 2); }
};

// Rotation invariants of the density c[nu][lm] (nu = channels * nmax radial channels, L2 = (lmax+1)^2 columns).
struct Invariants {
  enum Kind { POWER, BISPECTRUM } kind = POWER;
  int n_features = 0, nu = 0, lmax = 0, L2 = 0;
  // power spectrum: B_k = norm_k sum_m c[a_k][l_k, m] c[b_k][l_k, m]
  std::vector<int> a, b, l;
  std::vector<double> norm;
  // bispectrum: triples t = (l1, l2, l) with their non-zero CG entries; B_k = sum T c[b][l1] c[b][l2] c[a][l]
  struct Entry {
    int m1, m2, m;    // column offsets inside the l1, l2 and l blocks
    double value;
  };
  std::vector<int> t_l1, t_l2, t_l;
  std::vector<std::vector<Entry>> t_entries;
  std::vector<int> t_of;    // triple of each feature (a, b as above)

  void features(const double *c, double *B) const;
  // D[nu * L2] += dE/dc given dE/dB (D must be zeroed by the caller)
  void adjoint(const double *c, const double *dEdB, double *D) const;
};

struct Descriptor {
  double rcut = 0.0;
  int nmax = 0, lmax = 0, L = 0, L2 = 0, n_channels = 1, nu = 0;
  std::vector<double> weight;    // per element: weight as a neighbour
  std::vector<int> channel;      // per element: density channel as a neighbour
  std::vector<int> l_of_lm;      // l of each (l, m) column
  std::vector<double> parity;    // (-1)^l of each (l, m) column: Y_lm(-r) = (-1)^l Y_lm(r)
  RadialSpline spline;
  SphericalHarmonics ylm;
  Invariants invariants;

  int n_coefficients() const { return nu * L2; }
};

// ------------------------------------------------------------------ models

struct Model {
  enum Kind { LINEAR, QUADRATIC, NN, COMMITTEE } kind = LINEAR;
  int n_elements = 0, n_features = 0, n_params = 0;
  std::vector<double> coef;    // linear/quadratic: [element][n_params]
  // nn: widths of the hidden layers and the activation; per element shift, scale, then per layer W (out x in), b
  enum Activation { TANH, SIGMOID, RELU, IDENTITY } activation = TANH;
  std::vector<int> widths;                            // hidden widths then 1 (the output node)
  std::vector<int> offsets;                           // start of each node group (input first) in the work arrays
  std::vector<std::vector<double>> shift, scale;     // [element][K]
  std::vector<std::vector<std::vector<double>>> W, bias;    // [element][layer][...]
  std::vector<Model> members;    // committee

  // per-atom energy E (eV) of element t and dE/dB into dEdB[K]; work: scratch of size work_size()
  double energy(int t, const double *B, double *dEdB, double *work) const;
  int work_size() const;
};

// D-optimality grade and the fallback switch of hybridpot.uq (atom scope, measure gamma).
struct Extrapolation {
  int M = 0;                   // K + 1; 0 when the model file has no active set
  std::vector<double> inv;     // per element: A^-1 (M x M, row-major)
  bool fallback = false;
  int p = 16;
  double lower = 1.0, upper = 2.0;
  std::vector<double> reference;    // per element, eV

  // gamma = max_k |(x A^-1)_k| of x = [1, B]; work: M numbers
  double gamma(int t, const double *B, double *work) const;
  // E_ML -> e_t + s (E_ML - e_t) with its gradient; returns s; gamma_out receives the grade
  double apply(int t, const double *B, double &energy, double *dEdB, double &gamma_out, double *work) const;
};

// ------------------------------------------------------------------ baselines

struct EAM {
  int n_elements = 0, nrho = 0, nr = 0;
  double drho = 0, dr = 0, cutoff = 0, rhomax = 0, scale = 1.0;
  std::vector<double> frho, rhor, z2r;    // [row][interval][c3 c4 c5 c6]

  // LAMMPS eam spline at x of row `row` of `table` (n knots spaced delta): value and slope
  static void lookup(const std::vector<double> &table, int row, int n, double x, double delta, double &value,
                     double &slope);
  int pair_row(int a, int b) const { return a >= b ? a * (a + 1) / 2 + b : b * (b + 1) / 2 + a; }
};

struct LennardJones {
  int n_elements = 0;
  bool shift = false;
  std::vector<double> epsilon, sigma, cutoff;    // [a * T + b], symmetric
  double max_cutoff = 0.0;
};

struct Tersoff {
  int n_elements = 0;
  // parameters of triplet (a, b, c) at row (a T + b) T + c, hybridpot's FIELDS order
  enum { M, GAMMA, LAMBDA3, C, D, H, N, BETA, LAMBDA2, B, R, DD, LAMBDA1, A, N_FIELDS };
  std::vector<double> p;    // [row][N_FIELDS]
  double max_cutoff = 0.0;
  double param(int row, int field) const { return p[size_t(row) * N_FIELDS + field]; }
  double cut(int row) const { return param(row, R) + param(row, DD); }
};

// One neighbour of a centre atom, as the kernels see it.
struct NeighborEntry {
  int index;       // LAMMPS index of the neighbour (local or ghost)
  int element;     // its element
  long tag;        // its atom ID (Tersoff's parity rule)
  double r[3];     // x_j - x_i, Angstrom
  double d;        // |r|
};

// Tersoff energy of the bonds of one centre: adds dE/dr of every entry to grad[3 * n] and returns the
// energy; half_energy[e] receives the energy given to each of i and the neighbour of bond e.
double tersoff_centre(const Tersoff &t, int ti, long tag_i, const NeighborEntry *nb, int n, double *grad,
                      double *half_energy, std::vector<double> &scratch);

// ------------------------------------------------------------------ the whole model file

struct ModelFile {
  int version = 0;
  std::string sha256;
  std::vector<std::string> elements;
  double cutoff = 0.0;
  Descriptor descriptor;
  Model model;
  Extrapolation extrapolation;
  enum BaselineKind { NONE, EAM_BASELINE, LJ_BASELINE, TERSOFF_BASELINE } baseline = NONE;
  EAM eam;
  LennardJones lj;
  Tersoff tersoff;
};

// Read and check a model file; throws std::runtime_error with a message naming the file and problem.
ModelFile read_model_file(const std::string &path);

}    // namespace hybridpot

#endif
