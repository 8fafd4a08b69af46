"""Process-wide settings: what importing hybridpot does, and the CLI's thread count."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_import_sets_passive_openmp_waiting_unless_told(given, expected):
    """Importing hybridpot (before torch) makes torch's OpenMP threads wait passively, unless the
    environment says otherwise (spinning threads were 50x slower on a busy machine; README)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | ({"OMP_WAIT_POLICY": given} if given else {})
    out = subprocess.run([sys.executable, "-c", "import os, hybridpot; print(os.environ['OMP_WAIT_POLICY'])"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_cli_threads_option_sets_torch_threads():
    import subprocess
    import sys

    code = ("import torch; from hybridpot.cli import main; torch.set_num_threads(2); "
            "main(['--threads', '1', 'export', 'missing.hybridpot.json', '--lammps', 'deck']); print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "1"
    bad = subprocess.run([sys.executable, "-c", "from hybridpot.cli import main; main(['--threads', '0', 'demo'])"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--threads: expected a positive integer, got 0" in bad.stderr
