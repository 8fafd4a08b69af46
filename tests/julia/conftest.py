"""The Julia tests: whether Julia is here, and a closing line in every run that says so.

Pytest's -q summary only counts skips; so that CI logs state plainly that the Julia backend's
tests did not run (and why), this conftest adds one line to the terminal summary.
"""

from __future__ import annotations

import pytest

from hybridpot.backends.julia import julia_status

STATUS = julia_status()


@pytest.fixture(scope="session")
def julia_backend():
    """Skips (with the reason) unless juliacall, a Julia executable and the package are all present."""
    if not STATUS.available:
        pytest.skip(f"Julia backend unavailable: {STATUS.reason}")
    return STATUS


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: D103 - pytest hook
    if STATUS.available:
        terminalreporter.write_line(f"Julia backend tests ran with {STATUS.executable}")
    else:
        skipped = [r for r in terminalreporter.stats.get("skipped", []) if "Julia backend unavailable" in str(getattr(r, "longrepr", ""))]
        terminalreporter.write_line(f"Julia backend tests SKIPPED ({len(skipped)}): {STATUS.reason}")
