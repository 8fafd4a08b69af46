"""Issue 18, model files that prove their integrity: hand edits, NaN/inf parameters, edited and
unknown versions are refused with a ModelFileError that says what differs; an explicit flag
accepts a hand-edited file; legacy versions load with a warning."""

from __future__ import annotations

import base64
import json
import math
import warnings

import numpy as np
import pytest

from hybridpot.cli import main
from hybridpot.errors import DataError, ModelFileError
from hybridpot.fitting.config import read_config
from hybridpot.fitting.job import run_fit
from hybridpot.io.modelfile import EditedModelFileWarning, LegacyModelFileWarning, load
from tests.corpus import small_config


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fit")
    return run_fit(read_config(small_config(folder)), progress=False, log=lambda m: None).model_path


def edited(tmp_path, model_file, edit, name="edited.hybridpot.json"):
    doc = json.loads(model_file.read_text())
    edit(doc)
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _scale_coefficient(doc):
    doc["model"]["coef"][0][3] *= 1.0001


def _bad_uq_array(value):
    def edit(doc):
        rec = doc["uq"]["posterior"]["covariance"]
        a = np.frombuffer(base64.b64decode(rec["base64"]), dtype="<f8").copy()
        a[7] = value
        rec["base64"] = base64.b64encode(a.tobytes()).decode()
    return edit


def _edit_baseline(doc):
    import hashlib

    b = doc["baseline"]
    b["content"] = b["content"].replace("3.615", "3.616", 1)
    b["sha256"] = hashlib.sha256(b["content"].encode()).hexdigest()  # consistent with itself, not with the checksum


def _downgrade(version, drop=()):
    def edit(doc):
        doc["version"] = version
        for k in drop:
            doc.pop(k)
    return edit


CASES = [
    ("edited-coefficient", _scale_coefficient, "'model' (the model's parameters) differs from what hybridpot wrote"),
    ("edited-baseline", _edit_baseline, "'baseline' (the baseline potential file) differs"),
    ("edited-metadata", lambda d: d["metadata"]["reference_energies_eV"].update(Cu=0.0), "'metadata' (the training metadata"),
    ("nan-coefficient", lambda d: d["model"]["coef"][0].__setitem__(5, math.nan), "NaN or infinite parameters: model.coef[0][5] = nan"),
    ("inf-coefficient", lambda d: d["model"]["coef"][0].__setitem__(2, -math.inf), "model.coef[0][2] = -inf"),
    ("nan-in-uq-array", _bad_uq_array(math.nan), "NaN or infinite parameters: uq.posterior.covariance.base64[7] = nan"),
    ("future-version", _downgrade(4), "model file version 4 is not supported (this hybridpot"),
    ("future-version-numbers", _downgrade(4), "reads versions 1, 2, 3; the file says it was written by hybridpot"),
    ("string-version", _downgrade("3"), "model file version '3' is not supported"),
    ("v3-edited-to-v2", _downgrade(2), "the file says version 2 but has ['checksum'], which version-2 files do not have"),
    ("v3-edited-to-v1", _downgrade(1, drop=("checksum",)), "the file says version 1 but has ['uq', 'fallback']"),
    ("checksum-removed", _downgrade(3, drop=("checksum",)), "corrupt model file, missing 'checksum'"),
    ("unknown-key", lambda d: d.update(extra=1), "unknown key(s) ['extra'] in a version-3 model file"),
]


@pytest.mark.parametrize("edit, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_model_file_is_refused(tmp_path, model_file, edit, fragment):
    path = edited(tmp_path, model_file, edit)
    with pytest.raises(ModelFileError) as info:
        load(path)
    assert type(info.value) is ModelFileError
    assert fragment in str(info.value), str(info.value)
    assert str(path) in str(info.value)


def test_future_version_says_upgrade(tmp_path, model_file):
    with pytest.raises(ModelFileError, match="upgrade hybridpot to read it"):
        load(edited(tmp_path, model_file, _downgrade(7)))


def test_accept_edited_loads_with_a_warning_but_never_nan(tmp_path, model_file):
    path = edited(tmp_path, model_file, _scale_coefficient)
    with pytest.warns(EditedModelFileWarning, match="'model' \\(the model's parameters\\) differs"):
        pot = load(path, accept_edited=True)
    assert pot.model.coef[0, 3].item() == pytest.approx(load(model_file).model.coef[0, 3].item() * 1.0001, rel=1e-12)
    nan = edited(tmp_path, model_file, lambda d: d["model"]["coef"][0].__setitem__(5, math.nan), "nan.hybridpot.json")
    with pytest.raises(ModelFileError, match="NaN or infinite parameters"):
        load(nan, accept_edited=True)


def test_untouched_file_loads_silently(model_file):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(model_file)


def test_legacy_version_2_loads_with_a_warning(tmp_path, model_file):
    path = edited(tmp_path, model_file, _downgrade(2, drop=("checksum",)))
    with pytest.warns(LegacyModelFileWarning, match="version 2 has no checksum"):
        pot = load(path)
    assert pot.uq_data is not None


def test_eval_refuses_nan_model_and_accepts_edited_on_request(tmp_path, model_file, capsys):
    """``hybridpot eval`` of a NaN model used to print nan and exit 0."""
    from hybridpot.dataset import bundled

    data = str(bundled("Cu_test.xyz"))
    nan = edited(tmp_path, model_file, lambda d: d["model"]["coef"][0].__setitem__(5, math.nan), "nan.hybridpot.json")
    assert main(["-q", "eval", str(nan), data]) == 2
    assert "NaN or infinite parameters: model.coef[0][5] = nan" in capsys.readouterr().err
    hand = edited(tmp_path, model_file, _scale_coefficient)
    assert main(["-q", "eval", str(hand), data]) == 2
    assert "does not match its checksum" in capsys.readouterr().err
    with pytest.warns(EditedModelFileWarning):
        assert main(["-q", "eval", "--accept-edited", str(hand), data]) == 0
    assert "hybrid" in capsys.readouterr().out


def test_eval_refuses_elements_the_model_lacks(tmp_path, model_file):
    from ase.io import read, write

    from hybridpot.dataset import bundled
    from hybridpot.evaluation import evaluate_model

    frames = read(bundled("Cu_test.xyz"), index=":3")
    frames[1][0].symbol = "Ag"
    write(tmp_path / "ag.xyz", frames)
    with pytest.raises(DataError, match="ag.xyz: element\\(s\\) \\['Ag'\\] are not covered by the model .* first in structure 1 \\(config_type"):
        evaluate_model(model_file, tmp_path / "ag.xyz", progress=False, log=lambda m: None)


def test_save_refuses_nan_parameters(tmp_path, model_file):
    import torch

    from hybridpot.io.modelfile import save

    pot = load(model_file)
    with torch.no_grad():
        pot.model.coef[0, 1] = float("nan")
    with pytest.raises(ModelFileError, match="not written: the potential has NaN or infinite parameters \\(model.coef"):
        save(pot, tmp_path / "x.hybridpot.json")
    assert not (tmp_path / "x.hybridpot.json").exists()


def test_eval_of_a_file_without_uncertainty_data_or_training_digests(tmp_path, model_file, capsys):
    """A version-1 file (no uq, so no extrapolation grade) and a file without the training structures' digests (written
    before them) evaluate as before: no extrapolation split, no training-structure check (None in the JSON)."""
    import json

    from hybridpot.dataset import bundled

    def old(doc):
        _downgrade(1, drop=("checksum", "uq", "fallback"))(doc)
        doc["metadata"]["data"]["train"].pop("structure_keys", None)

    path = edited(tmp_path, model_file, old)
    with pytest.warns(LegacyModelFileWarning):
        assert main(["-q", "eval", str(path), str(bundled("Cu_test.xyz")), "--json", str(tmp_path / "e.json")]) == 0
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["extrapolation"] is None and doc["training_structures"] is None
    assert "extrapolation (MaxVol)" not in capsys.readouterr().out
