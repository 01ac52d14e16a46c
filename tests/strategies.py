"""Hypothesis strategies and brute-force checks for test_properties.py.

Images are built from a seeded texture (drawn by hypothesis as a seed, so
that shrinking stays cheap) and cast to a dtype with an offset and a scale;
pairs with a known shift are two crops of one larger texture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from scipy import ndimage

from napari_normxcorr import Status
from reference import brute_force_masked_ncc, brute_force_ncc

DTYPES = (
    "uint8",
    "uint16",
    "uint64",
    "int16",
    "int64",
    "float16",
    "float32",
    "float64",
    "bool",
)

# Offsets and scales of float data: (offset, scale of the texture).
FLOAT_LEVELS = (
    (0.0, 1.0),
    (1e6, 0.04),
    (1e6, 1.0),
    (-3e4, 5.0),
    (0.0, 1e200),
    (1e200, 1e198),
    (0.0, 1e-300),
    (1e-300, 1e-301),
)

# Statuses whose rows hold no match: their positions must be NaN.
NO_MATCH = {
    Status.OUTSIDE_IMAGE,
    Status.NON_FINITE,
    Status.NO_FIT,
    Status.TOO_LITTLE_DATA,
    Status.FLAT_TEMPLATE,
}


def texture(shape, seed, smooth=1.0):
    """Random texture, zero mean and unit standard deviation."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=shape)
    if smooth:
        sigma = [smooth if n > 4 else 0 for n in shape]
        values = ndimage.gaussian_filter(values, sigma, mode="wrap")
    values = values - values.mean()
    std = values.std()
    return values / std if std > 0 else values


def cast(values, dtype, level=(0.0, 1.0)):
    """`values` (unit texture) as `dtype`, at an offset and scale."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return values > 0
    if dtype.kind == "u":
        base = {1: 128, 2: 30000, 8: 2**40}[dtype.itemsize]
        spread = {1: 40, 2: 8000, 8: 3000}[dtype.itemsize]
        return np.clip(np.rint(base + spread * values), 0, None).astype(dtype)
    if dtype.kind == "i":
        base = {2: -2000, 8: -(2**40)}[dtype.itemsize]
        return np.rint(base + 500 * values).astype(dtype)
    offset, scale = level
    if dtype == np.float16:
        offset, scale = min(offset, 1000.0), min(max(scale, 1e-3), 50.0)
    elif dtype == np.float32:
        offset = math.copysign(min(abs(offset), 1e6), offset)
        scale = min(max(scale, 1e-3), 1e6)
    with np.errstate(over="ignore"):
        return (offset + scale * values).astype(dtype)


def exact_float(values):
    """float64 copy of `values` scaled by a power of two (exact, and NCC
    does not change), so that squares neither overflow nor underflow.

    Integers lose their minimum first, in integer arithmetic (exact).
    """
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        values = (values - values.min()).astype(np.float64)
    else:
        values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size:
        values = values - np.median(finite)
        top = np.max(np.abs(values[np.isfinite(values)]))
        if top > 0 and np.isfinite(top):
            values = np.ldexp(values, -math.frexp(top)[1])
    return values


def reference_surface(template, search, min_valid=0.5):
    """Brute-force 'valid' NCC of a template window and a search window
    (masked on NaN/inf pixels when either has some)."""
    t, s = exact_float(template), exact_float(search)
    if np.isfinite(t).all() and np.isfinite(s).all():
        return brute_force_ncc(t, s, mode="valid")
    return brute_force_masked_ncc(
        t,
        s,
        np.zeros(t.shape, bool),
        np.zeros(s.shape, bool),
        mode="valid",
        min_overlap=min_valid,
    )


@dataclass
class Case:
    """A pair of images, points and radii, and the truth when known."""

    template_image: np.ndarray
    image: np.ndarray
    points: np.ndarray
    template_radius: object
    search_radius: object
    shift: np.ndarray | None  # known displacement of the matched axes


def radius_pair(ndim, max_t=4, max_s=8):
    """(template_radius, search_radius) as ints or per-axis tuples: mostly
    roomy ones, else anything, with zeros and equal radii on an axis."""

    @st.composite
    def build(draw):
        if draw(st.integers(0, 2)):
            t = [draw(st.integers(2, max_t))] * ndim
            s = [ti + draw(st.integers(4, 6)) for ti in t]
            if draw(st.booleans()):
                t = [draw(st.integers(2, max_t)) for _ in range(ndim)]
                s = [ti + draw(st.integers(4, 6)) for ti in t]
        else:
            t = [draw(st.integers(0, max_t)) for _ in range(ndim)]
            s = [
                draw(st.one_of(st.just(ti), st.integers(ti, max_s + 2)))
                if draw(st.booleans())
                else draw(st.integers(0, max_s))
                for ti in t
            ]
        if ndim == 2 and len(set(t)) == 1 and len(set(s)) == 1:
            if draw(st.booleans()):
                # One int each: the library's default form (2-D).
                return t[0], s[0]
        return tuple(t), tuple(s)

    return build()


def point_values(shape, special=True):
    """One coordinate per axis: inside, on and off the border, NaN, inf."""
    coords = []
    for n in shape:
        options = [
            st.integers(0, n - 1).map(float),
            st.floats(-0.49, n - 0.51),
            st.sampled_from([0.0, n - 1.0, -0.5, n - 0.5, n - 0.4, -0.6]),
        ]
        if special:
            options.append(
                st.sampled_from(
                    [np.nan, np.inf, -np.inf, -1.0, float(n), 1e300, -7.0]
                )
            )
        coords.append(st.one_of(*options))
    return st.tuples(*coords)


def points_for(shape, special=True, max_size=6):
    """(N, D) points: mostly well inside, some anywhere or odd."""
    middle = st.tuples(
        *(st.floats(0.3 * (n - 1), 0.7 * (n - 1)) for n in shape)
    )
    row = st.one_of(middle, middle, point_values(shape, special))
    return st.lists(row, min_size=1, max_size=max_size).map(
        lambda rows: np.array(rows, dtype=np.float64)
    )


@st.composite
def shifted_pairs(draw, ndim, planes=0, dtypes=DTYPES, special=True):
    """Two crops of one texture, displaced by a known integer shift, in a
    dtype at an offset/scale, with points on and off the images."""
    sizes = st.one_of(st.integers(18, 30), st.integers(1, 30))
    shape = tuple(draw(sizes) for _ in range(ndim))
    if ndim == 1:
        shape = (draw(st.one_of(st.integers(30, 48), st.integers(1, 48))),)
    shift = np.array([draw(st.integers(-3, 3)) for _ in range(ndim)])
    margin = 4
    seed = draw(st.integers(0, 2**16))
    smooth = draw(st.sampled_from([0.0, 1.0]))
    lead = (draw(st.integers(1, 3)),) * 1 if planes else ()
    big = texture(lead + tuple(n + 2 * margin for n in shape), seed, smooth)
    if lead:
        # Each plane its own texture (smoothed in the matched axes only).
        big = np.stack(
            [texture(big.shape[1:], seed + k, smooth) for k in range(lead[0])]
        )
    dtype = draw(st.sampled_from(dtypes))
    level = draw(st.sampled_from(FLOAT_LEVELS))
    big = cast(big, dtype, level)
    cut = tuple(slice(margin, margin + n) for n in shape)
    moved = tuple(
        slice(margin - s, margin - s + n) for s, n in zip(shift, shape)
    )
    template_image = big[(Ellipsis, *cut)]
    image = big[(Ellipsis, *moved)]
    t_radius, s_radius = draw(radius_pair(ndim))
    full_shape = template_image.shape
    points = draw(points_for(full_shape, special))
    return Case(
        np.ascontiguousarray(template_image),
        np.ascontiguousarray(image),
        points,
        t_radius,
        s_radius,
        shift,
    )


def windows(point, image_point, t_radius, s_radius, t_shape, s_shape):
    """Independent placement (README: round(p) - r .. round(p) + r,
    clipped): template start/stop, search start/stop."""
    p = np.rint(point).astype(np.int64)
    g = np.rint(image_point).astype(np.int64)
    t_radius, s_radius = np.asarray(t_radius), np.asarray(s_radius)
    t0 = np.clip(p - t_radius, 0, t_shape)
    t1 = np.clip(p + t_radius + 1, 0, t_shape)
    s0 = np.clip(g - s_radius, 0, s_shape)
    s1 = np.clip(g + s_radius + 1, 0, s_shape)
    return t0, t1, s0, s1


def expand(radius, ndim):
    values = np.atleast_1d(np.asarray(radius, dtype=np.int64))
    return np.repeat(values, ndim) if values.size == 1 else values


def inside(point, shape):
    if not np.isfinite(point).all():
        return False
    r = np.rint(point)
    return bool(np.all((r >= 0) & (r < np.asarray(shape))))


def check_rows(
    result,
    template_image,
    image,
    points,
    template_radius,
    search_radius,
    *,
    image_points=None,
    subpixel=False,
    tol=2e-3,
    shift=None,
    sub_tol=0.1,
    min_score=0.5,
    evidence=True,
):
    """Every row is correct (brute force) or flagged; list what is not.

    Returns a list of messages, one per broken promise. `evidence`: an
    ok row needs a finite distinctiveness and consistency.
    """
    problems = []
    template_image = np.asarray(template_image)
    image = np.asarray(image)
    points = np.asarray(points, dtype=np.float64)
    image_points = points if image_points is None else image_points
    d = np.size(template_radius)
    d = d if d > 1 else min(2, image.ndim)
    t_r, s_r = expand(template_radius, d), expand(search_radius, d)
    n = len(points)
    for name in ("matched", "offset", "score", "status"):
        if len(getattr(result, name)) != n:
            problems.append(f"{name} has {len(getattr(result, name))} rows")
    if problems:
        return problems
    for i in range(n):
        status = result.status[i]
        point, guess = points[i], image_points[i]
        lead_ok = (
            inside(point, template_image.shape)
            and inside(guess, image.shape)
            and np.array_equal(np.rint(point[:-d]), np.rint(guess[:-d]))
        )
        where = f"row {i} point {point.tolist()}"
        # (Plain str statuses are test_statuses_are_status_members' job.)
        try:
            status = Status(status)
        except ValueError:
            problems.append(f"{where}: status {status!r} is not a Status")
            continue
        if not lead_ok:
            if status != Status.OUTSIDE_IMAGE:
                problems.append(f"{where}: outside but status {status}")
            continue
        if status == Status.OUTSIDE_IMAGE:
            problems.append(f"{where}: inside but 'outside image'")
            continue
        plane = tuple(int(v) for v in np.rint(point[:-d]))
        t0, t1, s0, s1 = windows(
            point[-d:],
            guess[-d:],
            t_r,
            s_r,
            template_image.shape[-d:],
            image.shape[-d:],
        )
        fits = np.all(t1 - t0 <= s1 - s0)
        if not fits:
            if status != Status.NO_FIT:
                problems.append(f"{where}: template cannot fit, {status}")
            continue
        if status in NO_MATCH:
            if np.isfinite(result.matched[i]).any():
                problems.append(
                    f"{where}: {status} but matched {result.matched[i]}"
                )
            continue
        matched = np.asarray(result.matched[i], dtype=np.float64)
        if not np.allclose(result.offset[i], matched - point, equal_nan=True):
            problems.append(f"{where}: offset != matched - point")
        if status != Status.OK:
            continue
        score = float(result.score[i])
        if not (np.isfinite(matched).all() and np.isfinite(score)):
            problems.append(f"{where}: ok with matched {matched}, {score}")
            continue
        if not -1 - 1e-6 <= score <= 1 + 1e-6:
            problems.append(f"{where}: ok score {score} outside [-1, 1]")
        if not score >= min_score:
            problems.append(f"{where}: ok score {score} < min_score")
        if not np.array_equal(matched[:-d], point[:-d]):
            problems.append(f"{where}: plane coordinates changed")
        template = template_image[plane + tuple(map(slice, t0, t1))]
        search = image[plane + tuple(map(slice, s0, s1))]
        surface_shape = np.asarray(search.shape) - template.shape + 1
        if np.any(surface_shape == 1):
            problems.append(
                f"{where}: ok on a one-wide surface {tuple(surface_shape)}"
                f" (offset {result.offset[i][-d:]})"
            )
            continue
        ref = reference_surface(template, search)
        if not np.isfinite(ref).any():
            problems.append(f"{where}: ok but the reference has no score")
            continue
        best = np.nanmax(ref)
        origin = s0 + (point[-d:] - t0)
        corner = matched[-d:] - origin
        if not subpixel:
            q = np.rint(corner)
            if np.max(np.abs(corner - q)) > 1e-6:
                problems.append(f"{where}: whole-pixel match at {corner}")
                continue
            q = tuple(int(v) for v in q)
            if any(not 0 <= a < b for a, b in zip(q, ref.shape)):
                problems.append(f"{where}: match {q} off the surface")
                continue
            if any(a in (0, b - 1) and b > 1 for a, b in zip(q, ref.shape)):
                problems.append(f"{where}: ok with the peak on the border")
            if not abs(score - ref[q]) <= tol:
                problems.append(
                    f"{where}: score {score} but brute force {ref[q]}"
                )
            if not ref[q] >= best - tol:
                problems.append(
                    f"{where}: {q} scores {ref[q]}, the max is {best} at "
                    f"{np.unravel_index(np.nanargmax(ref), ref.shape)}"
                )
        else:
            near = np.argwhere(ref >= best - max(tol, 0.02))
            if near.size and np.min(np.max(np.abs(near - corner), 1)) > 1.0:
                problems.append(
                    f"{where}: sub-pixel match {corner} far from the "
                    f"brute-force maximum {near.tolist()}"
                )
            if score < best - 0.1:
                problems.append(f"{where}: score {score}, max {best}")
        for name in ("distinctiveness", "consistency") if evidence else ():
            if not np.isfinite(getattr(result, name)[i]):
                problems.append(
                    f"{where}: ok with {name} NaN (shape {ref.shape})"
                )
        truth_q = None
        if shift is not None:
            truth_q = point[-d:] + shift - origin
        on_surface = truth_q is not None and all(
            0 <= a <= b - 1 for a, b in zip(truth_q, ref.shape)
        )
        # Off the surface the truth cannot be found; a chance peak there
        # is only suspect (the evidence checks above cover it).
        if shift is not None and on_surface:
            truth = point[-d:] + shift
            error = np.max(np.abs(matched[-d:] - truth))
            limit = sub_tol if subpixel else 0.5
            if error > limit:
                problems.append(
                    f"{where}: wrong ok, matched {matched[-d:]} truth "
                    f"{truth} (score {score}, shape {ref.shape})"
                )
    return problems


# ---------------------------------------------------------------------------
# Tracking, transforms, grids (issue 31)


@dataclass
class TrackCase:
    """A stack whose content moves by `step` px per frame, and points
    (t, row, col) on it."""

    stack: np.ndarray
    points: np.ndarray
    step: np.ndarray
    template_radius: object
    search_radius: object


@st.composite
def drifting_stacks(draw, dtypes=("uint8", "uint16", "float32", "float64")):
    """2 to 4 frames of 20 to 32 px, cropped from one texture so that its
    content moves by a whole-pixel `step` per frame."""
    frames = draw(st.integers(2, 4))
    shape = (draw(st.integers(20, 32)), draw(st.integers(20, 32)))
    step = np.array([draw(st.integers(-2, 2)) for _ in range(2)])
    margin = 2 * frames + 2
    seed = draw(st.integers(0, 2**16))
    big = texture(tuple(n + 2 * margin for n in shape), seed, 1.0)
    big = cast(
        big, draw(st.sampled_from(dtypes)), draw(st.sampled_from(FLOAT_LEVELS))
    )
    stack = np.stack(
        [
            big[
                margin - k * step[0] : margin - k * step[0] + shape[0],
                margin - k * step[1] : margin - k * step[1] + shape[1],
            ]
            for k in range(frames)
        ]
    )
    # Mostly a frame of the stack; NaN, outside, or half-way sometimes.
    times = st.sampled_from(
        [float(k) for k in range(frames)] * 4
        + [np.nan, -1.0, float(frames), 0.4]
    )
    rows = st.tuples(
        times, *(st.floats(0.3 * (n - 1), 0.7 * (n - 1)) for n in shape)
    )
    if draw(st.integers(0, 4)) == 0:
        odd = st.tuples(times, point_values(shape)).map(
            lambda pair: (pair[0], *pair[1])
        )
        rows = st.one_of(rows, odd)
    points = np.array(
        draw(st.lists(rows, min_size=1, max_size=4)), dtype=np.float64
    )
    t = draw(st.integers(2, 4))
    s = t + draw(st.integers(3, 5))
    radii = (t, s) if draw(st.booleans()) else ((t, t), (s, s))
    return TrackCase(np.ascontiguousarray(stack), points, step, *radii)


def model_matrix(model, ndim, rng):
    """A random (ndim+1)-square matrix of `model`, near the identity."""
    matrix = np.eye(ndim + 1)
    matrix[:-1, -1] = rng.uniform(-10, 10, ndim)
    if model == "translation":
        return matrix
    if ndim == 2:
        angle = rng.uniform(-0.3, 0.3)
        rotation = np.array(
            [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
        )
    else:
        rotation, _ = np.linalg.qr(np.eye(3) + rng.normal(0, 0.2, (3, 3)))
        rotation *= np.sign(np.linalg.det(rotation))
    matrix[:-1, :-1] = rotation
    if model == "similarity":
        matrix[:-1, :-1] *= rng.uniform(0.8, 1.2)
    elif model in ("affine", "projective"):
        matrix[:-1, :-1] += rng.normal(0, 0.1, (ndim, ndim))
    if model == "projective":
        matrix[-1, :-1] = rng.normal(0, 1e-3, ndim)
    return matrix


@st.composite
def point_pairs(draw):
    """Points, their matches through a known model, some degenerate
    sets, some outliers; returns (source, target, model, truth, exact)."""
    ndim = draw(st.sampled_from([2, 2, 3]))
    models = (
        ("translation", "rigid", "similarity", "affine", "projective")
        if ndim == 2
        else ("translation", "rigid", "affine")
    )
    model = draw(st.sampled_from(models))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    count = draw(st.one_of(st.integers(5, 12), st.integers(0, 12)))
    source = rng.uniform(0, 100, (count, ndim))
    layout = draw(
        st.sampled_from(
            ["spread", "spread", "line", "line but one", "duplicates", "same"]
        )
    )
    if layout == "line" and count:
        source = source[:1] + np.outer(rng.uniform(0, 1, count), source[-1])
    elif layout == "line but one" and count > 1:
        along = rng.uniform(0, 1, count - 1)
        source[1:] = source[0] + np.outer(along, source[-1] - source[0])
    elif layout == "duplicates" and count > 1:
        source[count // 2 :] = source[: count - count // 2]
    elif layout == "same":
        source[:] = source[:1] + rng.normal(0, 1e-12, source.shape)
    truth = model_matrix(model, ndim, rng)
    points = np.c_[source, np.ones(count)] @ truth.T
    target = points[:, :-1] / points[:, -1:]
    noise = draw(st.sampled_from([0.0, 0.0, 0.05]))
    target = target + rng.normal(0, noise, target.shape) if noise else target
    outliers = draw(st.integers(0, count // 4))
    target[:outliers] = rng.uniform(-50, 150, (outliers, ndim))
    exact = noise == 0 and outliers == 0
    return source, target, model, truth, exact


@st.composite
def grid_arguments(draw):
    """grid_points' arguments: mostly sensible, some not."""
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(1, 40)) for _ in range(ndim))
    spacing = draw(
        st.one_of(
            st.floats(0.5, 20),
            st.tuples(*(st.floats(0.5, 20) for _ in range(ndim))),
            st.sampled_from([0, -1, np.nan, np.inf, 1e-4, "x"]),
        )
    )
    margin = draw(
        st.one_of(
            st.none(),
            st.floats(0, 10),
            st.sampled_from([-1, np.nan, "x"]),
        )
    )
    odd_shape = st.sampled_from(
        [(10.5, 10), (0, 5), (), np.zeros((4, 4)), ("a", 3)]
    )
    if draw(st.integers(0, 5)) == 0:
        shape = draw(odd_shape)
    mask = None
    which = draw(st.sampled_from(["none", "none", "bool", "str", "wrong"]))
    if which != "none" and isinstance(shape, tuple) and shape:
        if all(isinstance(n, int) and n > 0 for n in shape):
            rng = np.random.default_rng(draw(st.integers(0, 99)))
            mask = rng.random(shape) < 0.3
            if which == "str":
                mask = mask.astype(str)
            elif which == "wrong":
                mask = mask[..., :-1]
    return shape, spacing, margin, mask
