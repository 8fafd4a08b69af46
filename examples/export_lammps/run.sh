#!/usr/bin/env bash
# Fit the Cu example, export it to LAMMPS, and run the same short NVE trajectory with both engines.
set -euo pipefail
cd "$(dirname "$0")/../.."
hybridpot -q fit examples/cu_eam/fit.toml
hybridpot export runs/cu_eam/model.hybridpot.json --lammps runs/cu_eam/lammps --name cu
python - <<'PY'
from ase.build import bulk
from ase.io import write
write("runs/cu_eam/cell.extxyz", bulk("Cu", "fcc", a=3.615, cubic=True).repeat(3))
PY
hybridpot md runs/cu_eam/model.hybridpot.json runs/cu_eam/cell.extxyz --engine lammps --steps 200 --temperature 600
hybridpot md runs/cu_eam/model.hybridpot.json runs/cu_eam/cell.extxyz --engine ase --steps 200 --temperature 600
echo "LAMMPS deck in runs/cu_eam/lammps (see its README.md for the CPU and Kokkos GPU commands)"
