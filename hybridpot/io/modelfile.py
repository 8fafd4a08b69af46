"""Model files: a fitted hybrid potential in one versioned, self-contained JSON file.

Layout (``*.hybridpot.json``)::

    {"format": "hybridpot-model", "version": 2, "hybridpot_version": "...",
     "baseline": null | {"file_name": "Cu_mishin1.eam.alloy", "sha256": "...", "content": "<file text>"},
     "descriptor": {...SO3.to_dict()...},
     "model": {...model.to_dict()...},
     "metadata": {...training settings, data checksums...},
     "uq": null | {...hybridpot.uq.UQData.to_dict()...},        (version >= 2)
     "fallback": null | {...hybridpot.uq.Fallback.to_dict()...},  (version >= 2)
     "checksum": {"algorithm": "sha256", "sections": {"baseline": "...", "descriptor": "...", ...}}}  (version 3)

The baseline is stored as the text of its potential file (with current, possibly co-fitted,
parameters), so a model file never depends on files elsewhere.

Versions: 1 has no ``uq`` and ``fallback``; 2 adds them (optional; large arrays as base64
float64, :func:`hybridpot.uq.encode_array`); 3 (written now) adds ``checksum``: the SHA-256 of
the canonical JSON of each of :data:`CHECKSUM_SECTIONS` (:mod:`hybridpot.io.integrity`).

What :func:`load` refuses, with a :class:`~hybridpot.errors.ModelFileError` that says why:

* a version it does not know (a newer hybridpot's file, or a hand-edited number), and a version
  number that contradicts the file (a version-1 file with a fallback, a version-2 file with a
  checksum: an edited version would otherwise drop the fallback or the check without a word);
* a version-3 file whose sections do not match their checksums (edited by hand or corrupted),
  naming the sections that differ, unless ``accept_edited=True`` (CLI ``--accept-edited``):
  then a warning says what differs and the file is used as it is;
* NaN or infinite parameters anywhere (model, descriptor, uncertainty data, fallback, baseline),
  naming where, with or without ``accept_edited``.

Versions 1 and 2 have no checksum: they are read as legacy files, with a
:class:`LegacyModelFileWarning` saying that their integrity cannot be checked (re-save such a
model with :func:`save` to add one).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

from hybridpot import __version__
from hybridpot.empirical import load as load_empirical
from hybridpot.errors import HybridpotError, ModelFileError
from hybridpot.io.atomic import write_text_atomic
from hybridpot.io.integrity import canonical_digest, non_finite_paths, non_finite_tensors
from hybridpot.potential import HybridPotential
from hybridpot.registry import descriptors, models
from hybridpot.uq import UQData, fallback_from_dict

FORMAT = "hybridpot-model"
VERSION = 3
#: versions this reader understands (1: no uncertainty data; 1 and 2: no checksum)
READABLE_VERSIONS = (1, 2, 3)
#: the top-level keys of each version
KEYS = {1: ("format", "version", "hybridpot_version", "baseline", "descriptor", "model", "metadata")}
KEYS[2] = KEYS[1] + ("uq", "fallback")
KEYS[3] = KEYS[2] + ("checksum",)
#: the sections a version-3 checksum covers, and what each holds (for messages)
CHECKSUM_SECTIONS = {
    "baseline": "the baseline potential file",
    "descriptor": "the descriptor definition",
    "model": "the model's parameters",
    "uq": "the uncertainty data",
    "fallback": "the fallback settings",
    "metadata": "the training metadata (reference energies, data checksums, settings)",
}
#: sections searched for NaN/inf numbers (metadata may hold NaN metrics legitimately)
FINITE_SECTIONS = ("descriptor", "model", "uq", "fallback")


class LegacyModelFileWarning(UserWarning):
    """A version-1 or -2 model file: it has no checksum, so its integrity cannot be checked."""


class EditedModelFileWarning(UserWarning):
    """A model file that fails its checksum, loaded anyway (``accept_edited=True``)."""


def baseline_record(baseline) -> dict[str, str] | None:
    """The baseline as ``{"file_name", "sha256", "content"}`` (None without a baseline)."""
    if baseline is None:
        return None
    text = baseline.to_text()
    return {"file_name": baseline.file_name, "sha256": hashlib.sha256(text.encode()).hexdigest(), "content": text}


def baseline_from_record(record: dict[str, str] | None, source: str):
    """Rebuild the baseline potential from its stored file text (checksum verified)."""

    if record is None:
        return None
    text = record["content"]
    if hashlib.sha256(text.encode()).hexdigest() != record.get("sha256"):
        raise ModelFileError(f"{source}: the stored baseline file {record.get('file_name')} fails its checksum (corrupt model file)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(record["file_name"]).name
        path.write_text(text)
        pot = load_empirical(path)
    pot.source = f"{record['file_name']} (stored in {source})"
    return pot


def model_from_dict(d: dict[str, Any]):
    """The per-atom model stored in a model file, rebuilt by its registered type (``d["type"]``)."""
    kind = d.get("type")
    if kind not in models.names():
        raise ModelFileError(f"unknown model type {kind!r} (this hybridpot reads {', '.join(models.names())})")
    return models.get(kind).from_dict(d, model_from_dict)


def descriptor_from_dict(d: dict[str, Any]):
    """The descriptor stored in a model file, rebuilt by its registered type (``d["type"]``; records without one are so3)."""
    kind = d.get("type", "so3")
    if kind not in descriptors.names():
        raise ModelFileError(f"unknown descriptor type {kind!r} (this hybridpot reads {', '.join(descriptors.names())})")
    return descriptors.get(kind).from_dict(d)


def section_digests(doc: dict[str, Any]) -> dict[str, str]:
    """The checksum of each of :data:`CHECKSUM_SECTIONS` of a (read-back) document."""
    return {key: canonical_digest(doc.get(key)) for key in CHECKSUM_SECTIONS}


def save(potential, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write a :class:`~hybridpot.potential.HybridPotential` to ``path`` (atomically), version 3 with its checksum.

    Raises:
        ModelFileError: the potential has NaN or infinite parameters (nothing is written).
    """

    bad = non_finite_tensors(potential)
    if bad:
        raise ModelFileError(f"{path}: not written: the potential has NaN or infinite parameters ({'; '.join(bad)})")
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "hybridpot_version": __version__,
        "baseline": baseline_record(potential.baseline),
        "descriptor": potential.descriptor.to_dict(),
        "model": potential.model.to_dict(),
        "metadata": metadata or {},
        "uq": potential.uq_data.to_dict() if getattr(potential, "uq_data", None) is not None else None,
        "fallback": potential.fallback.to_dict() if getattr(potential, "fallback", None) is not None else None,
    }
    doc = json.loads(json.dumps(doc))  # checksums of what a reader will see
    doc["checksum"] = {"algorithm": "sha256", "sections": section_digests(doc)}
    path = Path(path)
    write_text_atomic(path, json.dumps(doc, indent=1))
    return path


def read_document(path: str | Path) -> dict[str, Any]:
    """Parse and check a model file's header.

    Raises:
        ModelFileError: missing file, not JSON, wrong format, unsupported version, or keys that
            the version does not have (an edited version number).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: not a hybridpot model file (invalid JSON: {exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a hybridpot model file (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    version = doc.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > max(READABLE_VERSIONS)
        raise ModelFileError(
            f"{path}: model file version {version!r} is not supported (this hybridpot {_version()} reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}; the file says it was written by hybridpot "
            f"{doc.get('hybridpot_version', '?')})" + ("; upgrade hybridpot to read it" if newer else "")
        )
    later = [k for k in doc if k not in KEYS[version] and any(k in KEYS[v] for v in READABLE_VERSIONS)]
    if later:
        raise ModelFileError(
            f"{path}: the file says version {version} but has {later}, which version-{version} files do not have: its version "
            f"number was edited (it was written as version {min(v for v in READABLE_VERSIONS if set(later) <= set(KEYS[v]))} "
            "or later); restore the version number rather than lose what those keys hold"
        )
    unknown = [k for k in doc if k not in KEYS[max(READABLE_VERSIONS)]]
    if unknown:
        raise ModelFileError(f"{path}: unknown key(s) {unknown} in a version-{version} model file (corrupt or edited)")
    for key in ("baseline", "descriptor", "model") + (("checksum",) if version >= 3 else ()):
        if key not in doc:
            raise ModelFileError(f"{path}: corrupt model file, missing {key!r}")
    return doc


def _version() -> str:
    return __version__


def load(path: str | Path, accept_edited: bool = False):
    """Read a model file written by :func:`save` and return the HybridPotential.

    Args:
        accept_edited: use a version-3 file whose checksum does not match (edited by hand) with
            an :class:`EditedModelFileWarning` instead of refusing it.

    Raises:
        ModelFileError: see the module docstring.
    """

    doc = read_document(path)
    try:
        baseline = baseline_from_record(doc["baseline"], str(path))
        descriptor = descriptor_from_dict(doc["descriptor"])
        model = model_from_dict(doc["model"])
    except ModelFileError:
        raise
    except HybridpotError as exc:
        raise ModelFileError(f"{path}: corrupt model file ({exc})") from exc
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: corrupt model file ({type(exc).__name__}: {exc})") from exc
    pot = HybridPotential(baseline, descriptor, model)
    pot.metadata = doc.get("metadata", {})
    if doc["version"] >= 2:
        _load_uq(pot, doc, path)
    bad = [p for key in FINITE_SECTIONS for p in non_finite_paths(doc.get(key), key)] or non_finite_tensors(pot)
    if bad:
        raise ModelFileError(f"{path}: NaN or infinite parameters: {'; '.join(bad[:5])}; this model cannot predict anything: re-fit it")
    _check_integrity(doc, path, accept_edited)
    return pot


def _check_integrity(doc: dict[str, Any], path, accept_edited: bool) -> None:
    """Compare a version-3 file's sections with its checksum; warn about legacy files without one."""
    if doc["version"] < 3:
        warnings.warn(f"{path}: model file version {doc['version']} has no checksum, so hand edits or corruption cannot be "
                      "detected; load and save it once to add one", LegacyModelFileWarning, stacklevel=3)
        return
    checksum = doc["checksum"]
    if not isinstance(checksum, dict) or checksum.get("algorithm") != "sha256" or not isinstance(checksum.get("sections"), dict):
        raise ModelFileError(f"{path}: corrupt model file: its checksum record is malformed ({str(checksum)[:80]})")
    stored = checksum["sections"]
    differ = [k for k, digest in section_digests(doc).items() if stored.get(k) != digest]
    if not differ:
        return
    what = ", ".join(f"{k!r} ({CHECKSUM_SECTIONS[k]})" for k in differ) + (" differ" if len(differ) > 1 else " differs")
    if accept_edited:
        warnings.warn(f"{path}: {what} from what hybridpot wrote (checksum mismatch); used as edited", EditedModelFileWarning,
                      stacklevel=3)
        return
    raise ModelFileError(f"{path}: the model file does not match its checksum: {what} from what hybridpot wrote "
                         "(edited by hand or corrupted). Re-fit or restore the file; to use it as edited, load it with "
                         "accept_edited=True (hybridpot eval --accept-edited)")


def _load_uq(pot, doc: dict[str, Any], path) -> None:
    """Attach the version-2 ``uq`` and ``fallback`` records (either may be null)."""

    try:
        if doc.get("uq") is not None:
            pot.uq_data = UQData.from_dict(doc["uq"])
        if doc.get("fallback") is not None:
            fallback_from_dict(pot, doc["fallback"])
    except HybridpotError as exc:
        raise ModelFileError(f"{path}: corrupt uncertainty data in the model file ({exc})") from exc
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: corrupt uncertainty data in the model file ({type(exc).__name__}: {exc})") from exc
