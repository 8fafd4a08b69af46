// The hybrid's energies and forces as Kokkos kernels: the math of ../src/kernels.h (the same functions the
// host pair style calls) in Kokkos::parallel_for / parallel_reduce over atoms, on the tables copied into
// the memory space of an execution space (Serial and OpenMP on the host, CUDA or HIP on a GPU).
//
// Input: a full pair list in CSR form (the pairs of atom i are offsets[i] .. offsets[i + 1]; each with its
// neighbour j and the vector r = x_j - x_i including the periodic image), the element of every atom. Every
// atom is a centre (no ghost atoms): the neighbour of a pair is an atom of the list, so D_j is known.
// Output: per-atom energies (eV), forces (eV/A) and the virial W = -sum_pairs r (x) g (eV, xx yy zz xy xz yz).
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

template <class ExecutionSpace>
class KokkosHybrid {
 public:
  using Memory = typename ExecutionSpace::memory_space;
  template <class T> using Array = Kokkos::View<T *, Memory>;

  explicit KokkosHybrid(const ModelFile &mf) : baseline_(mf.baseline)
  {
    if (mf.baseline == ModelFile::TERSOFF_BASELINE)
      throw std::runtime_error("the Kokkos driver has no Tersoff baseline (use the host pair style, or `baseline no`)");
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
  }

  // Energies, forces and virial of the atoms of a CSR pair list (see the file's header). Returns the total energy.
  double evaluate(int n, Array<const int> element, Array<const int> offsets, Array<const int> neighbor,
                  Kokkos::View<const double *[3], Memory> vectors, Array<double> energies, Kokkos::View<double *[3], Memory> forces,
                  double virial[6]) const
  {
    const DescriptorView d = d_;
    const ModelView m = m_;
    const ExtrapolationView x = x_;
    const EAMView e = e_;
    const LJView lj = lj_;
    const int baseline = baseline_;
    const int n_pairs = static_cast<int>(vectors.extent(0));
    const int n_coef = d.nu * d.L2;
    const int pair_work = imax(density_work(d), gradient_work(d)), atom_work = residual_work(d, m, x);
    Kokkos::View<double **, Memory> adjoint("hpot:D", n, n_coef), scratch("hpot:scratch", n, n_coef + pair_work + atom_work);
    Array<double> slope("hpot:F'", n);
    Kokkos::View<double *[3], Memory> keep("hpot:eam", n_pairs);

    // pass 1: density, residual and D of every atom; EAM density, F(rho) and the radial derivatives of its pairs
    Kokkos::parallel_for("hpot:pass1", Kokkos::RangePolicy<ExecutionSpace>(0, n), KOKKOS_LAMBDA(const int i) {
      double *c = &scratch(i, 0), *pw = c + n_coef, *aw = pw + pair_work;
      for (int k = 0; k < n_coef; ++k) c[k] = 0.0;
      const int ti = element(i);
      for (int p = offsets(i); p < offsets(i + 1); ++p) {
        const double r[3] = {vectors(p, 0), vectors(p, 1), vectors(p, 2)};
        const double dist = sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
        if (dist < d.rcut) density_add(d, r, dist, element(neighbor(p)), c, pw);
      }
      double gamma, s;
      double energy = atom_residual(d, m, x, ti, c, &adjoint(i, 0), aw, false, gamma, s);
      if (baseline == ModelFile::EAM_BASELINE) {
        double rho = 0.0, pair = 0.0;
        for (int p = offsets(i); p < offsets(i + 1); ++p) {
          const double dist = sqrt(vectors(p, 0) * vectors(p, 0) + vectors(p, 1) * vectors(p, 1) + vectors(p, 2) * vectors(p, 2));
          double kp[3] = {0.0, 0.0, 0.0};
          if (dist < e.cutoff) {
            double density, half_pair;
            eam_neighbor(e, ti, element(neighbor(p)), dist, density, half_pair, kp);
            rho += density;
            pair += half_pair;
          }
          for (int a = 0; a < 3; ++a) keep(p, a) = kp[a];
        }
        double fp;
        energy += e.scale * (eam_embedding(e, ti, rho, fp) + pair);
        slope(i) = fp;
      } else if (baseline == ModelFile::LJ_BASELINE) {
        for (int p = offsets(i); p < offsets(i + 1); ++p) {
          const double dist = sqrt(vectors(p, 0) * vectors(p, 0) + vectors(p, 1) * vectors(p, 1) + vectors(p, 2) * vectors(p, 2));
          const int k = ti * lj.n_elements + element(neighbor(p));
          if (dist < lj.cutoff[k]) {
            double ep, de;
            lj_pair(lj, k, dist, ep, de);
            energy += 0.5 * ep;
          }
        }
      }
      energies(i) = energy;
    });
    Kokkos::fence();

    // pass 2: the whole force on every atom from its own pairs (D of both atoms of a pair is known)
    Kokkos::View<double *[6], Memory> atom_virial("hpot:virial", n);
    Kokkos::parallel_for("hpot:pass2", Kokkos::RangePolicy<ExecutionSpace>(0, n), KOKKOS_LAMBDA(const int i) {
      double *pw = &scratch(i, 0) + n_coef;
      const int ti = element(i);
      double f[3] = {0.0, 0.0, 0.0}, v[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
      for (int p = offsets(i); p < offsets(i + 1); ++p) {
        const int j = neighbor(p), tj = element(j);
        const double r[3] = {vectors(p, 0), vectors(p, 1), vectors(p, 2)};
        const double dist = sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2]);
        double g[3] = {0.0, 0.0, 0.0};
        if (dist < d.rcut) pair_gradient(d, r, dist, ti, tj, &adjoint(i, 0), &adjoint(j, 0), pw, g);
        if (baseline == ModelFile::EAM_BASELINE) {
          const double s = e.scale * (slope(i) * keep(p, 0) + slope(j) * keep(p, 1) + keep(p, 2));
          for (int a = 0; a < 3; ++a) g[a] += s * r[a] / dist;
        } else if (baseline == ModelFile::LJ_BASELINE) {
          const int k = ti * lj.n_elements + tj;
          if (dist < lj.cutoff[k]) {
            double ep, de;
            lj_pair(lj, k, dist, ep, de);
            for (int a = 0; a < 3; ++a) g[a] += de * r[a] / dist;
          }
        }
        for (int a = 0; a < 3; ++a) f[a] += g[a];
        v[0] -= 0.5 * r[0] * g[0];
        v[1] -= 0.5 * r[1] * g[1];
        v[2] -= 0.5 * r[2] * g[2];
        v[3] -= 0.25 * (r[0] * g[1] + r[1] * g[0]);
        v[4] -= 0.25 * (r[0] * g[2] + r[2] * g[0]);
        v[5] -= 0.25 * (r[1] * g[2] + r[2] * g[1]);
      }
      for (int a = 0; a < 3; ++a) forces(i, a) = f[a];
      for (int a = 0; a < 6; ++a) atom_virial(i, a) = v[a];
    });
    Kokkos::fence();
    for (int a = 0; a < 6; ++a) {
      double sum = 0.0;
      Kokkos::parallel_reduce("hpot:virial_sum", Kokkos::RangePolicy<ExecutionSpace>(0, n),
                              KOKKOS_LAMBDA(const int i, double &acc) { acc += atom_virial(i, a); }, sum);
      virial[a] = sum;
    }
    double total = 0.0;
    Kokkos::parallel_reduce("hpot:energy", Kokkos::RangePolicy<ExecutionSpace>(0, n),
                            KOKKOS_LAMBDA(const int i, double &acc) { acc += energies(i); }, total);
    return total;
  }

 private:
  int baseline_;
  DescriptorView d_;
  ModelView m_;
  ExtrapolationView x_;
  EAMView e_;
  LJView lj_;
  std::vector<Kokkos::View<char *, Memory>> keep_alive_;    // the device copies the views point into

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
