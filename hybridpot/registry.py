"""Registries of the extension points: baselines, descriptors and models.

Each registry maps a type name (what ``[baseline] type``, ``[descriptor] type``, ``[model] type``,
the model file and ``hybridpot export --format`` say) to an entry that declares everything the rest of hybridpot needs to know
about that type: how to read, build and rebuild it, and what it supports. Nothing outside the
type's own module looks at its class: configuration, fitting, the model file and export all go
through the entry.

Where the entries come from:

* the built-in listing below (``"module:attribute"`` of each entry; the module is imported on
  first use, so the registry itself imports nothing above the utilities);
* installed packages, through the entry-point groups ``hybridpot.baselines``,
  ``hybridpot.descriptors``, ``hybridpot.models`` and ``hybridpot.export_formats``
  (``name = "package.module:ENTRY"``).

A new baseline is one module that defines a :class:`BaselineType` (and its tests); it becomes
available by one line in :data:`BUILTIN_BASELINES` or by an entry point of the package that
ships it. Descriptors (:class:`DescriptorType`), models (:class:`ModelType`) and LAMMPS deck formats
(:class:`ExportFormat`) alike.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from hybridpot.errors import ConfigError, HybridpotError

# ------------------------------------------------------------------------------ entries


@dataclass(frozen=True)
class BaselineType:
    """A kind of empirical baseline.

    Attributes:
        name: the type name (``[baseline] type = NAME``; the model file and messages use it).
        suffixes: file-name endings (lower case) of the files it reads, longest match wins; empty
            for a baseline that is defined in the configuration only.
        read: path -> potential, for the files named by ``suffixes`` (None: no file format).
        lammps_style: the LAMMPS pair style it reproduces (what parity tests compare with and what an
            exported deck runs when the hybridpot pair style does not evaluate it itself).
        settings: the typed settings of an inline definition (``[baseline] type = NAME`` with its keys
            in the same table), a :class:`hybridpot.settings.Settings` subclass; None: file only.
        build: (settings, source) -> potential, for ``settings``.
        differentiable: its parameters are torch parameters with gradients and forces come from autograd.
        external: evaluated by another engine (LAMMPS): an :attr:`~hybridpot.potential.Potential.external` potential,
            whose energies, forces and virial :func:`~hybridpot.potential.evaluate` adds to the autograd part. Either
            kind can be co-fitted (``[baseline] refit``) through ``parameter_values``/``set_parameter_values``.
        summary: one line for ``hybridpot config`` and error messages.
    """

    name: str
    suffixes: tuple[str, ...]
    read: Callable[[Path], Any] | None
    lammps_style: str
    settings: type | None = None
    build: Callable[[Any, str], Any] | None = None
    differentiable: bool = True
    external: bool = False
    summary: str = ""


@dataclass(frozen=True)
class DescriptorType:
    """A kind of descriptor.

    Attributes:
        name: the type name (``[descriptor] type``, the model file's ``descriptor.type``).
        settings: its typed settings (the other keys of ``[descriptor]``), a :class:`hybridpot.settings.Settings` subclass.
        build: (settings, elements) -> descriptor module.
        from_dict: rebuilds the descriptor from its ``to_dict()`` record (model files).
        summary: one line for ``hybridpot config``.
    """

    name: str
    settings: type
    build: Callable[[Any, list[str]], Any]
    from_dict: Callable[[Mapping[str, Any]], Any]
    summary: str = ""


@dataclass(frozen=True)
class ModelType:
    """A kind of per-atom model of the residual.

    Attributes:
        name: the type name (``[model] type``, the model file's ``model.type``).
        settings: its typed settings (the other keys of ``[model]``), a :class:`hybridpot.settings.Settings` subclass;
            None for a type that is not fitted directly (a committee).
        build: (settings, elements, number of descriptor features) -> unfitted model; None: not fitted directly.
        from_dict: (record, the model registry's ``from_dict`` for nested models) -> model (model files).
        linear: linear in its parameters: the model has ``features(B) -> (N, M)``,
            ``pair_feature_gradients(B_i, dB) -> (P, M, 3)``, ``n_params`` (M) and ``coef`` (T, M), and gets
            the streamed QR solve, evidence, cross-validation, the posterior and the std fallback with
            no code of its own. Otherwise ``train`` fits it. Optional parts of the protocol: ``typed_features = True``
            (feature rows depend on the atom's element: ``features(B, types)``, ``pair_feature_gradients(B_i, dB, types_i)``),
            ``identity_prior = True`` (the parameters are in a whitened basis whose prior is the identity, so the solver
            does not rescale the columns), ``has_basis`` / ``choose_basis(B, types, seed)`` (a basis chosen from the
            training descriptors before the solve, e.g. the sparse points of a kernel model) and ``summed_gradients = True``
            with ``gradient_rows(sum dB, sum B_i (x) dB)`` (pair gradients bilinear in the centre's descriptors and dB:
            the design rows are summed over pairs in descriptor space, no pairs x M array), or ``map_gradient_rows(rows, t)``
            (``pair_feature_gradients`` in a basis that a linear map per element takes to the features' one; the design rows
            apply it after the sums over pairs).
        train: (potential, data, baseline predictions, weights, settings, seed, progress, log) ->
            record for report.json, for models that are not ``linear``.
        summary: one line for ``hybridpot config``.
    """

    name: str
    settings: type | None
    build: Callable[..., Any] | None
    from_dict: Callable[..., Any]
    linear: bool
    train: Callable[..., dict[str, Any]] | None = None
    summary: str = ""


@dataclass(frozen=True)
class ExportFormat:
    """A LAMMPS deck format: the files LAMMPS reads for the residual, and the pair style that runs them.

    :func:`hybridpot.export.export_lammps` writes everything a deck has in common (the baseline file,
    ``hybrid/overlay`` lines, the example run, the README frame, the manifest) and asks the format for
    the rest.

    Attributes:
        name: the format name (``hybridpot export --format NAME``, the manifest's ``deck_format``).
        check: (potential, min_distance) -> None; raises :class:`~hybridpot.errors.NotExportableError`
            with the reason and the alternative for what the format cannot run identically.
        model_files: (potential, name) -> {role: (file name, text)}: the files the residual's pair style reads.
        residual_style: (potential, model_path, overlay) -> the residual's ``pair_style`` arguments, the style
            name first; ``model_path`` is the model files' path without suffix, ``overlay`` says that LAMMPS's own
            baseline style runs beside it under ``hybrid/overlay``.
        runs_baseline: baseline -> whether the residual's pair style evaluates that baseline itself.
        readme: (potential, name) -> (rows of the README's file table for ``model_files``, the README's sections on
            running the deck, Markdown).
        manifest: (potential, name, min_distance) -> the format's entries of ``manifest.json``.
        read: (deck folder, name, manifest, baseline) -> the potential rebuilt from the deck's files (checksums already
            checked) with ``baseline``, read from the deck's baseline file (None: no baseline).
        summary: one line for ``hybridpot export --help`` and messages.
    """

    name: str
    check: Callable[[Any, float], None]
    model_files: Callable[[Any, str], dict[str, tuple[str, str]]]
    residual_style: Callable[[Any, str, bool], str]
    runs_baseline: Callable[[Any], bool]
    readme: Callable[[Any, str], tuple[list[str], str]]
    manifest: Callable[[Any, str, float], dict[str, Any]]
    read: Callable[[Path, str, Mapping[str, Any], Any], Any]
    summary: str = ""


# ------------------------------------------------------------------------------ the registries

E = TypeVar("E")


@dataclass
class Registry(Generic[E]):
    """Type name -> entry, from a built-in listing and an entry-point group (resolved on first use).

    Attributes:
        what: what the entries are ("baseline", ...), for messages.
        group: the entry-point group of installed extensions.
        builtin: name -> ``"module:attribute"`` of the built-in entries.
    """

    what: str
    group: str
    builtin: Mapping[str, str]
    _targets: dict[str, str] | None = field(default=None, repr=False)
    _entries: dict[str, E] = field(default_factory=dict, repr=False)

    def _listing(self) -> dict[str, str]:
        """name -> ``"module:attribute"``: the built-in listing, then the installed entry points."""
        if self._targets is None:
            targets = dict(self.builtin)
            for ep in metadata.entry_points(group=self.group):
                if ep.name in targets:
                    raise HybridpotError(f"entry point {ep.value!r} of group {self.group!r} registers the {self.what} type "
                                         f"{ep.name!r}, which is taken; choose another name")
                targets[ep.name] = ep.value
            self._targets = targets
        return self._targets

    def names(self) -> list[str]:
        """The registered type names, in listing order (nothing is imported)."""
        return list(self._listing())

    def __iter__(self) -> Iterator[E]:
        return iter([self.get(name) for name in self._listing()])

    def get(self, name: str, where: str = "") -> E:
        """The entry of ``name`` (its module is imported on first use).

        Raises:
            ConfigError: an unknown name (the message lists the known ones; ``where`` says where
                the name came from, e.g. ``"train.toml: [model] type"``).
            HybridpotError: the entry cannot be imported, or calls itself by another name.
        """
        targets = self._listing()
        if name not in targets:
            prefix = f"{where} = {name!r}: " if where else f"{self.what} type {name!r}: "
            raise ConfigError(f"{prefix}unknown {self.what} type; known: {', '.join(targets)}")
        if name not in self._entries:
            entry = _resolve(targets[name], f"{self.what} type {name!r}")
            if getattr(entry, "name", None) != name:
                raise HybridpotError(f"{self.what} type registered as {name!r} ({targets[name]}) calls itself "
                                     f"{getattr(entry, 'name', None)!r}")
            self._entries[name] = entry
        return self._entries[name]


def _resolve(target: str, what: str) -> Any:
    module, _, attribute = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        raise HybridpotError(f"{what}: cannot load {target!r} ({type(exc).__name__}: {exc})") from exc


#: the built-in baselines
BUILTIN_BASELINES = {
    "eam/alloy": "hybridpot.empirical.eam:SETFL",
    "eam": "hybridpot.empirical.eam:FUNCFL",
    "tersoff": "hybridpot.empirical.tersoff:TERSOFF",
    "lj": "hybridpot.empirical.lj:LJ",
    "sw": "hybridpot.empirical.sw:SW",
    "zbl": "hybridpot.empirical.zbl:ZBL_TYPE",
    "lammps": "hybridpot.empirical.lammps:LAMMPS",
}
#: the built-in descriptors
BUILTIN_DESCRIPTORS = {
    "so3": "hybridpot.descriptors.so3:SO3_TYPE",
}
#: the built-in models
BUILTIN_MODELS = {
    "linear": "hybridpot.models.polynomial:LINEAR",
    "quadratic": "hybridpot.models.polynomial:QUADRATIC",
    "nn": "hybridpot.fitting.nn:NN",  # the model with its trainer (fitting layer)
    "committee": "hybridpot.models.committee:COMMITTEE",
    "kernel": "hybridpot.models.kernel:KERNEL",
}
#: the built-in LAMMPS deck formats (the first is the default)
BUILTIN_EXPORT_FORMATS = {
    "plugin": "hybridpot.export.plugin_file:PLUGIN",
    "mliap": "hybridpot.export.mliap:MLIAP",
}

baselines: Registry[BaselineType] = Registry("baseline", "hybridpot.baselines", BUILTIN_BASELINES)
descriptors: Registry[DescriptorType] = Registry("descriptor", "hybridpot.descriptors", BUILTIN_DESCRIPTORS)
models: Registry[ModelType] = Registry("model", "hybridpot.models", BUILTIN_MODELS)
export_formats: Registry[ExportFormat] = Registry("export format", "hybridpot.export_formats", BUILTIN_EXPORT_FORMATS)


def baseline_for_file(path: str | Path) -> BaselineType:
    """The baseline type that reads ``path``, by the longest matching file-name ending.

    Raises:
        HybridpotError: no registered type reads files of that name (the message lists the endings).
    """
    name = Path(path).name.lower()
    matches = [(len(s), b) for b in baselines for s in b.suffixes if name.endswith(s)]
    if not matches:
        endings = ", ".join(s for b in baselines for s in b.suffixes)
        raise HybridpotError(f"{path}: cannot tell the potential kind from the file name; expected one of {endings}")
    return max(matches, key=lambda m: m[0])[1]


def linear_in_parameters(model: Any) -> bool:
    """Whether ``model`` (by its ``kind``) is of a registered type with the linear-in-parameters protocol
    (:attr:`ModelType.linear`)."""
    kind = getattr(model, "kind", None)
    return kind in models.names() and models.get(kind).linear
