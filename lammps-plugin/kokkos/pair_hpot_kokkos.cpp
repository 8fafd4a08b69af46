// pair_style hpot/kk: see pair_hpot_kokkos.h.
#include "pair_hpot_kokkos.h"

#include "atom_kokkos.h"
#include "atom_masks.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "kokkos.h"
#include "memory_kokkos.h"
#include "neigh_request.h"
#include "neighbor.h"
#include "update.h"

#include <cmath>
#include <exception>

using namespace LAMMPS_NS;

template <class DeviceType>
PairHPotKokkos<DeviceType>::PairHPotKokkos(LAMMPS *lmp) : PairHPot(lmp)
{
  respa_enable = 0;
  kokkosable = 1;
  atomKK = (AtomKokkos *) atom;
  execution_space = ExecutionSpaceFromDevice<DeviceType>::space;
  datamask_read = X_MASK | F_MASK | TYPE_MASK;
  datamask_modify = F_MASK;
}

template <class DeviceType>
PairHPotKokkos<DeviceType>::~PairHPotKokkos() = default;

template <class DeviceType>
void PairHPotKokkos<DeviceType>::settings(int narg, char **arg)
{
  PairHPot::settings(narg, arg);
  try {
    hybrid.reset(new Hybrid(model, use_baseline));
  } catch (std::exception &e) {
    error->all(FLERR, "pair_style hpot/kk {}: {}", arg[0], e.what());
  }
}

template <class DeviceType>
void PairHPotKokkos<DeviceType>::coeff(int narg, char **arg)
{
  PairHPot::coeff(narg, arg);
  d_element_of_type = Kokkos::View<int *, DeviceType>("hpot:element_of_type", element_of_type.size());
  auto host = Kokkos::create_mirror_view(d_element_of_type);
  for (size_t t = 0; t < element_of_type.size(); ++t) host(t) = element_of_type[t];
  Kokkos::deep_copy(d_element_of_type, host);
}

template <class DeviceType>
void PairHPotKokkos<DeviceType>::init_style()
{
  PairHPot::init_style();    // checks, units, and the (host) request of a full list, made kokkos here
  hybrid->set_energy_unit(energy_unit);
  const bool on_host = std::is_same<DeviceType, LMPHostType>::value && !std::is_same<DeviceType, LMPDeviceType>::value;
  const bool on_device = std::is_same<DeviceType, LMPDeviceType>::value;
#if HYBRIDPOT_KOKKOS_API == 2021
  NeighRequest *request = neighbor->requests[neighbor->nrequest - 1];
  request->kokkos_host = on_host;
  request->kokkos_device = on_device;
  request->half = 0;
  request->full = 1;
#else
  auto request = neighbor->find_request(this);
  request->set_kokkos_host(on_host);
  request->set_kokkos_device(on_device);
  request->enable_full();
#endif
}

template <class DeviceType>
void PairHPotKokkos<DeviceType>::request_grades()
{
  error->all(FLERR, "compute hpot/gamma is not available with pair_style hpot/kk: run pair_style hpot (the host style) "
                    "where the extrapolation grade is needed");
}

template <class DeviceType>
void PairHPotKokkos<DeviceType>::compute(int eflag_in, int vflag_in)
{
  ev_init(eflag_in, vflag_in);    // host eatom/vatom (filled below from the device when asked for)
  atomKK->sync(execution_space, datamask_read);

  const int nall = atom->nlocal + atom->nghost;
  const int inum = list->inum;
  auto *k_list = static_cast<NeighListKokkos<DeviceType> *>(list);
  HPotNeighbors<DeviceType> pairs;
  pairs.x = atomKK->k_x.template view<DeviceType>();
  pairs.type = atomKK->k_type.template view<DeviceType>();
  pairs.element_of_type = d_element_of_type;
  pairs.ilist = k_list->d_ilist;
  pairs.numneigh = k_list->d_numneigh;
  pairs.neighbors = k_list->d_neighbors;
  pairs.cutsq = cutoff * cutoff;
  pairs.max_entries = static_cast<int>(k_list->d_neighbors.extent(1));

  const int columns = hybrid->adjoint_columns();
  if (static_cast<int>(k_adjoint.extent(0)) < atom->nmax || static_cast<int>(k_adjoint.extent(1)) != columns)
    k_adjoint = Adjoint("hpot:adjoint", atom->nmax, columns);
  if (hybrid->uses_keep() && static_cast<long>(d_keep.extent(0)) < static_cast<long>(inum) * pairs.max_entries)
    d_keep = typename Hybrid::Keep("hpot:eam", static_cast<long>(inum) * pairs.max_entries);
  if (eflag_atom && static_cast<int>(d_energy.extent(0)) < nall)
    d_energy = typename Hybrid::template Array<double>("hpot:eatom", atom->nmax);
  if (vflag_atom && static_cast<int>(d_virial.extent(0)) < nall)
    d_virial = typename Hybrid::AtomVirial("hpot:vatom", atom->nmax);
  if (eflag_atom) Kokkos::deep_copy(d_energy, 0.0);
  if (vflag_atom) Kokkos::deep_copy(d_virial, 0.0);

  // pass 1: D (and F') of the local atoms
  k_adjoint.template sync<DeviceType>();
  const double energy = hybrid->first_pass(pairs, inum, k_adjoint.template view<DeviceType>(), d_keep,
                                           eflag_atom ? d_energy : typename Hybrid::template Array<double>());
  k_adjoint.template modify<DeviceType>();
  if (!std::isfinite(energy))
    error->one(FLERR, "pair_style hpot/kk: the energy is not finite on step {} (atoms too close, or far outside "
                      "the fitted range)", update->ntimestep);

  // their ghost copies
#if HYBRIDPOT_KOKKOS_API == 2021
  comm->forward_comm_pair(this);
#else
  comm->forward_comm(this);
#endif
  k_adjoint.template sync<DeviceType>();

  // pass 2: the whole force on every local atom
  auto f = atomKK->k_f.template view<DeviceType>();
  const hybridpot::Virial w = hybrid->second_pass(pairs, inum, k_adjoint.template view<DeviceType>(), d_keep, f,
                                                  vflag_atom ? d_virial : typename Hybrid::AtomVirial());
  atomKK->modified(execution_space, datamask_modify);

  if (eflag_global) eng_vdwl += energy;
  if (vflag_global)
    for (int k = 0; k < 6; ++k) virial[k] += w.v[k];
  if (eflag_atom) {
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_energy);
    for (int i = 0; i < atom->nlocal; ++i) eatom[i] += host(i);
  }
  if (vflag_atom) {
    auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d_virial);
    for (int i = 0; i < atom->nlocal; ++i)
      for (int k = 0; k < 6; ++k) vatom[i][k] += host(i, k);
  }
}

// forward communication on the host (`package kokkos comm no`, or the host variant of the style)
template <class DeviceType>
int PairHPotKokkos<DeviceType>::pack_forward_comm(int n, int *list_, double *buf, int /*pbc_flag*/, int * /*pbc*/)
{
  k_adjoint.sync_host();
  const int columns = k_adjoint.extent(1);
  int m = 0;
  for (int k = 0; k < n; ++k)
    for (int a = 0; a < columns; ++a) buf[m++] = k_adjoint.h_view(list_[k], a);
  return m;
}

template <class DeviceType>
void PairHPotKokkos<DeviceType>::unpack_forward_comm(int n, int first, double *buf)
{
  k_adjoint.sync_host();
  const int columns = k_adjoint.extent(1);
  int m = 0;
  for (int i = first; i < first + n; ++i)
    for (int a = 0; a < columns; ++a) k_adjoint.h_view(i, a) = buf[m++];
  k_adjoint.modify_host();
}

// forward communication on the device
template <class DeviceType>
template <class List, class Buffer>
int PairHPotKokkos<DeviceType>::pack_device(int n, const List &list_, const Buffer &buf)
{
  k_adjoint.template sync<DeviceType>();
  const auto adjoint = k_adjoint.template view<DeviceType>();
  const int columns = adjoint.extent(1);
  Kokkos::parallel_for("hpot:pack", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, n), KOKKOS_LAMBDA(const int k) {
    const int j = list_(k);
    for (int a = 0; a < columns; ++a) buf(k * columns + a) = adjoint(j, a);
  });
  return n * columns;
}

template <class DeviceType>
template <class Buffer>
void PairHPotKokkos<DeviceType>::unpack_device(int n, int first, const Buffer &buf)
{
  k_adjoint.template sync<DeviceType>();
  const auto adjoint = k_adjoint.template view<DeviceType>();
  const int columns = adjoint.extent(1);
  Kokkos::parallel_for("hpot:unpack", Kokkos::RangePolicy<typename DeviceType::execution_space>(0, n), KOKKOS_LAMBDA(const int k) {
    for (int a = 0; a < columns; ++a) adjoint(first + k, a) = buf(k * columns + a);
  });
  k_adjoint.template modify<DeviceType>();
}

#if HYBRIDPOT_KOKKOS_API == 2021
template <class DeviceType>
int PairHPotKokkos<DeviceType>::pack_forward_comm_kokkos(int n, DAT::tdual_int_2d k_sendlist, int iswap, DAT::tdual_xfloat_1d &buf,
                                                         int /*pbc_flag*/, int * /*pbc*/)
{
  const auto lists = k_sendlist.view<DeviceType>();
  return pack_device(n, Kokkos::subview(lists, iswap, Kokkos::ALL()), buf.view<DeviceType>());
}

template <class DeviceType>
void PairHPotKokkos<DeviceType>::unpack_forward_comm_kokkos(int n, int first, DAT::tdual_xfloat_1d &buf)
{
  unpack_device(n, first, buf.view<DeviceType>());
}
#else
template <class DeviceType>
int PairHPotKokkos<DeviceType>::pack_forward_comm_kokkos(int n, DAT::tdual_int_1d k_sendlist, DAT::tdual_double_1d &buf,
                                                         int /*pbc_flag*/, int * /*pbc*/)
{
  return pack_device(n, k_sendlist.view<DeviceType>(), buf.view<DeviceType>());
}

template <class DeviceType>
void PairHPotKokkos<DeviceType>::unpack_forward_comm_kokkos(int n, int first, DAT::tdual_double_1d &buf)
{
  unpack_device(n, first, buf.view<DeviceType>());
}
#endif

template <class DeviceType>
double PairHPotKokkos<DeviceType>::memory_usage()
{
  double bytes = PairHPot::memory_usage();
  bytes += 8.0 * (k_adjoint.extent(0) * k_adjoint.extent(1) + 3.0 * d_keep.extent(0) + d_energy.extent(0) + 6.0 * d_virial.extent(0));
  return bytes;
}

namespace LAMMPS_NS {
template class PairHPotKokkos<LMPDeviceType>;
#ifdef LMP_KOKKOS_GPU
template class PairHPotKokkos<LMPHostType>;
#endif
}    // namespace LAMMPS_NS
