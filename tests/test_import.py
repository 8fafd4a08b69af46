"""What importing hybridpot does to the process."""

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
