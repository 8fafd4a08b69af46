"""Model files: a fitted hybrid potential in one versioned, self-contained JSON file.

Layout (``*.hybridpot.json``)::

    {"format": "hybridpot-model", "version": 2, "hybridpot_version": "...",
     "baseline": null | {"file_name": "Cu_mishin1.eam.alloy", "sha256": "...", "content": "<file text>"},
     "descriptor": {...SO3.to_dict()...},
     "model": {...model.to_dict()...},
     "metadata": {...training settings, data checksums...},
     "uq": null | {...hybridpot.uq.UQData.to_dict()...},        (version 2)
     "fallback": null | {...hybridpot.uq.Fallback.to_dict()...}}  (version 2)

The baseline is stored as the text of its potential file (with current, possibly co-fitted,
parameters), so a model file never depends on files elsewhere.

Versions: 1 has no ``uq`` and ``fallback``; 2 adds them (optional; large arrays as base64
float64, :func:`hybridpot.uq.encode_array`). Both are read. A reader that only knows version 1
refuses version-2 files rather than silently dropping a fallback that changes the energies.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from hybridpot.errors import HybridpotError

FORMAT = "hybridpot-model"
VERSION = 2
#: versions this reader understands (1: no uncertainty data)
READABLE_VERSIONS = (1, 2)


def baseline_record(baseline) -> dict[str, str] | None:
    """The baseline as ``{"file_name", "sha256", "content"}`` (None without a baseline)."""
    if baseline is None:
        return None
    text = baseline.to_text()
    return {"file_name": baseline.file_name, "sha256": hashlib.sha256(text.encode()).hexdigest(), "content": text}


def baseline_from_record(record: dict[str, str] | None, source: str):
    """Rebuild the baseline potential from its stored file text (checksum verified)."""
    from hybridpot.empirical import load as load_empirical

    if record is None:
        return None
    text = record["content"]
    if hashlib.sha256(text.encode()).hexdigest() != record.get("sha256"):
        raise HybridpotError(f"{source}: the stored baseline file {record.get('file_name')} fails its checksum (corrupt model file)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(record["file_name"]).name
        path.write_text(text)
        pot = load_empirical(path)
    pot.source = f"{record['file_name']} (stored in {source})"
    return pot


def model_from_dict(d: dict[str, Any]):
    """The per-atom model stored in a model file (linear, quadratic or nn)."""
    kind = d.get("type")
    if kind in ("linear", "quadratic"):
        from hybridpot.models.polynomial import PolynomialModel

        return PolynomialModel.from_dict(d)
    if kind == "nn":
        from hybridpot.models.nn import NNModel

        return NNModel.from_dict(d)
    if kind == "committee":
        from hybridpot.models.committee import CommitteeModel

        return CommitteeModel.from_dict(d, model_from_dict)
    raise HybridpotError(f"unknown model type {kind!r}")


def save(potential, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write a :class:`~hybridpot.potential.HybridPotential` to ``path`` (atomically)."""
    from hybridpot import __version__
    from hybridpot.io.atomic import write_text_atomic

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
    path = Path(path)
    write_text_atomic(path, json.dumps(doc, indent=1))
    return path


def read_document(path: str | Path) -> dict[str, Any]:
    """Parse and check a model file's header.

    Raises:
        HybridpotError: missing file, not JSON, wrong format or unsupported version.
    """
    path = Path(path)
    if not path.is_file():
        raise HybridpotError(f"{path}: model file not found")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HybridpotError(f"{path}: not a hybridpot model file (invalid JSON: {exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise HybridpotError(f"{path}: not a hybridpot model file (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("version") not in READABLE_VERSIONS:
        raise HybridpotError(
            f"{path}: model file version {doc.get('version')} is not supported (this hybridpot reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))})"
        )
    for key in ("baseline", "descriptor", "model"):
        if key not in doc:
            raise HybridpotError(f"{path}: corrupt model file, missing {key!r}")
    return doc


def load(path: str | Path):
    """Read a model file written by :func:`save` and return the HybridPotential."""
    from hybridpot.descriptors import SO3
    from hybridpot.potential import HybridPotential

    doc = read_document(path)
    try:
        baseline = baseline_from_record(doc["baseline"], str(path))
        descriptor = SO3.from_dict(doc["descriptor"])
        model = model_from_dict(doc["model"])
    except HybridpotError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise HybridpotError(f"{path}: corrupt model file ({type(exc).__name__}: {exc})") from exc
    pot = HybridPotential(baseline, descriptor, model)
    pot.metadata = doc.get("metadata", {})
    if doc.get("version", 1) >= 2:
        _load_uq(pot, doc, path)
    return pot


def _load_uq(pot, doc: dict[str, Any], path) -> None:
    """Attach the version-2 ``uq`` and ``fallback`` records (either may be null)."""
    from hybridpot.uq import UQData, fallback_from_dict

    try:
        if doc.get("uq") is not None:
            pot.uq_data = UQData.from_dict(doc["uq"])
        if doc.get("fallback") is not None:
            fallback_from_dict(pot, doc["fallback"])
    except HybridpotError as exc:
        raise HybridpotError(f"{path}: corrupt uncertainty data in the model file ({exc})") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise HybridpotError(f"{path}: corrupt uncertainty data in the model file ({type(exc).__name__}: {exc})") from exc
