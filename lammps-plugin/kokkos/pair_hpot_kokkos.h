// pair_style hpot/kk: pair_style hpot (../src/pair_hpot.h) inside LAMMPS's KOKKOS package.
//
//   lmp -k on t N -sf kk -in in.lmp        (or -k on g 1 on a GPU build; `pair_style hpot/kk FILE [baseline yes|no]`)
//
// The same input as hpot. The per-atom math is ../src/kernels.h, run by the Kokkos passes of hpot_kokkos.h
// (KokkosHybrid) over LAMMPS's Kokkos data: positions and types from AtomKokkos, a full neighbour list from
// NeighListKokkos (requested full whatever `package kokkos neigh` says), forces added to the local atoms only
// (correct with newton on and off). Between the passes the adjoint rows (D_i and, with an EAM baseline,
// F'(rho_i); doubles per atom = comm_forward) go to the ghost atoms by LAMMPS's forward communication: packed
// on the device (KokkosBase; CommKokkos calls it for a GPU execution space under `comm device`) or on the host
// (pack_forward_comm: a CPU execution space, or `comm no|host`). Per-atom energies and virials are copied to
// the host arrays of Pair (eatom, vatom) when a compute asks for them.
//
// Not here (the host style has them): a Tersoff baseline (run `hybrid/overlay tersoff/kk hpot/kk FILE baseline
// no`), compute hpot/gamma. The fallback switch is applied.
//
// LAMMPS versions: the KOKKOS API of 29 Sep 2021 (Kokkos 3) and of 22 Jul 2025 (Kokkos 4) differ in the
// neighbour request, the forward communication call and the KokkosBase buffer types; HYBRIDPOT_LAMMPS_NUM_VER
// picks the branch (see pair_hpot_kokkos.cpp). Compiled with -DHYBRIDPOT_KOKKOS -DHYBRIDPOT_LAMMPS_KOKKOS
// against the source tree and the Kokkos of a LAMMPS built with PKG_KOKKOS (lammps-plugin/kokkos/build_deps.py).
#ifndef LMP_PAIR_HPOT_KOKKOS_H
#define LMP_PAIR_HPOT_KOKKOS_H

#include "pair_hpot.h"

#include "atom_kokkos.h"
#include "hpot_kokkos.h"
#include "kokkos_base.h"
#include "kokkos_type.h"
#include "neigh_list_kokkos.h"

#include <memory>
#include <type_traits>
#include <utility>

#if HYBRIDPOT_LAMMPS_NUM_VER >= 20250722
#define HYBRIDPOT_KOKKOS_API 2025
#elif HYBRIDPOT_LAMMPS_NUM_VER < 20220000
#define HYBRIDPOT_KOKKOS_API 2021
#else
#error "pair_style hpot/kk is written for the KOKKOS API of LAMMPS 29 Sep 2021 and of 22 Jul 2025 (or later); this LAMMPS is between them"
#endif

namespace LAMMPS_NS {

// the device view of a DualView member of a LAMMPS class (the same code for the view type names of 2021 and 2025)
template <class Dual, class DeviceType>
using DeviceViewOf = typename std::decay<decltype(std::declval<Dual &>().template view<DeviceType>())>::type;

// LAMMPS's full neighbour list as the neighbour source of hpot_kokkos.h (the `Pairs` concept there): the centres
// are ilist[0 .. inum); an entry is skipped where its atom has an unmapped type (NULL) or lies beyond the cutoff.
template <class DeviceType>
struct HPotNeighbors {
  DeviceViewOf<decltype(AtomKokkos::k_x), DeviceType> x;                       // [atom][3], Angstrom
  DeviceViewOf<decltype(AtomKokkos::k_type), DeviceType> type;                 // [atom]
  Kokkos::View<const int *, DeviceType> element_of_type;                        // [type] -> element or -1
  decltype(NeighListKokkos<DeviceType>::d_ilist) ilist;                        // [centre] -> atom
  decltype(NeighListKokkos<DeviceType>::d_numneigh) numneigh;                  // [atom]
  decltype(NeighListKokkos<DeviceType>::d_neighbors) neighbors;                // [atom][entry], special bits masked here
  double cutsq = 0.0;                                                           // the largest cutoff, squared
  int max_entries = 0;                                                          // neighbors.extent(1): EAM slots per centre

  KOKKOS_INLINE_FUNCTION int centre(int ii) const { return ilist(ii); }
  KOKKOS_INLINE_FUNCTION int count(int ii) const { return numneigh(ilist(ii)); }
  KOKKOS_INLINE_FUNCTION int element(int i) const { return element_of_type(type(i)); }
  KOKKOS_INLINE_FUNCTION long slot(int ii, int k) const { return static_cast<long>(ii) * max_entries + k; }
  KOKKOS_INLINE_FUNCTION int entry(int ii, int k, double r[3]) const
  {
    const int i = ilist(ii);
    const int j = neighbors(i, k) & NEIGHMASK;
    if (element_of_type(type(j)) < 0) return -1;
    r[0] = x(j, 0) - x(i, 0);
    r[1] = x(j, 1) - x(i, 1);
    r[2] = x(j, 2) - x(i, 2);
    return r[0] * r[0] + r[1] * r[1] + r[2] * r[2] < cutsq ? j : -1;
  }
};

template <class DeviceType>
class PairHPotKokkos : public PairHPot, public KokkosBase {
 public:
  using device_type = DeviceType;
  using Hybrid = hybridpot::KokkosHybrid<DeviceType>;
  using Adjoint = Kokkos::DualView<double **, Kokkos::LayoutRight, DeviceType>;    // [atom][comm_forward]

  PairHPotKokkos(class LAMMPS *);
  ~PairHPotKokkos() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  void request_grades() override;
  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
#if HYBRIDPOT_KOKKOS_API == 2021
  int pack_forward_comm_kokkos(int, DAT::tdual_int_2d, int, DAT::tdual_xfloat_1d &, int, int *) override;
  void unpack_forward_comm_kokkos(int, int, DAT::tdual_xfloat_1d &) override;
#else
  int pack_forward_comm_kokkos(int, DAT::tdual_int_1d, DAT::tdual_double_1d &, int, int *) override;
  void unpack_forward_comm_kokkos(int, int, DAT::tdual_double_1d &) override;
#endif
  double memory_usage() override;

 protected:
  std::unique_ptr<Hybrid> hybrid;
  Adjoint k_adjoint;
  typename Hybrid::Keep d_keep;
  typename Hybrid::template Array<double> d_energy;    // per-atom energies when eflag_atom
  typename Hybrid::AtomVirial d_virial;                // per-atom virials when vflag_atom
  Kokkos::View<int *, DeviceType> d_element_of_type;

  // the device side of the forward communication: the send list of one swap (1-D) and the buffer's device view
  template <class List, class Buffer> int pack_device(int n, const List &list, const Buffer &buf);
  template <class Buffer> void unpack_device(int n, int first, const Buffer &buf);
};

}    // namespace LAMMPS_NS

#endif
