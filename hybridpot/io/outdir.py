"""Output folders written as a unit: a lock, a staging folder beside the target, one move at the end.

A job (``hybridpot fit``, ``demo``, ``active``) writes everything (model, report, plots, logs)
into a hidden staging folder ``.NAME.staging-XXXX`` next to the target folder ``NAME`` and, when
all of it is written, puts it in place with one atomic exchange of the two folders
(``renameat2(RENAME_EXCHANGE)``; on systems without it, two renames, see below). So the target
always holds either the previous complete result or the new complete one, never a mix, and an
overwrite leaves no stale file of the earlier run (the whole folder is replaced). Nothing
survives of a job that fails or is killed before the move except the hidden staging folder,
which the next job on that target removes.

A lock file ``.NAME.lock`` beside the target (``flock``, released by the kernel when the
process dies, so a killed job leaves no stale lock) keeps two jobs from writing the same
folder: the second one fails at once, before any work, naming the first one's pid.

What the target may already hold:

* nothing (missing or empty): written;
* a complete earlier output (``hybridpot-output.json`` lists its files and SHA-256, and says which
  kind of job wrote it), or a folder of only the file names an older hybridpot wrote: replaced
  only with ``overwrite``, and only by a job that may replace that kind (a fit replaces a fit or
  a demo, a demo only a demo, an active-learning run only an active-learning run);
* any other file: refused, ``overwrite`` or not; hybridpot never deletes files it did not write.

Without ``renameat2`` (not Linux, or a file system that refuses the exchange) the move is
``rename(target, .NAME.old-XXXX)`` then ``rename(staging, target)``; a job killed between the two
leaves no target but two complete folders, and the next job on that target (or
:func:`recover`) finishes the move before anything else. The guarantee is against killed
processes; files are not fsync'ed, so an OS crash or power cut may lose recent writes.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType

from hybridpot.errors import OutputError
from hybridpot.io.atomic import write_text_atomic

MANIFEST = "hybridpot-output.json"
#: kinds of output each kind of job may replace (with overwrite)
REPLACEABLE = {"fit": ("fit", "demo"), "demo": ("demo",), "active": ("active",), "export": ("export",)}
#: file names older hybridpot versions (without a manifest) wrote, per kind
LEGACY_NAMES = {
    "fit": ("report.json", "parity_energy.png", "parity_forces.png"),
    "active": ("active_log.json", "learning_curve.png", "train.xyz", "model.hybridpot.json"),
}
_LEGACY_MODEL_SUFFIX = ".hybridpot.json"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _hidden(target: Path, what: str) -> str:
    return f".{target.name}.{what}"


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (relative POSIX paths), except the manifest."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def read_manifest(folder: Path) -> dict | None:
    """The manifest of an output folder, or None if it has none (or an unreadable one)."""
    try:
        doc = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == "hybridpot-output" else None


def verify(folder: Path) -> dict:
    """The manifest of a complete output folder.

    Raises:
        OutputError: no manifest, or files missing, extra or changed against it.
    """
    doc = read_manifest(folder)
    if doc is None:
        raise OutputError(f"{folder}: no readable {MANIFEST}: not a complete hybridpot output")
    have = file_digests(folder)
    if have != doc["files"]:
        differ = sorted(set(have) ^ set(doc["files"]) | {k for k in have if k in doc["files"] and have[k] != doc["files"][k]})
        raise OutputError(f"{folder}: files differ from {MANIFEST}: {differ}")
    return doc


def existing_kind(folder: Path) -> str | None:
    """Which kind of job wrote ``folder`` ("fit", "demo", "active"), None if it is missing or
    empty; "foreign" if it holds files hybridpot did not write."""
    if not folder.exists():
        return None
    names = {p.name for p in folder.iterdir()}
    if not names:
        return None
    doc = read_manifest(folder)
    if doc is not None:
        return str(doc.get("kind"))
    for kind, legacy in LEGACY_NAMES.items():
        if all(n in legacy or n.endswith(_LEGACY_MODEL_SUFFIX) for n in names):
            return kind
    return "foreign"


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where the system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def recover(target: Path) -> None:
    """Finish a move that a killed job left half done (two-rename fallback only): the target is
    missing but a complete staged output or the previous one exists beside it. Call with the lock held."""
    if target.exists():
        return
    parent = target.parent
    for pattern in (_hidden(target, "staging-*"), _hidden(target, "old-*")):  # the new result first, else the old one
        for folder in sorted(parent.glob(pattern)):
            if read_manifest(folder) is not None:
                os.rename(folder, target)
                return


class OutputDir:
    """The output folder of one job; use as a context manager, write into :attr:`path`, then :meth:`commit`.

    Args:
        target: the output folder.
        kind: "fit", "demo", "active" or "export" (a LAMMPS deck; recorded in the manifest; see :data:`REPLACEABLE`).
        overwrite: whether an earlier complete output of a replaceable kind may be replaced.
        source: what asked for the folder (the configuration file), for messages.

    Raises (on entering):
        OutputError: the folder is locked by another job, holds files hybridpot did not write, holds
            an earlier output that may not be replaced, or its parent is not writable.
    """

    def __init__(self, target: str | Path, kind: str, overwrite: bool = False, source: str = "") -> None:
        if kind not in REPLACEABLE:
            raise ValueError(f"unknown output kind {kind!r}")
        self.target = Path(os.path.realpath(target))  # a symlinked folder: replace the folder, not the link
        self.kind = kind
        self.overwrite = overwrite
        self.where = f"{source}: " if source else ""
        self.path: Path | None = None
        self._lock_fd: int | None = None
        self._created: list[Path] = []
        self._committed = False

    # ---------------------------------------------------------------- lock and checks

    def __enter__(self) -> "OutputDir":
        parent = self.target.parent
        try:
            self._created = [p for p in [parent, *parent.parents] if not p.exists()]
            parent.mkdir(parents=True, exist_ok=True)
            self._lock()
            recover(self.target)
            self.check_target()
            self._remove_stale()
            self.path = Path(tempfile.mkdtemp(prefix=_hidden(self.target, "staging-"), dir=parent))
        except OSError as exc:
            self._abandon()
            raise OutputError(f"{self.where}cannot write the output folder {self.target} ({type(exc).__name__}: {exc}); "
                              "choose a folder you can write to") from exc
        except BaseException:
            self._abandon()
            raise
        return self

    def _lock(self) -> None:
        lock = self.target.parent / _hidden(self.target, "lock")
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise OutputError(f"{self.where}{self.target} is being written by another hybridpot job (pid {holder}, lock "
                                  f"{lock}); wait for it to finish or choose another output folder") from None
            try:  # the holder before us may have removed the file as it released it: lock the file that is there now
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def check_target(self) -> None:
        """Raise :class:`OutputError` unless the job may write the target (see the module docstring)."""
        if self.target.exists() and not self.target.is_dir():
            raise OutputError(f"{self.where}{self.target} exists and is not a folder; choose another output folder")
        if os.path.ismount(self.target):
            raise OutputError(f"{self.where}{self.target} is a mount point, which cannot be replaced as a whole; choose a "
                              "folder inside it")
        kind = existing_kind(self.target)
        if kind is None:
            return
        if kind == "foreign":
            names = sorted(p.name for p in self.target.iterdir())
            raise OutputError(f"{self.where}{self.target} holds files hybridpot did not write ({', '.join(names[:5])}"
                              f"{', ...' if len(names) > 5 else ''}); hybridpot replaces only its own outputs: choose another "
                              "output folder, or move those files away")
        if not self.overwrite:
            names = sorted(p.name for p in self.target.iterdir())
            raise OutputError(f"{self.where}{self.target} already holds {'an active-learning run' if kind == 'active' else 'a fit'} ('hybridpot {kind}': "
                              f"{', '.join(names[:4])}{', ...' if len(names) > 4 else ''}); set [output] overwrite = true or choose "
                              "another dir")
        if kind not in REPLACEABLE[self.kind]:
            raise OutputError(f"{self.where}{self.target} holds the output of 'hybridpot {kind}', which 'hybridpot {self.kind}' "
                              f"does not replace (it replaces only the output of {' or '.join(f'hybridpot {k}' for k in REPLACEABLE[self.kind])}); "
                              "choose another output folder")

    def _remove_stale(self) -> None:
        """Staging and old folders of jobs that died (we hold the lock: nobody else is writing them)."""
        for pattern in (_hidden(self.target, "staging-*"), _hidden(self.target, "old-*")):
            for folder in self.target.parent.glob(pattern):
                shutil.rmtree(folder, ignore_errors=True)

    # ---------------------------------------------------------------- the move

    def commit(self) -> Path:
        """Write the manifest and put the staged folder in place of the target (see the module docstring)."""
        assert self.path is not None, "commit() outside the with block"
        try:
            self.check_target()
        except OutputError as exc:
            kept = self.target.with_name(f"{self.target.name}.unplaced-{os.getpid()}")
            os.rename(self.path, kept)
            self.path = None
            raise OutputError(f"{exc} (it changed while the job ran; its outputs are kept in {kept})") from None
        doc = {"format": "hybridpot-output", "version": 1, "kind": self.kind, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "files": file_digests(self.path)}

        write_text_atomic(self.path / MANIFEST, json.dumps(doc, indent=1))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.path, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
        staged, self.path = self.path, None
        if not self.target.exists():
            os.rename(staged, self.target)
        elif _exchange(staged, self.target):
            shutil.rmtree(staged, ignore_errors=True)  # now the previous output
        else:
            old = self.target.with_name(_hidden(self.target, f"old-{os.getpid()}-{time.time_ns()}"))
            os.rename(self.target, old)
            os.rename(staged, self.target)
            shutil.rmtree(old, ignore_errors=True)
        self._committed = True
        return self.target

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._abandon()

    def _abandon(self) -> None:
        """Remove what an uncommitted job staged (and the parent folders it created), release the lock."""
        try:
            if self.path is not None:
                shutil.rmtree(self.path, ignore_errors=True)
                self.path = None
        finally:
            self._release()
        if not self._committed:
            for folder in self._created:  # deepest first; the lock file is gone by now
                try:
                    folder.rmdir()
                except OSError:
                    break

    def _release(self) -> None:
        if self._lock_fd is None:
            return
        lock = self.target.parent / _hidden(self.target, "lock")
        try:
            os.unlink(lock)  # while still holding it: a waiter then sees a different file and retries
        except FileNotFoundError:
            pass
        os.close(self._lock_fd)
        self._lock_fd = None
