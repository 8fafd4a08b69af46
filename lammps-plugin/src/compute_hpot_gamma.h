// compute ID group hpot/gamma [switch]
//
// Per-atom extrapolation grade gamma of pair_style hpot (D-optimality against the MaxVol active
// set of the training descriptors: gamma <= 1 interpolation, > 1 extrapolation), the same number as
// hybridpot's `potential.uncertainty(atoms)["gamma"]`; with `switch`, the fallback factor s in [0, 1]
// by which the residual of each atom is scaled instead. The global scalar is the largest value over
// the group, so `variable g equal c_ID` and `fix halt 10 all v_g > 5.0` stop a run that extrapolates.
#ifndef LMP_COMPUTE_HPOT_GAMMA_H
#define LMP_COMPUTE_HPOT_GAMMA_H

#include "compute.h"

#include <vector>

namespace LAMMPS_NS {

class ComputeHPotGamma : public Compute {
 public:
  ComputeHPotGamma(class LAMMPS *, int, char **);
  void init() override;
  void compute_peratom() override;
  double compute_scalar() override;
  double memory_usage() override;

 private:
  class PairHPot *pair = nullptr;
  bool want_switch = false;
  std::vector<double> values;
  void refresh();
};

}    // namespace LAMMPS_NS

#endif
