// The fitted hybrid as read from a hybridpot-lammps model file (FORMAT.md): the tables (std::vector
// owners) and their views for the math of kernels.h, plus the host-only Tersoff baseline.
//
// Nothing here depends on LAMMPS: pair_hpot.cpp feeds it neighbour vectors and collects
// energies and pair-vector gradients. Units: eV and Angstrom. Conventions (shared with hybridpot's
// Python code, hybridpot/descriptors/so3.py): a pair vector is r = x_j - x_i (neighbour minus
// centre); its "gradient" g = dE/dr; the force on the centre is +g and on the neighbour -g.
#ifndef HYBRIDPOT_MODEL_H
#define HYBRIDPOT_MODEL_H

#include "kernels.h"

#include <string>
#include <vector>

namespace hybridpot {

// The owners of the tables (std::vector); kernels.h holds the math, on views of these tables.

struct RadialSpline {
  int n_intervals = 0, nmax = 0, lmax = 0, nq = 0;    // nq = nmax * (lmax + 1)
  double h = 0.0, rcut = 0.0;
  std::vector<double> coef;                          // [interval][k = 0..5][n (lmax + 1) + l]
  SplineView view() const { return {coef.data(), n_intervals, nq, h}; }
};

struct SphericalHarmonics {
  int lmax = 0;
  std::vector<double> norm, rec_a, rec_b;    // see YlmView
  void init(int lmax_);
  YlmView view() const { return {lmax, norm.data(), rec_a.data(), rec_b.data()}; }
};

struct Invariants {
  bool bispectrum = false;
  int n_features = 0, nu = 0, lmax = 0, L2 = 0;
  std::vector<int> a, b, l;             // channels (and l, power spectrum) of each feature
  std::vector<double> norm;             // power spectrum
  std::vector<int> t_of, t_l1, t_l2, t_l, entry_start, entry_m;    // bispectrum (see InvariantsView)
  std::vector<double> entry_value;
  InvariantsView view() const;
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
  DescriptorView view() const;
};

struct Model {
  int kind = MODEL_LINEAR, n_elements = 0, n_features = 0, block = 0;
  std::vector<double> coef;    // [element][block]: the coefficient row, or nn: shift, scale, per layer W then b
  int activation = ACT_TANH;
  std::vector<int> widths, node_offsets, param_offsets;    // nn (see ModelView)
  std::vector<Model> members;                               // committee
  std::vector<ModelView> member_views;                      // committee: views of the members (set by finalize)
  int kernel_se = 0, zeta = 1, n_sparse = 0, kernel_linear = 0;    // kernel (see ModelView)
  double length = 1.0;
  int work = 0;                                             // scratch doubles of one evaluation (set by finalize)

  void finalize();    // after reading: scratch size and the members' views
  ModelView view() const;
};

struct Extrapolation {
  int M = 0;                   // K + 1; 0 when the model file has no active set
  std::vector<double> inv;     // per element: A^-1 (M x M, row-major)
  bool fallback = false;
  int p = 16;
  double lower = 1.0, upper = 2.0;
  std::vector<double> reference;    // per element, eV
  ExtrapolationView view() const { return {M, inv.data(), fallback ? 1 : 0, p, lower, upper, reference.data()}; }
};

struct EAM {
  int n_elements = 0, nrho = 0, nr = 0;
  double drho = 0, dr = 0, cutoff = 0, rhomax = 0, scale = 1.0;
  std::vector<double> frho, rhor, z2r;    // [row][interval][c3 c4 c5 c6]
  EAMView view() const { return {nrho, nr, drho, dr, cutoff, rhomax, scale, frho.data(), rhor.data(), z2r.data()}; }
};

struct LennardJones {
  int n_elements = 0;
  bool shift = false;
  std::vector<double> epsilon, sigma, cutoff;    // [a * T + b], symmetric
  double max_cutoff = 0.0;
  LJView view() const { return {n_elements, shift ? 1 : 0, epsilon.data(), sigma.data(), cutoff.data()}; }
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
  enum BaselineKind { NONE, EAM_BASELINE, LJ_BASELINE, TERSOFF_BASELINE, EXTERNAL_BASELINE } baseline = NONE;
  // EXTERNAL_BASELINE: LAMMPS runs the baseline with its own pair style (under hybrid/overlay, with `baseline no`)
  std::string external_style;
  EAM eam;
  LennardJones lj;
  Tersoff tersoff;
};

// Read and check a model file; throws std::runtime_error with a message naming the file and problem.
ModelFile read_model_file(const std::string &path);

}    // namespace hybridpot

#endif
