"""The registries of baselines, descriptors and models, and typed settings (hybridpot.registry, hybridpot.settings)."""

from __future__ import annotations

import dataclasses
import sys
import types
from importlib import metadata

import numpy as np
import pytest
import torch

from hybridpot.empirical import load as load_empirical
from hybridpot.empirical.base import EmpiricalPotential, LammpsPair
from hybridpot.errors import ConfigError, HybridpotError, PotentialFileError
from hybridpot.fitting.config import parse_config
from hybridpot.fitting.job import make_baseline
from hybridpot.potential import HybridPotential as HybridPotentialOf
from hybridpot.registry import BaselineType, Registry, baseline_for_file, baselines, descriptors, models
from hybridpot.settings import Settings


def test_builtin_types_are_listed_and_resolved():
    assert {"eam/alloy", "eam", "tersoff", "lj"} <= set(baselines.names())
    assert descriptors.names() == ["so3"]
    assert {"linear", "quadratic", "nn", "committee"} <= set(models.names())
    for registry in (baselines, descriptors, models):
        for entry in registry:
            assert registry.get(entry.name) is entry
    assert models.get("linear").linear and models.get("quadratic").linear and not models.get("nn").linear
    assert models.get("nn").train is not None and models.get("committee").build is None


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ConfigError, match=r"fit.toml: \[model\] type = 'gp': unknown model type; known: linear, quadratic"):
        models.get("gp", "fit.toml: [model] type")
    with pytest.raises(HybridpotError, match=r"expected one of .*\.eam\.alloy.*\.tersoff"):
        baseline_for_file("Cu.potential")
    with pytest.raises(PotentialFileError, match="cannot tell the potential kind"):
        load_empirical(__file__)  # exists, but no baseline reads *.py files


def test_longest_suffix_wins():
    assert baseline_for_file("Cu_mishin1.eam.alloy").name == "eam/alloy"
    assert baseline_for_file("Cu_u3.EAM").name == "eam"


# ------------------------------------------------------------------------------ an extension from another package


class Harmonic(EmpiricalPotential):
    """A toy pair baseline E = sum_{i<j} k (r - r0)^2 inside rc: what a user's package would add."""

    def __init__(self, k: float, r0: float, rc: float, source: str = "harmonic") -> None:
        super().__init__(rc, None, source)
        self.k = torch.nn.Parameter(torch.tensor(float(k), dtype=torch.float64))
        self.r0, self.rc = float(r0), float(rc)

    def forward(self, graph):
        r = graph.vectors.norm(dim=1)
        e = torch.where(r < self.rc, self.k * (r - self.r0) ** 2, torch.zeros_like(r))
        return torch.zeros(graph.n_atoms, dtype=e.dtype).index_add(0, graph.i, 0.5 * e)

    def lammps_pair(self, type_elements):
        return LammpsPair("harmonic/cut", [("*", "*", f"{self.k.item()!r} {self.rc!r}")])

    @property
    def file_name(self) -> str:
        return "baseline.harmonic"

    def to_text(self) -> str:
        return f"{self.k.item()!r} {self.r0!r} {self.rc!r}\n"

    @classmethod
    def read(cls, path):
        k, r0, rc = map(float, open(path).read().split())
        return cls(k, r0, rc, source=str(path))


@dataclasses.dataclass
class HarmonicSettings(Settings):
    k: float = dataclasses.field(metadata={"help": "spring constant, eV/A^2"})
    r0: float = dataclasses.field(default=2.5, metadata={"help": "rest length, A"})
    rc: float = dataclasses.field(default=4.0, metadata={"help": "cutoff, A"})

    def check_values(self, where: str) -> None:
        if not self.rc > self.r0:
            raise ConfigError(f"{where} rc = {self.rc}: must exceed r0 = {self.r0}")


HARMONIC = BaselineType("harmonic", (".harmonic",), Harmonic.read, "harmonic/cut", settings=HarmonicSettings,
                        build=lambda s, source: Harmonic(s.k, s.r0, s.rc, source))


@pytest.fixture
def harmonic_entry_point(monkeypatch):
    """Install HARMONIC as an entry point of the group hybridpot.baselines (as a package's metadata would)."""
    module = types.ModuleType("hybridpot_test_harmonic")
    module.HARMONIC = HARMONIC
    monkeypatch.setitem(sys.modules, module.__name__, module)
    real = metadata.entry_points

    def entry_points(**kwargs):
        if kwargs.get("group") == "hybridpot.baselines":
            return [metadata.EntryPoint("harmonic", f"{module.__name__}:HARMONIC", "hybridpot.baselines")]
        return real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", entry_points)
    monkeypatch.setattr(baselines, "_targets", None)
    monkeypatch.setattr(baselines, "_entries", {})
    yield
    baselines._targets, baselines._entries = None, {}


def test_an_entry_point_baseline_is_read_configured_and_stored(harmonic_entry_point, tmp_path):
    """A baseline from another package reaches file reading, the configuration and the fit's baseline builder
    without any change to hybridpot."""
    assert "harmonic" in baselines.names()
    path = tmp_path / "spring.harmonic"
    path.write_text("0.5 2.5 4.0\n")
    assert isinstance(load_empirical(path), Harmonic)
    (tmp_path / "train.xyz").write_text("")
    raw = {"data": {"train": "train.xyz"}, "baseline": {"type": "harmonic", "k": 0.25}}
    config = parse_config(raw, tmp_path, "fit.toml")
    assert {k: config["baseline"][k] for k in ("k", "r0", "rc")} == {"k": 0.25, "r0": 2.5, "rc": 4.0}
    pot = make_baseline(config)
    assert isinstance(pot, Harmonic) and pot.k.item() == 0.25
    with pytest.raises(ConfigError, match=r"fit.toml: \[baseline\] rc = 2.0: must exceed r0"):
        parse_config({**raw, "baseline": {"type": "harmonic", "k": 1, "rc": 2.0}}, tmp_path, "fit.toml")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['kk'\] in \[baseline\]; allowed with type = 'harmonic'"):
        parse_config({**raw, "baseline": {"type": "harmonic", "kk": 1}}, tmp_path, "fit.toml")


def test_inline_keys_need_an_inline_type(tmp_path):
    (tmp_path / "train.xyz").write_text("")
    (tmp_path / "Cu.eam.alloy").write_text("")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['cutoff'\] in \[baseline\]"):
        parse_config({"data": {"train": "train.xyz"}, "baseline": {"file": "Cu.eam.alloy", "cutoff": 5.0}}, tmp_path, "fit.toml")
    with pytest.raises(ConfigError, match=r"type = 'tersoff' is read from a file: give file"):
        parse_config({"data": {"train": "train.xyz"}, "baseline": {"type": "tersoff"}}, tmp_path, "fit.toml")
    with pytest.raises(ConfigError, match=r"\[baseline\] type = 'morse': unknown baseline type; known: eam/alloy"):
        parse_config({"data": {"train": "train.xyz"}, "baseline": {"type": "morse"}}, tmp_path, "fit.toml")


def test_a_taken_name_or_a_misnamed_entry_is_refused(monkeypatch):
    module = types.ModuleType("hybridpot_test_clash")
    module.ENTRY = dataclasses.replace(HARMONIC, name="other")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: [metadata.EntryPoint("lj", "x:Y", "g")] if kw.get("group") == "g"
                        else real(**kw))
    with pytest.raises(HybridpotError, match="registers the baseline type 'lj', which is taken"):
        Registry("baseline", "g", {"lj": "hybridpot.empirical.lj:LJ"}).names()
    with pytest.raises(HybridpotError, match="registered as 'harmonic' .* calls itself 'other'"):
        Registry("baseline", "none", {"harmonic": f"{module.__name__}:ENTRY"}).get("harmonic")
    with pytest.raises(HybridpotError, match="cannot load 'hybridpot.nothing:X'"):
        Registry("baseline", "none", {"x": "hybridpot.nothing:X"}).get("x")


# ------------------------------------------------------------------------------ typed settings


def test_settings_check_every_key():
    where = "fit.toml: [baseline]"
    assert HarmonicSettings.from_table({"k": 1}, where) == HarmonicSettings(1.0, 2.5, 4.0)
    for table, message in [({}, r"k is required \(spring constant, eV/A\^2\)"),
                           ({"k": True}, r"k = True: expected float"),
                           ({"k": "1"}, r"k = '1': expected float"),
                           ({"k": float("nan")}, r"k = nan: numbers must be finite"),
                           ({"k": 1, "rc": 1.0}, r"rc = 1.0: must exceed r0")]:
        with pytest.raises(ConfigError, match=message):
            HarmonicSettings.from_table(table, where)
    assert HarmonicSettings.describe() == [("k", "float", "required", "spring constant, eV/A^2"),
                                           ("r0", "float", "2.5", "rest length, A"), ("rc", "float", "4.0", "cutoff, A")]


def test_hybridpot_config_documents_every_key_and_type(capsys):
    from hybridpot.cli import main
    from hybridpot.fitting.sections import SECTIONS

    assert main(["config"]) == 0
    text = capsys.readouterr().out
    for section, settings in SECTIONS.items():
        assert f"[{section}]" in text
        assert all(f"  {key} " in text for key in settings.keys()), section
        assert all(help_text for *_, help_text in settings.describe()), f"[{section}]: a key without help text"
    for registry in (baselines, descriptors, models):
        assert all(f"    {name} " in text for name in registry.names())
    assert "      inner " in text  # an inline type's settings
    assert main(["config", "model"]) == 0 and "[fit]" not in capsys.readouterr().out
    assert main(["config", "models"]) == 2
    assert "unknown section 'models'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ a model from another package


class RBFModel(torch.nn.Module):
    """E_t(B) = w_t0 + sum_m w_tm exp(-|B - c_m|^2 / (2 l^2)): a kernel model on fixed inducing points c_m, linear in w."""

    kind = "rbf"

    def __init__(self, elements, centres: torch.Tensor, length: float) -> None:
        super().__init__()
        self.elements = list(elements)
        self.register_buffer("centres", centres)
        self.length = float(length)
        self.n_params = 1 + centres.shape[0]
        self.coef = torch.nn.Parameter(torch.zeros((len(self.elements), self.n_params), dtype=torch.float64))

    def _kernel(self, B):
        return torch.exp(-((B[:, None, :] - self.centres[None]) ** 2).sum(-1) / (2 * self.length**2))

    def features(self, B):
        return torch.cat([torch.ones((B.shape[0], 1), dtype=B.dtype), self._kernel(B)], dim=1)

    def pair_feature_gradients(self, B_center, dB):
        k = self._kernel(B_center)  # (P, C)
        dk_dB = -k[:, :, None] * (B_center[:, None, :] - self.centres[None]) / self.length**2  # (P, C, K)
        g = torch.einsum("pck,pka->pca", dk_dB, dB)
        return torch.cat([torch.zeros((dB.shape[0], 1, 3), dtype=dB.dtype), g], dim=1)

    def forward(self, B, types):
        return (self.features(B) * self.coef[types]).sum(dim=1)


@pytest.mark.slow
def test_a_linear_in_parameters_model_gets_the_solver_and_the_posterior_with_no_new_code(monkeypatch):
    """A kernel model registered as linear is fitted by the streamed QR with evidence maximisation, gets its
    posterior and predictive std, exactly as the built-in linear model does."""
    from hybridpot.dataset import bundled, read_dataset
    from hybridpot.descriptors import SO3
    from hybridpot.fitting.assembly import Weights
    from hybridpot.fitting.linear import fit_linear
    from hybridpot.metrics import error_metrics
    from hybridpot.potential import HybridPotential
    from hybridpot.prediction import baseline_predictions, predict, reference_energies
    from hybridpot.prediction import descriptors as descriptors_of
    from hybridpot.registry import ModelType, linear_in_parameters
    from hybridpot.uq import attach_uq

    entry = ModelType("rbf", None, None, None, linear=True)
    monkeypatch.setattr(models, "_targets", {**models._listing(), "rbf": "unused:unused"})
    monkeypatch.setitem(models._entries, "rbf", entry)
    train, test = read_dataset(bundled("Cu_train.xyz")), read_dataset(bundled("Cu_test.xyz"))
    d = SO3(rcut=4.5, nmax=3, lmax=3, alpha=2.0, elements=["Cu"])
    base = load_empirical(bundled("Cu_mishin1.eam.alloy"))
    B, _, _ = descriptors_of(HybridPotential(base, d, RBFModel(["Cu"], torch.zeros((1, d.n_features)), 1.0)), train.frames)
    centres = torch.from_numpy(B[np.random.default_rng(0).choice(len(B), 30, replace=False)])
    length = float(np.median(torch.cdist(centres, centres).numpy()))  # the typical distance between inducing points
    pot = HybridPotential(base, d, RBFModel(["Cu"], centres, length))
    assert linear_in_parameters(pot.model)
    bl = baseline_predictions(base, train, progress=False)
    sol, weights = fit_linear(pot, train, bl, Weights(energy=300.0), progress=False)
    assert sol.method == "evidence" and np.isfinite(sol.log_evidence) and sol.covariance.shape == (31, 31)
    hybrid = error_metrics(predict(pot, test, progress=False)["energy"], test.energy, test.n_atoms)
    e_ref = reference_energies(train, bl, ["Cu"])[0]  # the "baseline only" potential: EAM + a per-atom constant
    alone = error_metrics(predict(base, test, progress=False)["energy"] + e_ref * test.n_atoms, test.energy, test.n_atoms)
    print(f"RBF hybrid {hybrid['energy_mae_meV_atom']:.2f} meV/atom vs baseline only {alone['energy_mae_meV_atom']:.2f}")
    assert hybrid["energy_mae_meV_atom"] < 0.5 * alone["energy_mae_meV_atom"]
    attach_uq(pot, train, bl, weights, solution=sol, predictions=predict(pot, train, progress=False))
    u = pot.uncertainty(test.frames[0])
    assert u["source"] == "posterior" and u["energy_std"] > 0 and u["force_std"].shape == (len(test.frames[0]), 3)


def test_hybridpot_config_toml_is_a_working_configuration(tmp_path, capsys):
    import tomllib

    from hybridpot.cli import main
    from hybridpot.dataset import bundled
    from hybridpot.fitting.sections import SECTIONS

    assert main(["config", "--toml"]) == 0
    text = capsys.readouterr().out
    assert all(f"{key} =" in text for settings in SECTIONS.values() for key in settings.keys())
    raw = tomllib.loads(text)
    assert raw["data"] == {"train": "train.xyz"} and raw["baseline"] == {"file": "baseline.eam.alloy"}
    (tmp_path / "fit.toml").write_text(text.replace('"train.xyz"', f'"{bundled("Cu_train.xyz")}"')
                                       .replace('"baseline.eam.alloy"', f'"{bundled("Cu_mishin1.eam.alloy")}"'))
    from hybridpot.fitting.config import read_config

    config = read_config(tmp_path / "fit.toml")  # every default as written is accepted
    assert config["model"]["type"] == "linear" and config["fit"]["energy_weight"] == 1.0


def test_model_files_name_unknown_types_and_errors_have_their_classes(tmp_path):
    """A model file of a type this hybridpot does not have is refused naming the type and the known ones; missing
    uncertainty data and unexportable parts raise their own error classes."""
    import json

    from ase.build import bulk

    from hybridpot.descriptors import SO3
    from hybridpot.errors import ModelFileError, NotExportableError, UncertaintyDataError
    from hybridpot.export.lammps import check_exportable
    from hybridpot.io.modelfile import load, save
    from hybridpot.models.polynomial import PolynomialModel
    from hybridpot.potential import HybridPotential

    d = SO3(rcut=4.0, nmax=2, lmax=2, basis="bessel", elements=["Cu"])
    pot = HybridPotential(None, d, PolynomialModel(["Cu"], d.n_features))
    path = save(pot, tmp_path / "m.hybridpot.json")
    for section, message in (("model", r"unknown model type 'gp' \(this hybridpot reads linear, quadratic"),
                             ("descriptor", r"unknown descriptor type 'ace' \(this hybridpot reads so3\)")):
        doc = json.loads(path.read_text())
        doc[section]["type"] = "gp" if section == "model" else "ace"
        edited = tmp_path / f"{section}.hybridpot.json"
        edited.write_text(json.dumps(doc))
        with pytest.raises(ModelFileError, match=message):
            load(edited)
    with pytest.raises(UncertaintyDataError, match="carries no uncertainty data: fit it with `hybridpot fit`"):
        pot.uncertainty(bulk("Cu", "fcc", a=3.6))
    with pytest.raises(NotExportableError, match=r"cannot export to LAMMPS: only basis='lammps' descriptors .* this one is 'bessel'"):
        check_exportable(pot, format="mliap")


def test_an_export_format_is_one_registry_entry(monkeypatch, tmp_path):
    """A deck format from another package (here a toy that runs LAMMPS's ``pair_style zero`` for the residual and keeps
    its numbers in a JSON file) gets the whole deck: the baseline under hybrid/overlay, the README, the manifest and
    reading back, with no change to hybridpot.export.lammps."""
    import json

    from hybridpot.dataset import bundled
    from hybridpot.export.lammps import export_lammps, pair_lines, read_lammps
    from hybridpot.io.modelfile import load, save
    from hybridpot.registry import ExportFormat, export_formats
    from tests.builders import CU, descriptor, random_model, structure

    read_back = {}

    def read(folder, name, manifest, baseline):
        read_back["args"] = (name, manifest["deck_format"], baseline)
        potential = load(folder / f"{name}.hybridpot.json")
        potential.baseline = baseline
        return potential

    toy = ExportFormat(
        name="toy", check=lambda potential, min_distance: None,
        model_files=lambda potential, name: {"model": (f"{name}.toy.json", json.dumps({"kind": potential.model.kind}))},
        residual_style=lambda potential, path, overlay: "zero 6.0", runs_baseline=lambda baseline: False,
        readme=lambda potential, name: ([f"| `{name}.toy.json` | the toy model |"], "## Run it\n\nnowhere\n"),
        manifest=lambda potential, name, min_distance: {"toy_version": 1, "commands": {"toy": "none"}}, read=read)
    monkeypatch.setattr(export_formats, "_targets", {**export_formats._listing(), "toy": "unused:unused"})
    monkeypatch.setitem(export_formats._entries, "toy", toy)

    atoms = structure(CU, seed=1)
    d = descriptor(CU)
    potential = HybridPotentialOf(load_empirical(bundled("Cu_mishin1.eam.alloy")), d, random_model("linear", d, [atoms], 2, [0.01]))
    files = export_lammps(potential, tmp_path, name="t", format="toy")
    assert json.loads(files["model"].read_text()) == {"kind": "linear"}
    lines = pair_lines(potential, "t", ["Cu"], baseline_dir=".", format="toy")
    assert lines[0] == "pair_style hybrid/overlay eam/alloy zero 6.0" and lines[-1] == "pair_coeff * * zero Cu"
    assert files["pair"].read_text().splitlines()[1:] == lines
    manifest = json.loads(files["manifest"].read_text())
    assert manifest["deck_format"] == "toy" and manifest["toy_version"] == 1 and manifest["commands"]["toy"] == "none"
    assert "the toy model" in files["readme"].read_text() and "nowhere" in files["readme"].read_text()
    back = read_lammps(tmp_path, "t")
    assert read_back["args"][:2] == ("t", "toy") and back.baseline is read_back["args"][2] is not None
    save(back, tmp_path / "again.json")  # a complete potential
    with pytest.raises(ConfigError, match="unknown export format type; known: plugin, mliap, toy"):
        export_lammps(potential, tmp_path / "other", name="t", format="nope")
