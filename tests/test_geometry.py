"""Property tests of morphlab.geometry on real FRLL photos and their hand-placed landmarks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.spatial import Delaunay

from morphlab import compositing
from morphlab import geometry as geo
from morphlab.face.file_backend import read_tem
from morphlab.io import read_image

SIZE = 320  # downscaled from the 600 px sample to keep the suite fast


def _small(frll_photo, face_id: str, size: int = SIZE):
    path = frll_photo(face_id)  # the embedded sample, or tests/fixtures/frll_600 (025)
    return geo.resize_with_points(read_image(path), read_tem(path.with_suffix(".tem")), size)


@pytest.fixture(scope="module")
def pair(frll_photo):
    (a, pa), (b, pb) = _small(frll_photo, "002"), _small(frll_photo, "004")
    return a, b, pa, pb


def _frame_triangulation(pa, pb, alpha=0.5, size=(SIZE, SIZE)):
    pa, pb = geo.with_boundary(pa, size), geo.with_boundary(pb, size)
    dst = geo.average_points(pa, pb, alpha)
    return pa, pb, dst, geo.triangulate(dst)


# ----------------------------------------------------------------------------------------
# triangulation
# ----------------------------------------------------------------------------------------
def test_boundary_points_are_corners_and_midpoints():
    bd = geo.boundary_points((101, 51))
    assert bd.shape == (8, 2)
    assert {tuple(p) for p in bd[[0, 2, 4, 6]]} == {(0, 0), (100, 0), (100, 50), (0, 50)}
    assert {tuple(p) for p in bd[[1, 3, 5, 7]]} == {(50, 0), (100, 25), (50, 50), (0, 25)}


def test_triangles_cover_the_frame(pair):
    _, _, pa, pb = pair
    _, _, dst, tri = _frame_triangulation(pa, pb)
    # the areas add up to the frame's (pixel centres span [0, W-1] x [0, H-1])
    assert geo.triangle_areas(dst, tri).sum() == pytest.approx((SIZE - 1) ** 2, rel=1e-9)
    assert (geo.triangle_areas(dst, tri) > 0).all()
    labels = geo.label_map(dst, tri, (SIZE, SIZE))
    assert labels.shape == (SIZE, SIZE)
    assert labels.min() >= 0, "pixels without a triangle"
    assert labels.max() < len(tri)
    # every pixel's triangle contains its centre (exact scan conversion): the centre is
    # inside it or on its boundary, up to rounding
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    q = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    p = dst[tri[labels.ravel()]]  # (P, 3, 2) the assigned triangle's corners
    side = np.stack([(p[:, (i + 1) % 3, 0] - p[:, i, 0]) * (q[:, 1] - p[:, i, 1])
                     - (p[:, (i + 1) % 3, 1] - p[:, i, 1]) * (q[:, 0] - p[:, i, 0])
                     for i in range(3)], axis=1)  # counter-clockwise triangles: all >= 0
    edge = np.linalg.norm(p - np.roll(p, -1, axis=1), axis=2)
    assert (side / edge).min() > -1e-9
    own = Delaunay(dst).find_simplex(q)
    true_tri = np.sort(Delaunay(dst).simplices[own], axis=1)
    assert (np.sort(tri[labels.ravel()], axis=1) == true_tri).all(axis=1).mean() > 0.99


def test_label_map_is_exact_and_leaves_uncovered_pixels():
    pts = np.array([[3.3, 2.7], [35.6, 9.2], [12.1, 27.4]])  # one triangle, counter-clockwise
    labels = geo.label_map(pts, np.array([[0, 1, 2]]), (40, 30))
    ys, xs = np.mgrid[0:30, 0:40]
    inside = np.ones((30, 40), bool)
    for i in range(3):
        (ax, ay), (bx, by) = pts[i], pts[(i + 1) % 3]
        inside &= (bx - ax) * (ys - ay) - (by - ay) * (xs - ax) >= 0
    assert 100 < inside.sum() < 40 * 30
    np.testing.assert_array_equal(labels, np.where(inside, 0, -1))
    # the field still covers the whole frame, with the nearest triangle's function
    field = geo.interpolate_field(pts, pts * 2.0, np.array([[0, 1, 2]]), (40, 30))
    np.testing.assert_allclose(field, 2.0 * np.stack([xs, ys], axis=2), atol=1e-4)


def test_triangulate_is_deterministic_and_oriented(pair):
    _, _, pa, pb = pair
    _, _, dst, tri = _frame_triangulation(pa, pb)
    assert np.array_equal(tri, geo.triangulate(dst.copy()))
    p = dst[tri]
    cross = (p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1]) - (p[:, 1, 1] - p[:, 0, 1]) * (
        p[:, 2, 0] - p[:, 0, 0]
    )
    assert (cross > 0).all()


def test_triangulate_rejects_degenerate_input():
    with pytest.raises(ValueError, match="at least 3"):
        geo.triangulate(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="triangulate"):
        geo.triangulate(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]))


# ----------------------------------------------------------------------------------------
# warps
# ----------------------------------------------------------------------------------------
def test_identity_warp_returns_the_input(pair):
    a, _, pa, _ = pair
    out = geo.warp_image(a, pa, pa)
    assert np.array_equal(out, a)


def test_field_is_exact_for_affine_values(pair):
    """Interpolating values of one affine function reproduces it at every pixel."""
    _, _, pa, pb = pair
    _, _, dst, tri = _frame_triangulation(pa, pb)
    A = np.array([[0.3, -0.2], [0.1, 0.05]])
    c = np.array([4.0, -7.0])
    field = geo.interpolate_field(dst, dst @ A.T + c, tri, (SIZE, SIZE))
    xy = geo.identity_map((SIZE, SIZE)).astype(np.float64)
    np.testing.assert_allclose(field, xy @ A.T + c, atol=2e-3)


def test_warp_map_agrees_with_an_independent_barycentric_formulation(pair):
    _, _, pa, pb = pair
    pa, pb, dst, tri = _frame_triangulation(pa, pb)
    ours = geo.warp_map(pa, dst, tri, (SIZE, SIZE)).reshape(-1, 2).astype(np.float64)
    d = Delaunay(dst)  # scipy's own triangulation of the same points, and exact containment
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    q = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    s = d.find_simplex(q)
    assert (s >= 0).all()
    T = d.transform[s]
    b = np.einsum("nij,nj->ni", T[:, :2], q - T[:, 2])
    bary = np.concatenate([b, 1 - b.sum(axis=1, keepdims=True)], axis=1)
    exact = np.einsum("nk,nkd->nd", bary, pa[d.simplices[s]])
    err = np.linalg.norm(ours - exact, axis=1)
    assert np.quantile(err, 0.99) < 1e-3
    assert np.quantile(err, 0.999) < 0.1
    assert err.max() < 0.5  # sharp corners and sub-pixel slivers use a neighbour's map


def test_warp_map_sends_each_landmark_to_its_source(pair):
    """At a destination landmark the map points exactly at the source landmark."""
    _, _, pa, pb = pair
    dst = np.round(pb)  # landmarks on pixel centres, so the map is sampled right there
    keep = np.unique(dst, axis=0, return_index=True)[1]
    src, dst = pa[np.sort(keep)], dst[np.sort(keep)]
    m = geo.warp_map(geo.with_boundary(src, (SIZE, SIZE)), geo.with_boundary(dst, (SIZE, SIZE)),
                     geo.triangulate(geo.with_boundary(dst, (SIZE, SIZE))), (SIZE, SIZE))
    inside = (dst >= 0).all(axis=1) & (dst < SIZE).all(axis=1)
    got = m[dst[inside, 1].astype(int), dst[inside, 0].astype(int)]
    np.testing.assert_allclose(got, src[inside], atol=2e-3)


def test_warp_moves_a_rendered_landmark_pattern(pair):
    """Dots drawn at A's landmarks land on B's after the warp.

    A dot centred on a triangle vertex is spread over triangles with different affine
    maps, which moves its centroid by a fraction of its width (~0.3 sigma here); hence
    the tolerance. The exact map is checked above.
    """
    _, _, pa, pb = pair
    pick = np.array([0, 1, 18, 27, 54, 60, 87, 93, 109, 112, 129, 139, 147, 155, 184])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)

    def render(points):
        img = np.zeros((SIZE, SIZE), np.float64)
        for x, y in points:
            img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 0.8**2))
        return np.clip(img * 255, 0, 255).astype(np.uint8)

    def centroids(img, around):
        out = []
        for x, y in around:
            x0, y0 = int(round(x)) - 4, int(round(y)) - 4
            win = img[y0 : y0 + 9, x0 : x0 + 9].astype(np.float64)
            gy, gx = np.mgrid[y0 : y0 + 9, x0 : x0 + 9]
            out.append([(win * gx).sum() / win.sum(), (win * gy).sum() / win.sum()])
        return np.array(out)

    assert np.linalg.norm(pa[pick] - pb[pick], axis=1).mean() > 2  # the dots must move
    warped = geo.warp_image(render(pa[pick]), pa, pb)
    err = np.linalg.norm(centroids(warped, pb[pick]) - pb[pick], axis=1)
    assert err.max() < 0.6 and err.mean() < 0.35
    # and in a morph of the two patterns the dots sit at the averaged positions
    mid = geo.average_points(pa, pb, 0.5)
    m = geo.morph(np.dstack([render(pa[pick])] * 3), np.dstack([render(pb[pick])] * 3), pa, pb)
    err = np.linalg.norm(centroids(m[:, :, 0], mid[pick]) - mid[pick], axis=1)
    assert err.max() < 0.6 and err.mean() < 0.35


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_shape_alpha_endpoints_reproduce_each_contributor(pair, alpha):
    a, b, pa, pb = pair
    shape = geo.average_points(pa, pb, alpha)
    np.testing.assert_array_equal(shape, pa if alpha == 0.0 else pb)
    # A warped to A's own shape is A, and B to B's is B: the morph at the endpoints is
    # exactly the contributor
    out = geo.morph(a, b, pa, pb, shape_alpha=alpha, texture_alpha=alpha)
    assert np.array_equal(out, a if alpha == 0.0 else b)


def test_morph_is_symmetric_and_thread_independent(pair):
    a, b, pa, pb = pair
    ab = geo.morph(a, b, pa, pb, shape_alpha=0.5, texture_alpha=0.5, threads=1)
    assert np.array_equal(ab, geo.morph(a, b, pa, pb, threads=2))
    ba = geo.morph(b, a, pb, pa, shape_alpha=0.5, texture_alpha=0.5)
    assert np.abs(ab.astype(int) - ba).max() <= 1  # blend rounding only
    _, wa, wb = geo.morph(a, b, pa, pb, return_warped=True)
    assert np.abs(geo.blend(wa, wb, 0.5).astype(int) - ab).max() == 0


def test_morph_rejects_mismatched_inputs(pair):
    a, b, pa, pb = pair
    with pytest.raises(ValueError, match="size"):
        geo.morph(a, b[:-1], pa, pb)
    with pytest.raises(ValueError, match="shape"):
        geo.morph(a, b, pa, pb[:-1])


# ----------------------------------------------------------------------------------------
# masks, colour matching, compositing
# ----------------------------------------------------------------------------------------
def test_feather_mask_stays_inside_the_hull(pair):
    _, _, pa, _ = pair
    hard = geo.hull_mask(pa[109:134], (SIZE, SIZE))
    soft = geo.feather_mask(hard, 6)
    assert soft.dtype == np.float32 and soft.min() >= 0 and soft.max() == pytest.approx(1.0)
    assert (soft[hard == 0] == 0).all()
    assert (soft[geo.erode_mask(hard, 12) > 0] > 0.99).all()


def test_composite_is_exact_outside_and_inside(pair):
    a, b, pa, _ = pair
    alpha = geo.feather_mask(geo.hull_mask(pa[109:134], (SIZE, SIZE)), 5)
    out = geo.composite(b, a, alpha)
    assert np.array_equal(out[alpha == 0], a[alpha == 0])
    assert np.array_equal(out[alpha == 1], b[alpha == 1])


def _seam(image, mask):
    """Mean luminance gradient on the mask's boundary (a hard paste shows a step there)."""
    lum = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = np.hypot(cv2.Sobel(lum, cv2.CV_32F, 1, 0), cv2.Sobel(lum, cv2.CV_32F, 0, 1))
    edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    return float(g[edge].mean())


def test_colour_matching_reduces_the_seam(frll_photo):
    # two contributors with clearly different skin tones and lighting
    (a, pa), (b, pb) = _small(frll_photo, "002"), _small(frll_photo, "025")
    m = geo.morph(a, b, pa, pb, texture_alpha=1.0)  # B's texture on the morph shape
    shape = geo.average_points(pa, pb, 0.5)
    bg = geo.warp_image(a, pa, shape)  # A on the same shape
    mask = geo.erode_mask(geo.hull_mask(shape[109:134], (SIZE, SIZE)), 4)
    plain = geo.composite(m, bg, (mask > 0).astype(np.float32))
    matched_fg = geo.match_colour(m, bg, mask)
    matched = geo.composite(matched_fg, bg, (mask > 0).astype(np.float32))
    seam_plain, seam_matched, seam_bg = _seam(plain, mask), _seam(matched, mask), _seam(bg, mask)
    assert seam_matched < seam_plain
    assert seam_matched - seam_bg < 0.6 * (seam_plain - seam_bg)
    # the statistics now agree inside the mask
    lab = lambda im: cv2.cvtColor(im.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)[mask > 0]  # noqa: E731
    np.testing.assert_allclose(lab(matched_fg).mean(0), lab(bg).mean(0), atol=1.0)


def test_poisson_composite_keeps_outside_and_clones_inside(pair):
    a, b, pa, _ = pair
    mask = geo.erode_mask(geo.hull_mask(pa[109:134], (SIZE, SIZE)), 4)
    out = geo.poisson_composite(b, a, mask)
    assert np.array_equal(out[mask == 0], a[mask == 0])
    inner = geo.erode_mask(mask, 10) > 0
    assert np.abs(out.astype(int) - a)[inner].mean() > 5  # something was cloned in
    # the mask argument is left alone (cv2.seamlessClone itself writes into it)
    before = mask.copy()
    geo.poisson_composite(b, a, mask)
    assert np.array_equal(mask, before)


@pytest.mark.parametrize("shift", [0, 7])
def test_poisson_dst_solver_matches_seamless_clone(pair, shift):
    """solver="dst" solves OpenCV's system: every pixel within 1 grey level of
    cv2.seamlessClone (float rounding before the truncation), nearly all equal-or-one-off
    inside, exactly bg outside; also for a mask cut by the frame's 2-pixel margin."""
    a, b, pa, _ = pair
    mask = geo.erode_mask(geo.hull_mask(pa[109:134], (SIZE, SIZE)), 4)
    mask = np.roll(mask, -shift * 10, axis=0)  # shift 7: the hull runs into the top edge
    before = mask.copy()
    ref = geo.poisson_composite(b, a, mask)
    out = geo.poisson_composite(b, a, mask, solver="dst")
    assert np.array_equal(mask, before)
    assert np.abs(out.astype(int) - ref).max() <= 1
    assert np.array_equal(out[mask == 0], a[mask == 0])
    inner = geo.erode_mask(mask, 10) > 0
    assert np.abs(out.astype(int) - a)[inner].mean() > 5  # something was cloned in


def test_poisson_dst_solver_on_random_images():
    """Random textures and blobby masks, 3 channels and odd sizes: within 1 level of
    seamlessClone; a tiny mask leaves bg as it is (like the OpenCV path)."""
    rng = np.random.default_rng(3)
    for _ in range(4):
        h, w = (int(v) for v in rng.integers(40, 90, size=2))
        fg = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3)).astype(np.uint8), (5, 5), 2)
        bg = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3)).astype(np.uint8), (5, 5), 2)
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (w // 2, h // 2), (w // 3, h // 4), float(rng.integers(0, 180)), 0, 360,
                    255, -1)
        ref = geo.poisson_composite(fg, bg, mask)
        out = geo.poisson_composite(fg, bg, mask, solver="dst")
        assert np.abs(out.astype(int) - ref).max() <= 1
        assert not np.array_equal(out, bg)
    tiny = np.zeros((h, w), np.uint8)
    tiny[10:12, 10:12] = 255
    assert np.array_equal(geo.poisson_composite(fg, bg, tiny, solver="dst"), bg)
    with pytest.raises(ValueError, match="solver"):
        geo.poisson_composite(fg, bg, mask, solver="fft")


def test_morph_rows_equal_the_full_morphs_rows(pair):
    a, b, pa, pb = pair
    full = geo.morph(a, b, pa, pb, shape_alpha=0.4, texture_alpha=0.6)
    part = geo.morph(a, b, pa, pb, shape_alpha=0.4, texture_alpha=0.6, rows=(37, 211))
    assert np.array_equal(part[37:211], full[37:211])
    assert not part[:37].any() and not part[211:].any()
    with pytest.raises(ValueError, match="rows"):
        geo.morph(a, b, pa, pb, rows=(10, SIZE + 1))


def test_warp_rows_of_a_confined_warp_equal_the_full_warp(pair):
    """A warp fixed by an anchor ring and the frame (the spliced variant's target warp):
    only the rows of triangles with a moving corner change; warping those rows alone
    gives the full warp's pixels everywhere."""
    a, _, pa, pb = pair
    region = pa[109:134]
    size = (SIZE, SIZE)
    ring = geo.anchor_ring(region, size, 1.3, max_gap=8.0)
    moved = region + (pb[109:134] - pa[109:134]) * 0.5
    src = np.vstack([region, ring, geo.boundary_points(size)])
    dst = np.vstack([moved, ring, geo.boundary_points(size)])
    tris = geo.triangulate(dst)
    rows = geo.moving_rows(src, dst, tris, SIZE)
    assert 0 < rows[0] < rows[1] < SIZE
    full = geo.warp_image(a, src, dst, triangles=tris)
    assert not np.array_equal(full, a)
    assert np.array_equal(geo.warp_image(a, src, dst, triangles=tris, rows=rows), full)
    assert np.array_equal(full[: rows[0]], a[: rows[0]]) and np.array_equal(full[rows[1]:],
                                                                            a[rows[1]:])
    assert geo.moving_rows(src, src, tris, SIZE) == (0, 0)


def test_anchor_ring_surrounds_the_region(pair):
    _, _, pa, _ = pair
    region = pa[109:134]
    ring = geo.anchor_ring(region, (SIZE, SIZE), 1.3)
    assert len(ring) >= 3
    assert not geo.points_in_hull(ring, region).any()
    assert geo.points_in_hull(region, ring).all()


def test_warm_up_loads_every_kernel():
    """After warm_up() the numba kernels hold machine code (a forked worker inherits it
    instead of loading or compiling it again)."""
    geo.warm_up()
    kernels = [geo._kernel(), *compositing._clone_kernels()]
    assert all(k.signatures for k in kernels)
