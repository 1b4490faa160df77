"""Dataset loaders by name, and what the dedicated loaders share.

:data:`LOADERS` maps a name to a function ``loader(root, **params) -> Dataset``:

==========  ====================================================  =======================
name        what                                                  module
==========  ====================================================  =======================
``folder``  any folder, identities from a file-name pattern       :mod:`~.folder`
``frll``    Face Research Lab London set (release or ``neutral/``  :mod:`~.frll`
            + ``smiling/`` layout)
``fei``     FEI face database (14 views, or the frontal a/b set)  :mod:`~.fei`
``onot``    ONOT synthetic ICAO mugshots (one folder per subject) :mod:`~.onot`
==========  ====================================================  =======================

:func:`load_dataset` (``morphlab pairs --loader NAME``, the ``dataset:`` section of an
experiment) calls one with validated keyword parameters. The dedicated loaders return
the same :class:`~morphlab.datasets.folder.Dataset` as ``folder``, with each sample's
:attr:`~morphlab.datasets.folder.Sample.role` set: ``"enrolment"`` for the images morphs
are made from (document photos) and ``"probe"`` for the trusted live captures the morphs
are compared with.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from morphlab.datasets.folder import ENROLMENT, PROBE, Dataset, Sample, load_folder

log = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
Loader = Callable[..., Dataset]

#: Loaders by name (the built-in modules register on first use).
LOADERS: dict[str, Loader] = {"folder": load_folder}
_BUILTINS = ("morphlab.datasets.frll", "morphlab.datasets.fei", "morphlab.datasets.onot")
_LISTED = 10  # names quoted in one message


def register_loader(name: str) -> Callable[[Loader], Loader]:
    """Register ``loader(root, **params) -> Dataset`` under ``name`` (a duplicate raises)."""

    def deco(fn: Loader) -> Loader:
        if name in LOADERS and LOADERS[name] is not fn:
            raise ValueError(f"dataset loader {name!r} is already registered")
        LOADERS[name] = fn
        return fn

    return deco


def _load_builtins() -> None:
    for mod in _BUILTINS:
        importlib.import_module(mod)


def loader_names() -> list[str]:
    """Sorted names of the registered loaders."""
    _load_builtins()
    return sorted(LOADERS)


def get_loader(name: str) -> Loader:
    """The loader registered as ``name``; ``KeyError`` listing the valid names otherwise."""
    _load_builtins()
    if name not in LOADERS:
        raise KeyError(
            f"unknown dataset loader {name!r}; valid names: {', '.join(sorted(LOADERS))}"
        )
    return LOADERS[name]


def loader_params(name: str) -> dict[str, Any]:
    """A loader's keyword parameters and their defaults (``inspect.Parameter.empty`` if none)."""
    sig = inspect.signature(get_loader(name))
    return {
        p.name: p.default for p in list(sig.parameters.values())[1:]
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def load_dataset(name: str, root: PathLike, **params: Any) -> Dataset:
    """Load ``root`` with the loader ``name``.

    Raises:
        KeyError: unknown loader.
        ValueError: a parameter the loader does not take (the message lists those it
            takes), or whatever the loader finds wrong with the folder.
        FileNotFoundError: the folder (or a file it needs) is missing.
    """
    valid = loader_params(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"dataset loader {name!r} has no parameter(s) {', '.join(unknown)}; valid "
            f"parameters: {', '.join(valid)}"
        )
    return get_loader(name)(root, **params)


# ----------------------------------------------------------------------------------------
# shared by the dedicated loaders
# ----------------------------------------------------------------------------------------
def listed(items: Sequence[str]) -> str:
    """``"a, b, c"`` quoting at most 10 items, then how many in all."""
    items = list(items)
    shown = ", ".join(items[:_LISTED])
    return shown + (f", … ({len(items)} in all)" if len(items) > _LISTED else "")


def check_complete(
    dataset: Dataset,
    expected: Iterable[str],
    *,
    what: str,
    allow_incomplete: bool,
) -> Dataset:
    """Check that every subject has exactly the ``expected`` capture labels.

    Subjects lacking some label, or holding labels outside ``expected``, are listed in
    a ``ValueError`` naming what is missing/extra; with ``allow_incomplete`` they are
    only logged (extra labels are always an error: the layout is not the one assumed).
    """
    expected = set(expected)
    missing, extra = [], []
    for subject, samples in dataset.by_subject().items():
        caps = {s.capture for s in samples}
        if expected - caps:
            missing.append(f"{subject} (no {'/'.join(sorted(expected - caps))})")
        if caps - expected:
            extra.append(f"{subject} ({'/'.join(sorted(str(c) for c in caps - expected))})")
    if extra:
        raise ValueError(
            f"{dataset.root}: unexpected capture labels for {len(extra)} subject(s) of the "
            f"{what}: {listed(extra)}; expected {', '.join(sorted(expected))}"
        )
    if missing:
        msg = (
            f"{dataset.root}: {len(missing)} of {len(dataset.subjects())} subject(s) of the "
            f"{what} are incomplete: {listed(missing)}"
        )
        incomplete(msg, allow_incomplete, "restore the missing files")
    return dataset


def incomplete(message: str, allow: bool, fix: str) -> None:
    """Raise ``ValueError(message; fix…)`` unless ``allow``, in which case log a warning."""
    if not allow:
        raise ValueError(f"{message}; {fix}, or pass allow_incomplete=True to leave them out")
    log.warning("%s (left out)", message)


def dataset_root(root: PathLike, what: str) -> Path:
    """``root`` resolved; ``FileNotFoundError`` naming ``what`` if it is not a folder."""
    p = Path(root)
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: {what} folder not found")
    return p.resolve()


def with_roles(
    dataset: Dataset,
    role_of: Callable[[Sample], Optional[str]],
    *,
    loader: str,
    params: Mapping[str, Any],
    min_subjects: int = 2,
) -> Dataset:
    """``dataset`` with each sample's role set by ``role_of`` and the loader recorded.

    Checks that at least ``min_subjects`` subjects have an enrolment image and that no
    subject has two; subjects without an enrolment image or without a probe are logged.
    """
    samples = tuple(replace(s, role=role_of(s)) for s in dataset.samples)
    out = Dataset(dataset.root, samples, loader, dict(params))
    enrol: dict[str, list[str]] = {}
    for s in out.enrolment():
        enrol.setdefault(s.subject, []).append(out.relpath(s))
    twice = [f"{k} ({', '.join(v)})" for k, v in enrol.items() if len(v) > 1]
    if twice:
        raise ValueError(
            f"{out.root}: {len(twice)} subject(s) have several enrolment images: "
            f"{listed(twice)}; one enrolment image per subject is expected"
        )
    if len(enrol) < min_subjects:
        raise ValueError(
            f"{out.root}: {len(enrol)} subject(s) with an enrolment image; at least "
            f"{min_subjects} needed (is this the right folder and layout?)"
        )
    subjects = out.subjects()
    no_enrol = [s for s in subjects if s not in enrol]
    no_probe = [s for s in subjects if s not in out.probes()]
    if no_enrol:
        log.warning(
            "%s: %d subject(s) have no enrolment image (used as probes only): %s",
            out.root, len(no_enrol), listed(no_enrol),
        )
    if no_probe:
        log.warning(
            "%s: %d subject(s) have no probe image (their morphs cannot be scored): %s",
            out.root, len(no_probe), listed(no_probe),
        )
    return out


def merge(root: PathLike, parts: Sequence[Dataset]) -> Dataset:
    """One dataset rooted at ``root`` holding the samples of ``parts`` (sorted by path)."""
    root_p = Path(root).resolve()
    samples = sorted((s for d in parts for s in d.samples), key=lambda s: s.path.as_posix())
    return Dataset(root_p, tuple(samples))


def roles_from_captures(enrolment: str, probes: Iterable[str]) -> Callable[[Sample], Optional[str]]:
    """``role_of`` for :func:`with_roles`: by capture label."""
    probes = frozenset(probes)

    def role_of(s: Sample) -> Optional[str]:
        if s.capture == enrolment:
            return ENROLMENT
        return PROBE if s.capture in probes else None

    return role_of
