"""The detector registry: every detector class by name, plug-ins included."""

from __future__ import annotations

from morphlab._registry import Registry

#: Detectors; plug-ins use the ``morphlab.detectors`` entry-point group.
DETECTORS: Registry = Registry(
    "detector",
    "morphlab.detectors",
    builtins=(
        "morphlab.detectors.lbp_svm",
        "morphlab.detectors.freq_logreg",
        "morphlab.detectors.cnn",
        "morphlab.detectors.embedding_diff",
        "morphlab.detectors.deep_svm",
    ),
)

#: Class decorator: ``@register_detector("lbp-svm")``. Registering a name twice raises.
register_detector = DETECTORS.register


def detector_name(cls: type) -> str:
    """The name a detector class is known by: its registry name, else ``cls.name``."""
    return getattr(cls, "registry_name", None) or getattr(cls, "name", "") or cls.__qualname__
