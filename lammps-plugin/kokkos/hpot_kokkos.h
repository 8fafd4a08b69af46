// The hybrid's energies and forces as Kokkos kernels: the math of ../src/kernels.h (the same functions the
// host pair style calls) in Kokkos::parallel_reduce loops over centre atoms, on the tables copied into the
// memory space of an execution space (Serial and OpenMP on the host, CUDA or HIP on a GPU).
//
// The two passes of the host pair style (pair_hpot.h), over any neighbour source (the `Pairs` concept below):
//   first_pass:  for each centre i, the density c_i, the residual energy E_i and its adjoint D_i = dE_i/dc_i
//                (and the EAM density and F'(rho_i)), written to row i of `adjoint`;
//   (the caller makes the adjoint rows of the neighbours that are not centres valid: LAMMPS's forward
//    communication to ghost atoms; nothing to do when every atom is a centre)
//   second_pass: for each centre i, its whole force from its own entries (both atoms' D), and the virial.
// No force is written to an atom other than the centre, so there are no write conflicts between threads and
// no ghost forces (the result is correct with LAMMPS's `newton on` and `off`).
//
// Users: kokkos/harness.cpp (a CSR pair list in which every atom is a centre: CsrPairs and evaluate()) and
// the LAMMPS KOKKOS pair style kokkos/pair_hpot_kokkos.cpp (its neighbour list and ghost atoms).
// Units: eV, Angstrom (times energy_unit, the LAMMPS energy unit per eV, under `units real`).
// Baselines: none, EAM, LJ (Tersoff is host-only).
//
// Compile with -DHYBRIDPOT_KOKKOS and Kokkos's include path (this header defines nothing else).
#ifndef HYBRIDPOT_HPOT_KOKKOS_H
#define HYBRIDPOT_HPOT_KOKKOS_H

#ifndef HYBRIDPOT_KOKKOS
#error "compile the Kokkos driver with -DHYBRIDPOT_KOKKOS"
#endif

#include <Kokkos_Core.hpp>

#include "model.h"

#include <stdexcept>
#include <string>
#include <vector>

namespace hybridpot {

// The six virial components xx yy zz xy xz yz (eV), as one value of a Kokkos reduction.
struct Virial {
  double v[6];
  KOKKOS_INLINE_FUNCTION Virial() { for (int a = 0; a < 6; ++a) v[a] = 0.0; }
  KOKKOS_INLINE_FUNCTION Virial &operator+=(const Virial &o)
  {
    for (int a = 0; a < 6; ++a) v[a] += o.v[a];
    return *this;
  }
  KOKKOS_INLINE_FUNCTION void operator+=(const volatile Virial &o) volatile
  {
    for (int a = 0; a < 6; ++a) v[a] += o.v[a];
  }
};

}    // namespace hybridpot

namespace Kokkos {
template <> struct reduction_identity<hybridpot::Virial> {
  KOKKOS_FORCEINLINE_FUNCTION static hybridpot::Virial sum() { return hybridpot::Virial(); }
};
}    // namespace Kokkos

namespace hybridpot {

// A neighbour source (the `Pairs` of first_pass/second_pass) has these members, callable in kernels:
//   int centre(int ii) const                  the atom index of centre ii, 0 <= ii < n_centres
//   int count(int ii) const                   the number of neighbour entries of centre ii
//   int entry(int ii, int k, double r[3]) const
//                                             entry k of centre ii: the neighbour's atom index j and
//                                             r = x_j - x_i (Angstrom, with the periodic image), or -1 to
//                                             skip the entry (outside the cutoff, unmapped type)
//   int element(int i) const                  the model element of atom i (centre or neighbour)
//   long slot(int ii, int k) const            where entry k's EAM numbers are kept (< the extent of `keep`)
//
// CsrPairs: a full pair list in CSR form in which every atom is a centre (the harness's input): the entries of
// atom i are offsets[i] .. offsets[i + 1], with neighbour[p] and vectors(p, :) = x_j - x_i.
template <class Space>
struct CsrPairs {
  Kokkos::View<const int *, Space> element_of, offsets, neighbor;    // [n], [n + 1], [n_pairs]
  Kokkos::View<const double *[3], Space> vectors;                    // [n_pairs][3], Angstrom
  KOKKOS_INLINE_FUNCTION int centre(int ii) const { return ii; }
  KOKKOS_INLINE_FUNCTION int count(int ii) const { return offsets(ii + 1) - offsets(ii); }
  KOKKOS_INLINE_FUNCTION int entry(int ii, int k, double r[3]) const
  {
    const int p = offsets(ii) + k;
    for (int a = 0; a < 3; ++a) r[a] = vectors(p, a);
    return neighbor(p);
  }
  KOKKOS_INLINE_FUNCTION int element(int i) const { return element_of(i); }
  KOKKOS_INLINE_FUNCTION long slot(int ii, int k) const { return offsets(ii) + k; }
};

// Space: an execution space (the harness: Kokkos::DefaultExecutionSpace) or a Kokkos::Device<execution space,
// memory space> (the pair style: LAMMPS's DeviceType); the tables and the work arrays live in its memory space.
template <class Space>
class KokkosHybrid {
 public:
  using ExecutionSpace = typename Space::execution_space;
  using Memory = typename Space::memory_space;
  template <class T> using Array = Kokkos::View<T *, Space>;
  using Rows = Kokkos::View<double **, Kokkos::LayoutRight, Space>;    // [atom][column]
  using Keep = Kokkos::View<double *[3], Kokkos::LayoutRight, Space>;  // [slot][f'_j, f'_i, phi'] of EAM entries
  using AtomVirial = Kokkos::View<double *[6], Kokkos::LayoutRight, Space>;    // [atom][xx yy zz xy xz yz]

  // Copies the model's tables into Memory. use_baseline = false evaluates the residual alone (`baseline no`).
  explicit KokkosHybrid(const ModelFile &mf, bool use_baseline = true) : baseline_(use_baseline ? mf.baseline : ModelFile::NONE)
  {
    if (baseline_ == ModelFile::TERSOFF_BASELINE)
      throw std::runtime_error("the Kokkos kernels have no Tersoff baseline (use the host pair style, or `baseline no` under "
                               "hybrid/overlay with LAMMPS's tersoff)");
    if (baseline_ == ModelFile::EXTERNAL_BASELINE)
      throw std::runtime_error("the baseline of this model is a LAMMPS pair style (" + mf.external_style + "): use `baseline no`");
    const Descriptor &d = mf.descriptor;
    d_ = d.view();
    d_.weight = copy(d.weight);
    d_.channel = copy(d.channel);
    d_.l_of_lm = copy(d.l_of_lm);
    d_.parity = copy(d.parity);
    d_.spline.coef = copy(d.spline.coef);
    d_.ylm.norm = copy(d.ylm.norm);
    d_.ylm.rec_a = copy(d.ylm.rec_a);
    d_.ylm.rec_b = copy(d.ylm.rec_b);
    const Invariants &inv = d.invariants;
    d_.invariants.a = copy(inv.a);
    d_.invariants.b = copy(inv.b);
    d_.invariants.l = copy(inv.l);
    d_.invariants.norm = copy(inv.norm);
    d_.invariants.t_of = copy(inv.t_of);
    d_.invariants.t_l1 = copy(inv.t_l1);
    d_.invariants.t_l2 = copy(inv.t_l2);
    d_.invariants.t_l = copy(inv.t_l);
    d_.invariants.entry_start = copy(inv.entry_start);
    d_.invariants.entry_m = copy(inv.entry_m);
    d_.invariants.entry_value = copy(inv.entry_value);
    m_ = model_view(mf.model);
    if (mf.model.kind == MODEL_COMMITTEE) {
      std::vector<ModelView> members;
      for (const Model &member : mf.model.members) members.push_back(model_view(member));
      m_.members = copy(members);
    }
    x_ = mf.extrapolation.view();
    x_.inv = copy(mf.extrapolation.inv);
    x_.reference = copy(mf.extrapolation.reference);
    e_ = mf.eam.view();
    e_.frho = copy(mf.eam.frho);
    e_.rhor = copy(mf.eam.rhor);
    e_.z2r = copy(mf.eam.z2r);
    lj_ = mf.lj.view();
    lj_.epsilon = copy(mf.lj.epsilon);
    lj_.sigma = copy(mf.lj.sigma);
    lj_.cutoff = copy(mf.lj.cutoff);
    n_coef_ = d.nu * d.L2;
  }

  // The LAMMPS energy unit per eV (1 under units metal; units real: kcal/mol per eV, residual only).
  void set_energy_unit(double unit) { energy_unit_ = unit; }
  // Columns of an adjoint row: D_i (nu * (lmax + 1)^2 doubles), then F'(rho_i) with an EAM baseline.
  int adjoint_columns() const { return n_coef_ + (baseline_ == ModelFile::EAM_BASELINE ? 1 : 0); }
  bool uses_keep() const { return baseline_ == ModelFile::EAM_BASELINE; }

  // Pass 1 over centres 0 .. n_centres - 1: adjoint rows (D, F') of the centres, their energies written to
  // energies(i) where `energies` is not empty, the EAM numbers of their entries in `keep` (when uses_keep()).
  // Returns the sum of the centres' energies.
  template <class Pairs>
  double first_pass(const Pairs &pairs, int n_centres, Rows adjoint, Keep keep, Array<double> energies) const
  {
    const DescriptorView d = d_;
    const ModelView m = m_;
    const ExtrapolationView x = x_;
    const EAMView e = e_;
    const LJView lj = lj_;
    const int baseline = baseline_, n_coef = n_coef_;
    const double unit = energy_unit_;
    const bool per_atom = energies.extent(0) > 0;
    const int pair_work = imax(density_work(d), gradient_work(d));
    Rows scratch = scratch_for(n_centres);
    double total = 0.0;
    Kokkos::parallel_reduce("hpot:pass1", Kokkos::RangePolicy<ExecutionSpace>(0, n_centres), KOKKOS_LAMBDA(const int ii, double &sum) {
      double *c = &scratch(ii, 0), *pw = c + n_coef, *aw = pw + pair_work;
      for (int k = 0; k < n_coef; ++k) c[k] = 0.0;
      const int i = pairs.centre(ii), ti = pairs.element(i), n = pairs.count(ii);
      if (ti < 0) return;    // a centre whose type is mapped to no element (NULL in pair_coeff)
      double *D = &adjoint(i, 0);
      for (int k = 0; k < n; ++k) {
        double r[3];
        const int j = pairs.entry(ii, k, r);
        if (j < 0) continue;
        const double dist = sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
        if (dist < d.rcut) density_add(d, r, dist, pairs.element(j), c, pw);
      }
      double gamma, s;
      double energy = atom_residual(d, m, x, ti, c, D, aw, false, gamma, s);
      if (unit != 1.0) {    // units real: E and D in kcal/mol (linear in the energy unit, fallback included)
        energy *= unit;
        for (int a = 0; a < n_coef; ++a) D[a] *= unit;
      }
      if (baseline == ModelFile::EAM_BASELINE) {
        double rho = 0.0, pair = 0.0;
        for (int k = 0; k < n; ++k) {
          double r[3];
          const int j = pairs.entry(ii, k, r);
          if (j < 0) continue;
          const double dist = sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
          double kp[3] = {0.0, 0.0, 0.0};
          if (dist < e.cutoff) {
            double density, half_pair;
            eam_neighbor(e, ti, pairs.element(j), dist, density, half_pair, kp);
            rho += density;
            pair += half_pair;
          }
          const long q = pairs.slot(ii, k);
          for (int a = 0; a < 3; ++a) keep(q, a) = kp[a];
        }
        double fp;
        energy += e.scale * (eam_embedding(e, ti, rho, fp) + pair);
        D[n_coef] = fp;
      } else if (baseline == ModelFile::LJ_BASELINE) {
        for (int k = 0; k < n; ++k) {
          double r[3];
          const int j = pairs.entry(ii, k, r);
          if (j < 0) continue;
          const double dist = sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
          const int q = ti * lj.n_elements + pairs.element(j);
          if (dist < lj.cutoff[q]) {
            double ep, de;
            lj_pair(lj, q, dist, ep, de);
            energy += 0.5 * ep;
          }
        }
      }
      if (per_atom) energies(i) = energy;
      sum += energy;
    }, total);
    return total;
  }

  // Pass 2 over the same centres, with the adjoint rows of every atom they see (centres and neighbours):
  // adds each centre's whole force to forces(i, :) (eV/A); writes its share of the virial to atom_virial(i, :)
  // where that is not empty (half of -r (x) g of each of its entries); returns the total virial (eV).
  template <class Pairs, class Forces>
  Virial second_pass(const Pairs &pairs, int n_centres, Rows adjoint, Keep keep, Forces forces, AtomVirial atom_virial) const
  {
    const DescriptorView d = d_;
    const EAMView e = e_;
    const LJView lj = lj_;
    const int baseline = baseline_, n_coef = n_coef_;
    const bool per_atom = atom_virial.extent(0) > 0;
    Rows scratch = scratch_for(n_centres);
    Virial total;
    Kokkos::parallel_reduce("hpot:pass2", Kokkos::RangePolicy<ExecutionSpace>(0, n_centres), KOKKOS_LAMBDA(const int ii, Virial &sum) {
      double *pw = &scratch(ii, 0) + n_coef;
      const int i = pairs.centre(ii), ti = pairs.element(i), n = pairs.count(ii);
      if (ti < 0) return;
      double f[3] = {0.0, 0.0, 0.0};
      Virial v;
      for (int k = 0; k < n; ++k) {
        double r[3];
        const int j = pairs.entry(ii, k, r);
        if (j < 0) continue;
        const int tj = pairs.element(j);
        const double dist = sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
        double g[3] = {0.0, 0.0, 0.0};
        if (dist < d.rcut) pair_gradient(d, r, dist, ti, tj, &adjoint(i, 0), &adjoint(j, 0), pw, g);
        if (baseline == ModelFile::EAM_BASELINE) {
          const long q = pairs.slot(ii, k);
          const double s = e.scale * (adjoint(i, n_coef) * keep(q, 0) + adjoint(j, n_coef) * keep(q, 1) + keep(q, 2));
          for (int a = 0; a < 3; ++a) g[a] += s * r[a] / dist;
        } else if (baseline == ModelFile::LJ_BASELINE) {
          const int q = ti * lj.n_elements + tj;
          if (dist < lj.cutoff[q]) {
            double ep, de;
            lj_pair(lj, q, dist, ep, de);
            for (int a = 0; a < 3; ++a) g[a] += de * r[a] / dist;
          }
        }
        for (int a = 0; a < 3; ++a) f[a] += g[a];
        v.v[0] -= 0.5 * r[0] * g[0];
        v.v[1] -= 0.5 * r[1] * g[1];
        v.v[2] -= 0.5 * r[2] * g[2];
        v.v[3] -= 0.25 * (r[0] * g[1] + r[1] * g[0]);
        v.v[4] -= 0.25 * (r[0] * g[2] + r[2] * g[0]);
        v.v[5] -= 0.25 * (r[1] * g[2] + r[2] * g[1]);
      }
      for (int a = 0; a < 3; ++a) forces(i, a) += f[a];
      if (per_atom)
        for (int a = 0; a < 6; ++a) atom_virial(i, a) = v.v[a];
      sum += v;
    }, total);
    return total;
  }

  // Both passes on a CSR list in which every atom is a centre (the harness): energies (eV), forces (eV/A,
  // overwritten) and virial (eV, xx yy zz xy xz yz) of the n atoms. Returns the total energy.
  double evaluate(int n, Array<const int> element, Array<const int> offsets, Array<const int> neighbor,
                  Kokkos::View<const double *[3], Space> vectors, Array<double> energies, Kokkos::View<double *[3], Space> forces,
                  double virial[6]) const
  {
    const CsrPairs<Space> pairs{element, offsets, neighbor, vectors};
    Rows adjoint("hpot:D", n, adjoint_columns());
    Keep keep("hpot:eam", uses_keep() ? vectors.extent(0) : 0);
    const double total = first_pass(pairs, n, adjoint, keep, energies);
    Kokkos::deep_copy(forces, 0.0);
    const Virial w = second_pass(pairs, n, adjoint, keep, forces, AtomVirial());
    for (int a = 0; a < 6; ++a) virial[a] = w.v[a];
    return total;
  }

 private:
  int baseline_;
  int n_coef_ = 0;
  double energy_unit_ = 1.0;
  DescriptorView d_;
  ModelView m_;
  ExtrapolationView x_;
  EAMView e_;
  LJView lj_;
  std::vector<Kokkos::View<char *, Memory>> keep_alive_;    // the device copies the views point into
  mutable Rows scratch_;                                     // [centre][c, pair work, atom work], grown as needed

  Rows scratch_for(int n_centres) const
  {
    const int columns = n_coef_ + imax(density_work(d_), gradient_work(d_)) + residual_work(d_, m_, x_);
    if (static_cast<int>(scratch_.extent(0)) < n_centres)
      scratch_ = Rows(Kokkos::ViewAllocateWithoutInitializing("hpot:scratch"), n_centres, columns);
    return scratch_;
  }

  template <class T> const T *copy(const std::vector<T> &v)
  {
    Kokkos::View<char *, Memory> bytes("hpot:table", v.size() * sizeof(T) + 1);
    Kokkos::View<const char *, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> host(
        reinterpret_cast<const char *>(v.data()), v.size() * sizeof(T));
    if (!v.empty()) Kokkos::deep_copy(Kokkos::subview(bytes, std::make_pair(size_t(0), v.size() * sizeof(T))), host);
    keep_alive_.push_back(bytes);
    return reinterpret_cast<const T *>(bytes.data());
  }

  ModelView model_view(const Model &model)
  {
    ModelView v = model.view();
    v.coef = copy(model.coef);
    v.widths = copy(model.widths);
    v.node_offsets = copy(model.node_offsets);
    v.param_offsets = copy(model.param_offsets);
    v.members = nullptr;
    return v;
  }
};

}    // namespace hybridpot

#endif
