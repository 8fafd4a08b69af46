// Registers pair_style hpot (and hpot/omp, the same threaded code under the OPENMP suffix)
// and compute hpot/gamma with LAMMPS; built against a LAMMPS with KOKKOS (-DHYBRIDPOT_LAMMPS_KOKKOS), also
// pair_style hpot/kk (kokkos/pair_hpot_kokkos.h).
#include "lammpsplugin_api.h"

#include "compute_hpot_gamma.h"
#include "pair_hpot.h"
#ifdef HYBRIDPOT_LAMMPS_KOKKOS    // built against a LAMMPS with the KOKKOS package (lammps-plugin/kokkos)
#include "pair_hpot_kokkos.h"
#endif

#ifndef HYBRIDPOT_LAMMPS_VERSION
#error "build with -DHYBRIDPOT_LAMMPS_VERSION=\"<date string of the LAMMPS version>\""
#endif

using namespace LAMMPS_NS;

static Pair *create_pair(LAMMPS *lmp)
{
  return new PairHPot(lmp);
}

#ifdef HYBRIDPOT_LAMMPS_KOKKOS
template <class DeviceType> static Pair *create_pair_kokkos(LAMMPS *lmp)
{
  return new PairHPotKokkos<DeviceType>(lmp);
}
#endif

static Compute *create_gamma(LAMMPS *lmp, int narg, char **arg)
{
  return new ComputeHPotGamma(lmp, narg, arg);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  auto register_plugin = reinterpret_cast<lammpsplugin_regfunc>(regfunc);
  lammpsplugin_t plugin;
  plugin.version = HYBRIDPOT_LAMMPS_VERSION;
  plugin.author = "hybridpot developers";
  plugin.handle = handle;

  plugin.style = "pair";
  plugin.info = "hybridpot: empirical baseline + SO(3) ML residual, fitted with hybridpot";
  plugin.creator.v1 = reinterpret_cast<lammpsplugin_factory1 *>(&create_pair);
  plugin.name = "hpot";
  register_plugin(&plugin, lmp);
  plugin.name = "hpot/omp";
  register_plugin(&plugin, lmp);
#ifdef HYBRIDPOT_LAMMPS_KOKKOS
  // the Kokkos style on LAMMPS's device (what -sf kk picks) and, in a GPU build, its host variant
  plugin.info = "hybridpot on Kokkos (KOKKOS package)";
  plugin.creator.v1 = reinterpret_cast<lammpsplugin_factory1 *>(&create_pair_kokkos<LMPDeviceType>);
  plugin.name = "hpot/kk";
  register_plugin(&plugin, lmp);
  plugin.name = "hpot/kk/device";
  register_plugin(&plugin, lmp);
  plugin.creator.v1 = reinterpret_cast<lammpsplugin_factory1 *>(&create_pair_kokkos<LMPHostType>);
  plugin.name = "hpot/kk/host";
  register_plugin(&plugin, lmp);
#endif

  plugin.style = "compute";
  plugin.name = "hpot/gamma";
  plugin.info = "hpot/gamma: per-atom extrapolation grade (or fallback switch) of pair_style hpot";
  plugin.creator.v2 = reinterpret_cast<lammpsplugin_factory2 *>(&create_gamma);
  register_plugin(&plugin, lmp);
}
