// pair_style hpot: a fitted hybridpot model (empirical baseline + SO(3) residual) in LAMMPS.
//
// Named hpot, not hybridpot: LAMMPS takes every pair style whose name matches the regex "^hybrid" for
// its own pair_style hybrid (Neighbor::init, Force::pair_match("^hybrid", 0)) and reads PairHybrid
// fields from it, which crashes with any other class.
//
//   pair_style hpot FILE [baseline yes|no]
//   pair_coeff * * El_1 ... El_ntypes          (element of each atom type, or NULL)
//
// FILE is the NAME.hybridpot.lmp file `hybridpot export --lammps` writes (lammps-plugin/FORMAT.md).
// `baseline no` evaluates the residual only, for `pair_style hybrid/overlay <LAMMPS's baseline> hpot
// FILE baseline no`. Energies, forces, per-atom energies and virials are those of hybridpot's own
// evaluation (tests compare them to 1e-10 relative).
//
// Units: the model is in eV and Angstrom. Under `units metal` it runs as it is; under `units real`
// (a ReaxFF baseline, whose force field is in kcal/mol, under hybrid/overlay) the residual's energies,
// forces and virials are converted to kcal/mol with LAMMPS's own factor
// (utils::get_conversion_factor(ENERGY, METAL2REAL)); a baseline the plugin evaluates itself must then run
// as LAMMPS's style (`baseline no`). Other unit systems are refused.
//
// Algorithm (newton on or off, any number of OpenMP threads): pass 1 computes, for each local atom,
// its density coefficients, invariants, energy and the adjoint D = dE/dc (and the EAM density and
// F'(rho)); D and F' are sent to the ghost atoms (forward communication); pass 2 gives each local
// atom i its whole force from its full neighbour list, the pair (i, j) seen from both sides:
// F_i = sum_j grad[w_j D_i + (-1)^l w_i D_j] . (g Y)(r_ij), so no force is written to a ghost or to
// another thread's atom. A Tersoff baseline, whose bond order couples three atoms, is added in a
// third pass that writes forces to the neighbours (it needs newton on, as pair_style tersoff does).
#ifndef LMP_PAIR_HPOT_H
#define LMP_PAIR_HPOT_H

#include "pair.h"

#include "model.h"

#include <vector>

namespace LAMMPS_NS {

class PairHPot : public Pair {
 public:
  PairHPot(class LAMMPS *);
  ~PairHPot() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;
  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  double memory_usage() override;

  // for compute hpot/gamma: per local atom, the extrapolation grade and the fallback switch,
  // computed with the forces from the next force evaluation on
  virtual void request_grades();    // hpot/kk refuses
  bool has_active_set() const { return model.extrapolation.M > 0; }
  const double *grades() const { return gamma_atom.data(); }
  const double *switches() const { return switch_atom.data(); }
  bigint grades_timestep() const { return grades_step; }

 protected:
  struct Workspace;

  hybridpot::ModelFile model;
  hybridpot::DescriptorView dview;    // views of model's tables for the math of kernels.h
  hybridpot::ModelView mview;
  hybridpot::ExtrapolationView xview;
  hybridpot::EAMView eview;
  hybridpot::LJView ljview;
  bool loaded = false;
  bool use_baseline = true;
  double energy_unit = 1.0;    // the LAMMPS energy unit per eV (1 in metal units, 23.06... kcal/mol in real units)
  std::vector<int> element_of_type;    // [LAMMPS type] -> model element, -1 for NULL
  double cutoff = 0.0;

  int n_adjoint = 0;                  // doubles of D per atom
  std::vector<double> adjoint;        // D, [atom][n_adjoint], local and ghost atoms
  std::vector<double> embedding_slope;    // EAM F'(rho), local and ghost atoms
  std::vector<double> gamma_atom, switch_atom;
  std::vector<double> eam_pairs;       // per neighbour entry of pass 1: f'_j(r), f'_i(r), phi'(r), reused by pass 2
  std::vector<bigint> entry_offset;    // first entry of each local atom (ilist order) in eam_pairs
  bool grades_requested = false;
  bigint grades_step = -1;
  std::vector<Workspace *> work;

  void allocate();
  int n_threads() const;
  void ensure_work(int);
  Workspace &thread_work() const;    // the calling OpenMP thread's workspace
  void gather(int i, double cutsq, Workspace &w) const;
  double first_pass(int i, Workspace &w, bool want_grades, double *eam_entries);
  void second_pass(int i, Workspace &w, double *virial_sum, const double *eam_entries);
  void tersoff_pass(double *virial_sum, double &energy_sum);
  bool eam_active() const { return use_baseline && model.baseline == hybridpot::ModelFile::EAM_BASELINE; }
  bool lj_active() const { return use_baseline && model.baseline == hybridpot::ModelFile::LJ_BASELINE; }
  bool tersoff_active() const { return use_baseline && model.baseline == hybridpot::ModelFile::TERSOFF_BASELINE; }
};

}    // namespace LAMMPS_NS

#endif
