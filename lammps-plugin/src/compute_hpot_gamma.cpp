#include "compute_hpot_gamma.h"

#include "atom.h"
#include "error.h"
#include "force.h"
#include "update.h"

#include "pair_hpot.h"

#include <algorithm>
#include <cstring>

using namespace LAMMPS_NS;

ComputeHPotGamma::ComputeHPotGamma(LAMMPS *lmp, int narg, char **arg) : Compute(lmp, narg, arg)
{
  if (narg > 4 || (narg == 4 && strcmp(arg[3], "switch") != 0))
    error->all(FLERR, "Illegal compute hpot/gamma command: expected 'compute ID group hpot/gamma [switch]'");
  want_switch = narg == 4;
  peratom_flag = 1;
  size_peratom_cols = 0;
  scalar_flag = 1;
  extscalar = 0;
}

void ComputeHPotGamma::init()
{
  pair = dynamic_cast<PairHPot *>(force->pair_match("^hpot", 0));
  if (pair == nullptr) error->all(FLERR, "compute hpot/gamma needs pair_style hpot (alone or in hybrid/overlay)");
  pair->request_grades();
}

void ComputeHPotGamma::refresh()
{
  if (pair->grades_timestep() != update->ntimestep)
    error->all(FLERR, "compute hpot/gamma: no grades for step {} (they are computed with the forces; "
                      "use the compute on steps where forces were evaluated)", update->ntimestep);
  const int nlocal = atom->nlocal;
  values.resize(atom->nmax > 0 ? atom->nmax : 1);
  const double *source = want_switch ? pair->switches() : pair->grades();
  const int *mask = atom->mask;
  for (int i = 0; i < nlocal; ++i) values[i] = (mask[i] & groupbit) ? source[i] : 0.0;
  vector_atom = values.data();
}

void ComputeHPotGamma::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  refresh();
}

double ComputeHPotGamma::compute_scalar()
{
  invoked_scalar = update->ntimestep;
  refresh();
  double local = want_switch ? 1.0 : 0.0;
  const int *mask = atom->mask;
  for (int i = 0; i < atom->nlocal; ++i)
    if (mask[i] & groupbit) local = want_switch ? std::min(local, values[i]) : std::max(local, values[i]);
  MPI_Allreduce(&local, &scalar, 1, MPI_DOUBLE, want_switch ? MPI_MIN : MPI_MAX, world);
  return scalar;
}

double ComputeHPotGamma::memory_usage()
{
  return 8.0 * values.capacity();
}
