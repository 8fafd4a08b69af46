// pair_style hpot: see pair_hpot.h for the syntax and the algorithm.
#include "pair_hpot.h"

#ifndef HYBRIDPOT_LAMMPS_NUM_VER
#error "build with -DHYBRIDPOT_LAMMPS_NUM_VER=<the LAMMPS version number the plugin is built against>"
#endif

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#if HYBRIDPOT_LAMMPS_NUM_VER < 20220000
#include "neigh_request.h"    // LAMMPS 2021: the request's flags are set through its fields
#endif
#include "update.h"
#include "utils.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace LAMMPS_NS;
using hybridpot::ModelFile;
using hybridpot::NeighborEntry;

// Per-thread scratch: the neighbours of the current atom, its density, and the work arrays of kernels.h.
struct PairHPot::Workspace {
  std::vector<NeighborEntry> nb;
  std::vector<double> c, pair_work, atom_work;
  std::vector<double> tersoff_grad, tersoff_half, tersoff_scratch;
  std::vector<double> force, energy, virial;    // per-thread accumulation of the Tersoff pass (nall atoms)

  Workspace(const hybridpot::DescriptorView &d, const hybridpot::ModelView &m, const hybridpot::ExtrapolationView &x)
      : c(d.nu * d.L2), pair_work(std::max(hybridpot::density_work(d), hybridpot::gradient_work(d))),
        atom_work(hybridpot::residual_work(d, m, x))
  {
  }
};

PairHPot::PairHPot(LAMMPS *lmp) : Pair(lmp)
{
  if (lmp->num_ver != HYBRIDPOT_LAMMPS_NUM_VER)
    error->all(FLERR,
               "pair_style hpot was built against LAMMPS version {} but runs in LAMMPS {} ({}): "
               "reinstall hybridpot against this LAMMPS (pip install --force-reinstall --no-cache-dir hybridpot)",
               HYBRIDPOT_LAMMPS_NUM_VER, lmp->num_ver, lmp->version);
  ghostneigh = 0;
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;    // forces on ghosts are not all there: the virial is summed pair by pair
  centroidstressflag = CENTROID_NOTAVAIL;
}

PairHPot::~PairHPot()
{
  for (Workspace *w : work) delete w;
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairHPot::allocate()
{
  allocated = 1;
  const int n = atom->ntypes;
  memory->create(setflag, n + 1, n + 1, "pair:setflag");
  memory->create(cutsq, n + 1, n + 1, "pair:cutsq");
  for (int i = 1; i <= n; ++i)
    for (int j = 1; j <= n; ++j) setflag[i][j] = 0;
}

void PairHPot::settings(int narg, char **arg)
{
  if (narg != 1 && narg != 3) error->all(FLERR, "Illegal pair_style hpot command: expected FILE [baseline yes|no]");
  if (narg == 3) {
    if (strcmp(arg[1], "baseline") != 0) error->all(FLERR, "Illegal pair_style hpot keyword {}", arg[1]);
#if HYBRIDPOT_LAMMPS_NUM_VER >= 20220000
    use_baseline = utils::logical(FLERR, arg[2], false, lmp) == 1;
#else    // LAMMPS 2021 has no utils::logical: the words it accepts
    const std::string word = arg[2];
    if (word == "yes" || word == "on" || word == "true" || word == "1")
      use_baseline = true;
    else if (word == "no" || word == "off" || word == "false" || word == "0")
      use_baseline = false;
    else
      error->all(FLERR, "pair_style hpot: expected baseline yes or no, got {}", word);
#endif
  } else {
    use_baseline = true;
  }
  try {
    model = hybridpot::read_model_file(arg[0]);
  } catch (std::exception &e) {
    error->all(FLERR, "pair_style hpot: {}", e.what());
  }
  if (use_baseline && model.baseline == ModelFile::EXTERNAL_BASELINE)
    error->all(FLERR,
               "pair_style hpot {}: the baseline of this model is LAMMPS's pair style {}, which hpot does not evaluate; "
               "run it as `pair_style hybrid/overlay {} ... {} {} baseline no` (the pair.NAME.lmp of the export)",
               arg[0], model.external_style, model.external_style, "hpot", arg[0]);
  loaded = true;
  model.model.finalize();    // the committee's member views point into this object's tables
  dview = model.descriptor.view();
  mview = model.model.view();
  xview = model.extrapolation.view();
  eview = model.eam.view();
  ljview = model.lj.view();
  const hybridpot::Descriptor &d = model.descriptor;
  cutoff = d.rcut;
  if (use_baseline && model.baseline == ModelFile::EAM_BASELINE) cutoff = std::fmax(cutoff, model.eam.cutoff);
  if (use_baseline && model.baseline == ModelFile::LJ_BASELINE) cutoff = std::fmax(cutoff, model.lj.max_cutoff);
  if (use_baseline && model.baseline == ModelFile::TERSOFF_BASELINE) cutoff = std::fmax(cutoff, model.tersoff.max_cutoff);
  n_adjoint = d.n_coefficients();
  comm_forward = n_adjoint + (eam_active() ? 1 : 0);
  for (Workspace *w : work) delete w;
  work.clear();
}

void PairHPot::coeff(int narg, char **arg)
{
  if (!loaded) error->all(FLERR, "pair_coeff hpot: pair_style hpot FILE must come first");
  if (!allocated) allocate();
  const int ntypes = atom->ntypes;
  if (narg != 2 + ntypes)
    error->all(FLERR, "pair_coeff hpot: expected '* * El_1 ... El_{}' (an element or NULL per atom type), got {} words",
               ntypes, narg);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff hpot: the first two arguments must be * *");
  element_of_type.assign(ntypes + 1, -1);
  for (int t = 1; t <= ntypes; ++t) {
    const std::string name = arg[1 + t];
    if (name == "NULL") continue;
    int found = -1;
    for (size_t e = 0; e < model.elements.size(); ++e)
      if (model.elements[e] == name) found = static_cast<int>(e);
    if (found < 0) {
      std::string have;
      for (const std::string &e : model.elements) have += " " + e;
      error->all(FLERR, "pair_coeff hpot: element {} of atom type {} is not in the model (it has{})", name, t, have);
    }
    element_of_type[t] = found;
  }
  int count = 0;
  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j)
      if (element_of_type[i] >= 0 && element_of_type[j] >= 0) {
        setflag[i][j] = 1;
        ++count;
      }
  if (count == 0) error->all(FLERR, "pair_coeff hpot: no atom type is mapped to an element of the model");
}

void PairHPot::init_style()
{
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style hpot requires atom IDs");
  if (strcmp(update->unit_style, "metal") == 0) {
    energy_unit = 1.0;
  } else if (strcmp(update->unit_style, "real") == 0) {
    energy_unit = utils::get_conversion_factor(utils::ENERGY, utils::METAL2REAL);
    if (use_baseline && model.baseline != ModelFile::NONE)
      error->all(FLERR, "pair_style hpot: under units real the baseline of the model must run as LAMMPS's own pair style "
                        "(pair_style hybrid/overlay <baseline> hpot FILE baseline no)");
  } else {
    error->all(FLERR, "pair_style hpot: units {} are not supported; the model is in eV and Angstrom: use units metal "
                      "(or real, converted with LAMMPS's factor)", update->unit_style);
  }
  if (tersoff_active() && force->newton_pair == 0)
    error->all(FLERR, "pair_style hpot with a Tersoff baseline requires newton pair on (as pair_style tersoff does); "
                      "or use `baseline no` under hybrid/overlay with LAMMPS's tersoff");
#if HYBRIDPOT_LAMMPS_NUM_VER >= 20220000    // neighbour requests by flags (LAMMPS 2022 on)
  neighbor->add_request(this, NeighConst::REQ_FULL);
#else    // LAMMPS 2021 (e.g. 29 Sep 2021, the KOKKOS build of lammps-plugin/kokkos)
  const int irequest = neighbor->request(this, instance_me);
  neighbor->requests[irequest]->half = 0;
  neighbor->requests[irequest]->full = 1;
#endif
}

double PairHPot::init_one(int i, int j)
{
  if (setflag[i][j] == 0) error->all(FLERR, "All pair coeffs are not set");
  return cutoff;
}

int PairHPot::n_threads() const
{
#ifdef _OPENMP
  return comm->nthreads > 0 ? comm->nthreads : 1;
#else
  return 1;
#endif
}

PairHPot::Workspace &PairHPot::thread_work() const
{
#ifdef _OPENMP
  return *work[omp_get_thread_num()];
#else
  return *work[0];
#endif
}

void PairHPot::ensure_work(int n)
{
  while (static_cast<int>(work.size()) < n) work.push_back(new Workspace(dview, mview, xview));
}

void PairHPot::request_grades()
{
  if (!has_active_set())
    error->all(FLERR, "compute hpot/gamma: the model file has no active set (fit the model with `hybridpot fit`, "
                      "which stores it, and export it again)");
  grades_requested = true;
}

// the neighbours of local atom i closer than sqrt(cutsq) with a mapped type
void PairHPot::gather(int i, double cutsq_all, Workspace &w) const
{
  double **x = atom->x;
  const int *type = atom->type;
  const tagint *tag = atom->tag;
  const int n = list->numneigh[i];
  const int *jlist = list->firstneigh[i];
  w.nb.clear();
  for (int jj = 0; jj < n; ++jj) {
    const int j = jlist[jj] & NEIGHMASK;
    const int tj = element_of_type[type[j]];
    if (tj < 0) continue;
    NeighborEntry nb;
    nb.r[0] = x[j][0] - x[i][0];
    nb.r[1] = x[j][1] - x[i][1];
    nb.r[2] = x[j][2] - x[i][2];
    const double rsq = nb.r[0] * nb.r[0] + nb.r[1] * nb.r[1] + nb.r[2] * nb.r[2];
    if (!(rsq < cutsq_all)) continue;
    nb.d = std::sqrt(rsq);
    nb.index = j;
    nb.element = tj;
    nb.tag = static_cast<long>(tag[j]);
    w.nb.push_back(nb);
  }
}

// pass 1 for local atom i: density, invariants, residual energy and D = dE/dc; EAM density and F'; returns E_i
double PairHPot::first_pass(int i, Workspace &w, bool want_grades, double *eam_entries)
{
  const int ti = element_of_type[atom->type[i]];
  double *c = w.c.data();
  std::fill(w.c.begin(), w.c.end(), 0.0);
  for (const NeighborEntry &nb : w.nb)
    if (nb.d < dview.rcut) hybridpot::density_add(dview, nb.r, nb.d, nb.element, c, w.pair_work.data());
  double gamma, s;
  double *D = adjoint.data() + size_t(i) * n_adjoint;
  double energy = hybridpot::atom_residual(dview, mview, xview, ti, c, D, w.atom_work.data(), want_grades, gamma, s);
  if (energy_unit != 1.0) {    // units real: E and D = dE/dc in kcal/mol (linear in the energy unit, fallback included)
    energy *= energy_unit;
    for (int a = 0; a < n_adjoint; ++a) D[a] *= energy_unit;
  }
  if (want_grades) {
    gamma_atom[i] = gamma;
    switch_atom[i] = s;
  }
  if (eam_active()) {
    // rho_i and the pair energy; the radial derivatives pass 2 needs are kept per entry (3 numbers)
    double rho = 0.0, pair = 0.0;
    for (size_t k = 0; k < w.nb.size(); ++k) {
      const NeighborEntry &nb = w.nb[k];
      double *keep = eam_entries + 3 * k;
      if (!(nb.d < eview.cutoff)) {
        keep[0] = keep[1] = keep[2] = 0.0;
        continue;
      }
      double density, half_pair;
      hybridpot::eam_neighbor(eview, ti, nb.element, nb.d, density, half_pair, keep);
      rho += density;
      pair += half_pair;
    }
    double slope;
    const double embedding = hybridpot::eam_embedding(eview, ti, rho, slope);
    embedding_slope[i] = slope;
    energy += eview.scale * (embedding + pair);
  } else if (lj_active()) {
    for (const NeighborEntry &nb : w.nb) {
      const int k = ti * ljview.n_elements + nb.element;
      if (!(nb.d < ljview.cutoff[k])) continue;
      double e, de;
      hybridpot::lj_pair(ljview, k, nb.d, e, de);
      energy += 0.5 * e;
    }
  }
  return energy;
}

// pass 2 for local atom i: its whole force from every pair (i, j) of its full list; adds the virial
void PairHPot::second_pass(int i, Workspace &w, double *virial_sum, const double *eam_entries)
{
  const int ti = element_of_type[atom->type[i]];
  const double *Di = adjoint.data() + size_t(i) * n_adjoint;
  double fi[3] = {0.0, 0.0, 0.0};
  double *vatom_i = vflag_atom ? vatom[i] : nullptr;
  for (size_t k = 0; k < w.nb.size(); ++k) {
    const NeighborEntry &nb = w.nb[k];
    double grad[3] = {0.0, 0.0, 0.0};
    if (nb.d < dview.rcut)
      hybridpot::pair_gradient(dview, nb.r, nb.d, ti, nb.element, Di, adjoint.data() + size_t(nb.index) * n_adjoint,
                               w.pair_work.data(), grad);
    if (eam_active()) {
      const double *keep = eam_entries + 3 * k;
      const double s = eview.scale * (embedding_slope[i] * keep[0] + embedding_slope[nb.index] * keep[1] + keep[2]);
      for (int a = 0; a < 3; ++a) grad[a] += s * nb.r[a] / nb.d;
    } else if (lj_active()) {
      const int p = ti * ljview.n_elements + nb.element;
      if (nb.d < ljview.cutoff[p]) {
        double e, de;
        hybridpot::lj_pair(ljview, p, nb.d, e, de);
        for (int a = 0; a < 3; ++a) grad[a] += de * nb.r[a] / nb.d;
      }
    }
    fi[0] += grad[0];
    fi[1] += grad[1];
    fi[2] += grad[2];
    if (vflag_either) {
      // half of the pair's virial -r (x) g_eff (the other half comes with the pair's other entry)
      const double v[6] = {-0.5 * nb.r[0] * grad[0], -0.5 * nb.r[1] * grad[1], -0.5 * nb.r[2] * grad[2],
                           -0.25 * (nb.r[0] * grad[1] + nb.r[1] * grad[0]),
                           -0.25 * (nb.r[0] * grad[2] + nb.r[2] * grad[0]),
                           -0.25 * (nb.r[1] * grad[2] + nb.r[2] * grad[1])};
      for (int m = 0; m < 6; ++m) virial_sum[m] += v[m];
      if (vatom_i)
        for (int m = 0; m < 6; ++m) vatom_i[m] += v[m];
    }
  }
  double **f = atom->f;
  f[i][0] += fi[0];
  f[i][1] += fi[1];
  f[i][2] += fi[2];
}

// the Tersoff baseline: bond orders couple i, j and k, so forces go to the neighbours (newton on)
void PairHPot::tersoff_pass(double *virial_sum, double &energy_sum)
{
  const int nall = atom->nlocal + atom->nghost;
  const int nthreads = n_threads();
  const double cutsq_t = model.tersoff.max_cutoff * model.tersoff.max_cutoff;
  const int inum = list->inum;
  const int *ilist = list->ilist;
  double energy = 0.0, vsum[6] = {0, 0, 0, 0, 0, 0};
#pragma omp parallel num_threads(nthreads) reduction(+ : energy) reduction(+ : vsum[:6])
  {
    Workspace &w = thread_work();
    const bool own = nthreads > 1;    // per-thread buffers, summed below
    double *fbuf = nullptr, *ebuf = nullptr, *vbuf = nullptr;
    if (own) {
      w.force.assign(3 * size_t(nall), 0.0);
      if (eflag_atom) w.energy.assign(nall, 0.0);
      if (vflag_atom) w.virial.assign(6 * size_t(nall), 0.0);
      fbuf = w.force.data();
      ebuf = eflag_atom ? w.energy.data() : nullptr;
      vbuf = vflag_atom ? w.virial.data() : nullptr;
    }
    double **f = atom->f;
#pragma omp for schedule(static)
    for (int ii = 0; ii < inum; ++ii) {
      const int i = ilist[ii];
      const int ti = element_of_type[atom->type[i]];
      if (ti < 0) continue;
      gather(i, cutsq_t, w);
      const int n = static_cast<int>(w.nb.size());
      w.tersoff_grad.resize(3 * size_t(n));
      w.tersoff_half.resize(n);
      energy += hybridpot::tersoff_centre(model.tersoff, ti, static_cast<long>(atom->tag[i]), w.nb.data(), n,
                                          w.tersoff_grad.data(), w.tersoff_half.data(), w.tersoff_scratch);
      for (int e = 0; e < n; ++e) {
        const NeighborEntry &nb = w.nb[e];
        const double *g = &w.tersoff_grad[3 * e];
        const int j = nb.index;
        double *fi = own ? fbuf + 3 * size_t(i) : f[i];
        double *fj = own ? fbuf + 3 * size_t(j) : f[j];
        for (int a = 0; a < 3; ++a) {
          fi[a] += g[a];
          fj[a] -= g[a];
        }
        if (eflag_atom) {
          const double half = w.tersoff_half[e];
          if (own) {
            ebuf[i] += half;
            ebuf[j] += half;
          } else {
            eatom[i] += half;
            eatom[j] += half;
          }
        }
        if (vflag_either) {
          const double v[6] = {-nb.r[0] * g[0], -nb.r[1] * g[1], -nb.r[2] * g[2], -0.5 * (nb.r[0] * g[1] + nb.r[1] * g[0]),
                               -0.5 * (nb.r[0] * g[2] + nb.r[2] * g[0]), -0.5 * (nb.r[1] * g[2] + nb.r[2] * g[1])};
          for (int k = 0; k < 6; ++k) vsum[k] += v[k];
          if (vflag_atom)
            for (int k = 0; k < 6; ++k) {
              if (own) {
                vbuf[6 * size_t(i) + k] += 0.5 * v[k];
                vbuf[6 * size_t(j) + k] += 0.5 * v[k];
              } else {
                vatom[i][k] += 0.5 * v[k];
                vatom[j][k] += 0.5 * v[k];
              }
            }
        }
      }
    }
    if (own) {
      // sum the threads' buffers: each thread adds one slice of atoms from every buffer
#pragma omp barrier
#pragma omp for schedule(static)
      for (int a = 0; a < nall; ++a)
        for (int t = 0; t < nthreads; ++t) {
          const Workspace &o = *work[t];
          for (int k = 0; k < 3; ++k) f[a][k] += o.force[3 * size_t(a) + k];
          if (eflag_atom) eatom[a] += o.energy[a];
          if (vflag_atom)
            for (int k = 0; k < 6; ++k) vatom[a][k] += o.virial[6 * size_t(a) + k];
        }
    }
  }
  energy_sum += energy;
  for (int k = 0; k < 6; ++k) virial_sum[k] += vsum[k];
}

void PairHPot::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (static_cast<int>(embedding_slope.size()) < atom->nmax) {
    adjoint.resize(size_t(atom->nmax) * n_adjoint);
    embedding_slope.resize(atom->nmax);
  }
  const bool want_grades = grades_requested || model.extrapolation.fallback;
  if (want_grades && static_cast<int>(gamma_atom.size()) < atom->nmax) {
    gamma_atom.resize(atom->nmax);
    switch_atom.resize(atom->nmax);
  }
  if (want_grades)
    for (int i = 0; i < atom->nlocal; ++i) gamma_atom[i] = 0.0, switch_atom[i] = 1.0;
  const int nthreads = n_threads();
  ensure_work(nthreads);
  const int inum = list->inum;
  const int *ilist = list->ilist;
  const double cutsq_all = cutoff * cutoff;
  double energy = 0.0, virial_sum[6] = {0, 0, 0, 0, 0, 0};
  if (eam_active()) {    // room for the EAM numbers of every neighbour-list entry
    entry_offset.resize(size_t(inum) + 1);
    entry_offset[0] = 0;
    for (int ii = 0; ii < inum; ++ii) entry_offset[ii + 1] = entry_offset[ii] + list->numneigh[ilist[ii]];
    if (eam_pairs.size() < 3 * size_t(entry_offset[inum])) eam_pairs.resize(3 * size_t(entry_offset[inum]));
  }
  double *eam_base = eam_pairs.data();

  // pass 1: per-atom energies and adjoints of the local atoms
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(+ : energy)
  for (int ii = 0; ii < inum; ++ii) {
    Workspace &w = thread_work();
    const int i = ilist[ii];
    if (element_of_type[atom->type[i]] < 0) continue;
    gather(i, cutsq_all, w);
    const double e = first_pass(i, w, want_grades, eam_active() ? eam_base + 3 * entry_offset[ii] : nullptr);
    energy += e;
    if (eflag_atom) eatom[i] += e;
  }
  if (!std::isfinite(energy))
    error->one(FLERR, "pair_style hpot: the energy is not finite on step {} (atoms too close, or far outside "
                      "the fitted range)", update->ntimestep);
  // D (and F') of the ghost atoms from their owners
#if HYBRIDPOT_LAMMPS_NUM_VER >= 20220000
  comm->forward_comm(this);
#else
  comm->forward_comm_pair(this);
#endif

  // pass 2: the whole force on every local atom
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(+ : virial_sum[:6])
  for (int ii = 0; ii < inum; ++ii) {
    Workspace &w = thread_work();
    const int i = ilist[ii];
    if (element_of_type[atom->type[i]] < 0) continue;
    gather(i, cutsq_all, w);
    second_pass(i, w, virial_sum, eam_active() ? eam_base + 3 * entry_offset[ii] : nullptr);
  }
  if (tersoff_active()) tersoff_pass(virial_sum, energy);

  if (eflag_global) eng_vdwl += energy;
  if (vflag_global)
    for (int k = 0; k < 6; ++k) virial[k] += virial_sum[k];
  if (want_grades) grades_step = update->ntimestep;
}

int PairHPot::pack_forward_comm(int n, int *list_, double *buf, int /*pbc_flag*/, int * /*pbc*/)
{
  int m = 0;
  const bool eam = eam_active();
  for (int k = 0; k < n; ++k) {
    const int j = list_[k];
    const double *D = adjoint.data() + size_t(j) * n_adjoint;
    for (int a = 0; a < n_adjoint; ++a) buf[m++] = D[a];
    if (eam) buf[m++] = embedding_slope[j];
  }
  return m;
}

void PairHPot::unpack_forward_comm(int n, int first, double *buf)
{
  int m = 0;
  const bool eam = eam_active();
  for (int i = first; i < first + n; ++i) {
    double *D = adjoint.data() + size_t(i) * n_adjoint;
    for (int a = 0; a < n_adjoint; ++a) D[a] = buf[m++];
    if (eam) embedding_slope[i] = buf[m++];
  }
}

double PairHPot::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += 8.0 * (adjoint.capacity() + embedding_slope.capacity() + gamma_atom.capacity() + switch_atom.capacity() +
                  eam_pairs.capacity() + entry_offset.capacity());
  for (Workspace *w : work) bytes += 8.0 * (w->force.capacity() + w->energy.capacity() + w->virial.capacity());
  return bytes;
}
