"""Morph generators: one file per generator, registered in :data:`GENERATORS`.

Built in: ``landmark`` (:mod:`morphlab.generators.landmark`) and ``arc2face``
(:mod:`morphlab.generators.arc2face`); plug-ins use the ``morphlab.generators``
entry-point group. :func:`morphlab.generators.runner.generate_attack_set` turns a pairs
file into an attack set (images + manifest).
"""

from morphlab.generators.base import (
    GENERATORS,
    Contributor,
    Generator,
    MorphOutput,
    create_generator,
)

__all__ = ["GENERATORS", "Contributor", "Generator", "MorphOutput", "create_generator"]
