// Stand-alone check of the Kokkos driver: the energies, forces and virial of one structure.
//
//   hpot_kokkos_harness MODEL.hybridpot.lmp PAIRS.txt OUT.txt [REPEAT]
//
// PAIRS.txt: "n_atoms n_pairs", then n_atoms element indices, then n_pairs lines "i j rx ry rz" (pairs
// grouped by i, as hybridpot's neighbour list gives them). OUT.txt: the total energy, the virial (xx yy zz
// xy xz yz), then per atom "energy fx fy fz", all at full precision. tests/export/test_kokkos.py writes the
// input from hybridpot's own neighbour list and compares the output with hybridpot and the host pair style.
// With REPEAT, the evaluation is timed REPEAT times and the best wall time printed (benchmarks/lammps_plugin.py).
#include "hpot_kokkos.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>

int main(int argc, char **argv)
{
  if (argc != 4 && argc != 5) {
    std::cerr << "usage: " << argv[0] << " MODEL.hybridpot.lmp PAIRS.txt OUT.txt [REPEAT]\n";
    return 2;
  }
  Kokkos::initialize(argc, argv);
  int status = 0;
  try {
    using Space = Kokkos::DefaultExecutionSpace;
    const hybridpot::ModelFile mf = hybridpot::read_model_file(argv[1]);
    std::ifstream in(argv[2]);
    int n = 0, n_pairs = 0;
    if (!(in >> n >> n_pairs)) throw std::runtime_error(std::string(argv[2]) + ": no 'n_atoms n_pairs' header");
    auto element = Kokkos::View<int *, Space>("element", n);
    auto offsets = Kokkos::View<int *, Space>("offsets", n + 1);
    auto neighbor = Kokkos::View<int *, Space>("neighbor", n_pairs);
    auto vectors = Kokkos::View<double *[3], Space>("vectors", n_pairs);
    auto h_element = Kokkos::create_mirror_view(element);
    auto h_offsets = Kokkos::create_mirror_view(offsets);
    auto h_neighbor = Kokkos::create_mirror_view(neighbor);
    auto h_vectors = Kokkos::create_mirror_view(vectors);
    for (int i = 0; i < n; ++i) in >> h_element(i);
    for (int i = 0; i <= n; ++i) h_offsets(i) = 0;
    int previous = -1;
    for (int p = 0; p < n_pairs; ++p) {
      int i;
      in >> i >> h_neighbor(p) >> h_vectors(p, 0) >> h_vectors(p, 1) >> h_vectors(p, 2);
      if (!in || i < previous || i >= n) throw std::runtime_error(std::string(argv[2]) + ": bad or unsorted pair line");
      previous = i;
      h_offsets(i + 1) += 1;
    }
    for (int i = 0; i < n; ++i) h_offsets(i + 1) += h_offsets(i);
    Kokkos::deep_copy(element, h_element);
    Kokkos::deep_copy(offsets, h_offsets);
    Kokkos::deep_copy(neighbor, h_neighbor);
    Kokkos::deep_copy(vectors, h_vectors);
    const hybridpot::KokkosHybrid<Space> hybrid(mf);
    Kokkos::View<double *, Space> energies("energies", n);
    Kokkos::View<double *[3], Space> forces("forces", n);
    double virial[6];
    const double total = hybrid.evaluate(n, element, offsets, neighbor, vectors, energies, forces, virial);
    const int repeat = argc == 5 ? std::atoi(argv[4]) : 0;
    double best = 1e300;
    for (int k = 0; k < repeat; ++k) {
      Kokkos::Timer timer;
      hybrid.evaluate(n, element, offsets, neighbor, vectors, energies, forces, virial);
      best = std::min(best, timer.seconds());
    }
    if (repeat > 0) std::printf("evaluate: best of %d %.6f s\n", repeat, best);
    auto h_energies = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), energies);
    auto h_forces = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), forces);
    FILE *out = std::fopen(argv[3], "w");
    if (!out) throw std::runtime_error(std::string("cannot write ") + argv[3]);
    std::fprintf(out, "%.17g\n", total);
    for (int a = 0; a < 6; ++a) std::fprintf(out, "%.17g%c", virial[a], a == 5 ? '\n' : ' ');
    for (int i = 0; i < n; ++i)
      std::fprintf(out, "%.17g %.17g %.17g %.17g\n", h_energies(i), h_forces(i, 0), h_forces(i, 1), h_forces(i, 2));
    std::fclose(out);
    std::printf("%s: %d atoms, %d pairs, %s execution space, concurrency %d\n", argv[0], n, n_pairs, Space::name(),
                static_cast<int>(Space().concurrency()));
  } catch (std::exception &e) {
    std::cerr << argv[0] << ": " << e.what() << "\n";
    status = 1;
  }
  Kokkos::finalize();
  return status;
}
