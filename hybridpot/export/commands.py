"""The LAMMPS command lines an exported deck's README and manifest give (run in the deck's folder)."""

CPU_COMMAND = "lmp -in in.{name}.lmp"
OPENMP_COMMAND = "lmp -sf omp -pk omp {threads} -in in.{name}.lmp"
MPI_COMMAND = "mpirun -np {ranks} lmp -in in.{name}.lmp"
KOKKOS_MLIAP_COMMAND = "lmp -k on g 1 -sf kk -pk kokkos newton on neigh half -in in.{name}.lmp"
#: pair_style hpot/kk (what -sf kk picks for hpot) on one GPU, and under Kokkos with OpenMP threads on the CPU
KOKKOS_GPU_COMMAND = "lmp -k on g 1 -sf kk -in in.{name}.lmp"
KOKKOS_OPENMP_COMMAND = "lmp -k on t {threads} -sf kk -in in.{name}.lmp"
