"""Post-processing applied identically to morphs and bona fide images.

A detector must not learn the processing instead of the morph, so whatever a morph goes
through on its way to a document (cropping to passport geometry, printing and scanning,
JPEG compression) is applied, with the same parameters, to the bona fide images it is
compared with. Operators are written as ``name[:key=value,...]`` specs:

``jpeg:quality=75``
    JPEG re-compression at ``quality`` (1–100; libjpeg's standard tables scaled by it,
    4:2:0 chroma subsampling). When it is the **last** operator, the file written *is*
    that JPEG (``.jpg``, no second encoding), so its quantisation tables say ``quality``.
    ``jpeg:q=75`` is the deprecated spelling (one warning): the same operator, recorded
    as ``jpeg:quality=75``; a set whose ``run.json`` recorded ``jpeg:q=75`` is continued
    as it is (its records keep that spelling).
``resize:width=413,height=531`` / ``resize:scale=0.5``
    plain resampling (``interpolation=area|linear|cubic``, default area); one of
    ``width``/``height`` alone keeps the aspect ratio.
``icao[:width=350,height=450,backend=dlib,eye_distance=0.25,eye_line=0.45,fill=background]``
    passport-photo geometry with :func:`morphlab.face.align.icao_crop`: eyes level, face
    centred, eye distance and eye line at the ICAO-style fractions of the frame. The eye
    centres come from a face backend (cached by image content when the operator sees
    the unmodified source file). The frame is never filled by replicating edge pixels:
    where it reaches beyond the image it is padded with one uniform colour (``fill=
    background``, the image's estimated background, or ``fill=R,G,B``), or (``fill=crop``)
    the face is zoomed to the largest ICAO frame inside the image; each manifest line
    says which (``op_notes``: pad colour and padded fraction, or zoom).
``background[:colour=240,240,240,feather=0.004,model=general]``
    a uniform background: mediapipe's selfie segmentation (the model ships inside
    mediapipe 0.10.21; offline) separates the person, the mask is feathered by a Gaussian
    of ``feather`` x the shorter side, and everything else becomes ``colour``.
    Deterministic. Put it before ``icao`` so that the ICAO padding is the same colour.
``print-scan[:dpi=300,width_mm=35,halftone=4,blur=0.7,noise=2,colour=0.04,...]``
    a documented print-and-scan simulation, in this order:

    1. **resolution loss** — the image is resampled to the pixel grid of a print
       ``width_mm`` wide scanned at ``dpi`` (default a 35 mm passport photo at 300 dpi:
       413 px wide);
    2. **print gamut** — saturation scaled by ``saturation`` (0.85) and the tonal range
       compressed to ``[black, white]`` (0.06–0.97: ink is never black, paper never
       pure white);
    3. **halftone** — at ``halftone``× the scan resolution (default 4, i.e. a 1200 dpi
       printer) each C/M/Y ink layer is binarised with an ordered 8x8 Bayer dither
       (screens shifted per ink), then integrated back to the scan grid by area
       averaging (0 or 1 turns this step off);
    4. **blur** — Gaussian, ``blur`` scan pixels (ink spread + scanner optics);
    5. **colour shift** — per channel gain ``1 ± colour``, offset ``± colour/2`` and a
       common gamma ``1 ± colour``, drawn at random;
    6. **noise** — Gaussian sensor noise of standard deviation ``noise`` (8-bit units);
    7. back to 8 bits, and (``keep_size=true``, the default) resampled to the input
       size, so that geometry-dependent steps downstream are unchanged.

    The random draws come from a generator seeded by the set's ``seed`` and the source
    image's sha256 (:func:`image_seed`): the same image and seed give the same bytes, in
    any order and any number of worker processes; another seed gives other noise.

Sets: :func:`postprocess_set` reads an attack set (its ``manifest.jsonl``, see
:mod:`morphlab.generators.runner`), a set written by this module, or a plain folder of
(bona fide) images, and writes ``OUT_DIR`` with the processed images, ``run.json`` and a
``manifest.jsonl`` following the runner's conventions (one JSON object per line, keys
sorted, ``file`` relative to the folder, ``sha256``; crash-safe and resumable the same
way — :func:`morphlab.generators.runner.prepare_out_dir`). Each line points back to its
source through ``postprocess``, a list with one entry per processing step::

    "postprocess": [{"ops": ["icao:…", "print-scan:…", "jpeg:quality=75"], "seed": 0,
                     "image_seed": 123456,
                     "op_notes": [{"op": "icao:…", "fill": "background",
                                   "colour": [240, 240, 240], "padded_fraction": 0.21}],
                     "source": {"file": "0001_002_003_complete.png",
                                "path": "/abs/…/0001_002_003_complete.png",
                                "sha256": "…", "manifest": "/abs/…/manifest.jsonl"}}]

A morph keeps every key of its attack-set line (generator, pair, contributors…) with
``file``/``sha256`` replaced and ``"kind": "morph"``, so the processed set is itself an
attack set for :func:`~morphlab.generators.runner.load_manifest` and ``map-score``. A bona
fide image gets ``"kind": "bona-fide"``, its source's ``relpath`` and whatever the caller
knows (``subject``, ``capture``, ``role``); read either kind with :func:`load_set`.

Safety, as for ``generate``: ``OUT_DIR`` is locked while a run writes it, and may not be,
contain or lie inside the source's folder (``postprocess SET -o SET --overwrite`` would
delete its own input). Every source's sha256 — bona fide images' too — is recorded in
``source``; a re-run hashes the sources again and redoes any whose content changed under
the same name (an output is never kept for older content).

On Ray (``executor=`` of :func:`postprocess_set`, ``morphlab postprocess --executor ray``)
the images are computed by Ray actors and written here, byte for byte as a local run
writes them (:mod:`morphlab.postprocess.ray_actor`).

The code: :mod:`morphlab.postprocess.ops` (operators), :mod:`morphlab.postprocess.sets`
(sets and their manifests) and :mod:`morphlab.postprocess.ray_actor` (Ray workers).
"""

from morphlab.postprocess.ops import (
    OPS,
    Background,
    Icao,
    Jpeg,
    OpContext,
    Operator,
    PrintScan,
    Resize,
    apply_ops,
    cache_spec,
    image_seed,
    output_suffix,
    parse_op,
    parse_ops,
    register_op,
    same_ops,
)
from morphlab.postprocess.sets import (
    ATTACK_SET,
    BONA_FIDE,
    CONFIG_KEYS,
    IMAGES,
    MORPH,
    SET_FORMAT,
    PostprocessSummary,
    check_chain,
    image_items,
    load_set,
    postprocess_set,
    source_chain,
)

__all__ = [
    "ATTACK_SET", "BONA_FIDE", "CONFIG_KEYS", "IMAGES", "MORPH", "OPS", "SET_FORMAT", "Background",
    "Icao", "Jpeg", "OpContext", "Operator", "PostprocessSummary", "PrintScan", "Resize", "apply_ops",
    "cache_spec", "check_chain", "image_items", "image_seed", "load_set", "output_suffix",
    "parse_op", "parse_ops", "postprocess_set", "register_op", "same_ops", "source_chain",
]
