"""All-pairs face similarity of a set of images (for the ``similar`` pair strategy).

Morphs of look-alike contributors are far stronger attacks than morphs of random pairs
(e.g. Röttcher et al., "Finding the suitable doppelgänger for a face morphing attack",
IJCB 2020): ``morphlab pairs --strategy similar`` ranks candidate pairs by
:func:`pairwise_similarity`.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence, Union

import numpy as np

from morphlab.face.base import FaceBackend
from morphlab.io import PathLike
from morphlab.recognition.base import RecognitionSystem, system_from_spec
from morphlab.recognition.cache import embed_files

log = logging.getLogger(__name__)


def pairwise_similarity(
    paths: Sequence[PathLike],
    *,
    system: Union[str, RecognitionSystem] = "dlib-resnet",
    backend: Union[str, FaceBackend] = "dlib",
    cache_dir: Optional[PathLike] = None,
    progress: bool = False,
    workers: int = 1,
) -> np.ndarray:
    """Similarity of every pair of images under one recognition system.

    Args:
        paths: ``N`` image files.
        system: recognition system (name, ``name=MODEL`` spec or instance).
        backend: landmark backend (landmarks and embeddings are cached).
        cache_dir: cache root.
        progress: tqdm bar while embedding.
        workers: processes embedding the images not in the cache (1 = this process;
            the scores are the same either way).

    Returns:
        ``(N, N)`` float64, higher = more similar; rows and columns of images in which no
        face was found are NaN (with a warning naming them).

    Raises:
        ValueError: fewer than two images could be embedded.
    """
    sys_ = system if isinstance(system, RecognitionSystem) else system_from_spec(system)
    keys = [str(p) for p in paths]
    res = embed_files(sys_, keys, backend=backend, cache_dir=cache_dir, progress=progress,
                      workers=workers)
    for p, why in res.failures.items():
        log.warning("%s: left out of the similarity ranking (%s)", p, why)
    ok = [i for i, k in enumerate(keys) if k in res.embeddings]
    if len(ok) < 2:
        raise ValueError(
            f"only {len(ok)} of {len(keys)} images could be embedded with {sys_.name}; "
            "need at least two to rank pairs by similarity"
        )
    out = np.full((len(keys), len(keys)), np.nan)
    emb = np.stack([res.embeddings[keys[i]] for i in ok])
    out[np.ix_(ok, ok)] = sys_.similarity(emb, emb)
    return out
