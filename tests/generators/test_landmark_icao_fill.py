"""``crop="icao"`` fills the frame outside a contributor photo with the photo's own
background colour, never with replicated edge pixels (streaks a detector would learn)."""

from __future__ import annotations

import numpy as np

from morphlab.face.file_backend import read_tem
from morphlab.generators.base import Contributor, create_generator
from morphlab.io import read_image, write_image


def _tight(sample_dir, tmp_path, sid: str) -> Contributor:
    """A contributor photo cut tight around the face (the ICAO frame leaves the image)."""
    src = sample_dir / "neutral" / f"{sid}_03.jpg"
    img = read_image(src)
    y0, x0 = 140, 150
    tight = img[y0:y0 + 330, x0:x0 + 300]
    pts = read_tem(src.with_suffix(".tem")) - np.array([x0, y0])
    out = tmp_path / f"{sid}_03.png"
    write_image(out, tight)
    lines = [str(len(pts))] + [f"{x:.3f}\t{y:.3f}" for x, y in pts]
    out.with_suffix(".tem").write_text("\n".join(lines) + "\n")
    return Contributor(sid, out)


def test_icao_crop_pads_with_a_uniform_colour(sample_dir, tmp_path):
    a, b = _tight(sample_dir, tmp_path, "002"), _tight(sample_dir, tmp_path, "003")
    gen = create_generator("landmark", landmarks="file", variants=["complete"], crop="icao")
    (out,) = gen.generate(a, b, seed=0)
    top = out.image[:12].reshape(-1, 3).astype(int)  # above the photo in both frames
    assert top.std(axis=0).max() == 0, "the padded band is not one uniform colour"
