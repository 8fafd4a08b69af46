"""An on-disk cache of computed arrays, keyed by SHA-256 digests of their inputs.

Used for results that cost an external engine run (a LAMMPS baseline's energies, forces and virial of a
training structure): the key is the digest of everything the result depends on, so an entry is
either the result of exactly those inputs or absent. Each entry is one ``.npz`` file holding the
arrays and a digest of their bytes; an entry that cannot be read, lacks an array, has the wrong
shape, holds non-finite numbers or fails its digest is treated as absent (and removed), so a
corrupt entry is recomputed, never trusted. Entries are written to a temporary file and renamed,
so readers never see half an entry.

The folder is ``$HYBRIDPOT_CACHE``, else ``$XDG_CACHE_HOME/hybridpot``, else ``~/.cache/hybridpot``.
Deleting it (or any entry) is always safe.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

#: environment variable naming the cache folder
CACHE_ENV = "HYBRIDPOT_CACHE"
#: the digest of an entry's arrays is stored under this name
_DIGEST = "__sha256__"


def default_cache_dir() -> Path:
    """``$HYBRIDPOT_CACHE``, else ``$XDG_CACHE_HOME/hybridpot``, else ``~/.cache/hybridpot``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hybridpot"


def digest(*parts: bytes | str) -> str:
    """SHA-256 (hex) of the parts, each prefixed by its length (so that no two sequences of parts collide)."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else bytes(part)
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of named arrays: names, dtypes, shapes and bytes, in name order."""
    parts: list[bytes | str] = []
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        parts += [name, a.dtype.str, repr(a.shape), a.tobytes()]
    return digest(*parts)


class ResultCache:
    """A folder of entries ``KEY.npz`` (see the module docstring).

    Args:
        directory: the folder (created on the first write); default :func:`default_cache_dir` / ``namespace``.
        namespace: a sub-folder per kind of result (e.g. ``"lammps"``).
    """

    def __init__(self, directory: str | Path | None = None, namespace: str = "") -> None:
        base = Path(directory) if directory is not None else default_cache_dir()
        self.directory = base / namespace if namespace else base

    def path(self, key: str) -> Path:
        """The file of entry ``key`` (two-character sub-folders keep folders small)."""
        return self.directory / key[:2] / f"{key}.npz"

    def get(self, key: str, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, np.ndarray] | None:
        """The arrays of entry ``key`` if it exists and is sound: every name of ``shapes`` with that shape, float64,
        finite, and the stored digest of the arrays matching; otherwise None (a corrupt entry is removed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                stored = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            self._discard(path)
            return None
        arrays = {name: stored.get(name) for name in shapes}
        sound = (all(a is not None and a.dtype == np.float64 and a.shape == tuple(shapes[n]) and np.isfinite(a).all()
                     for n, a in arrays.items())
                 and _DIGEST in stored and str(stored[_DIGEST]) == arrays_digest(arrays))
        if not sound:
            self._discard(path)
            return None
        return arrays

    def put(self, key: str, arrays: Mapping[str, np.ndarray]) -> Path | None:
        """Store ``arrays`` (float64) as entry ``key``, atomically; None where the folder cannot be written (the cache
        is an optimisation: a read-only or full disk only costs the recomputation)."""
        arrays = {name: np.ascontiguousarray(a, dtype=np.float64) for name, a in arrays.items()}
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, **arrays, **{_DIGEST: np.array(arrays_digest(arrays))})
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            return None
        return path

    @staticmethod
    def _discard(path: Path) -> None:
        try:
            path.unlink()
        except OSError:
            pass
