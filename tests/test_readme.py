"""README.md's Python blocks run as written (in order, in one namespace), after `hybridpot demo` as the README says."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_blocks():
    assert len(python_blocks()) >= 2


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    from hybridpot.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["-q", "demo"]) == 0
    namespace: dict = {}
    for k, block in enumerate(python_blocks()):
        exec(compile(block, f"README.md python block {k}", "exec"), namespace)  # noqa: S102 - the README's own code
    assert namespace["B"].shape[1] == namespace["d"].n_features
    assert namespace["dB"].values.shape[1:] == (namespace["d"].n_features, 3)
    assert (tmp_path / "deck" / "hybrid.hybridpot.lmp").is_file()
    assert "gamma" in namespace["u"]
