"""Property-based tests (issue 18): every row correct or flagged.

Over generated shapes (1-D, 2-D, stacks with plane coordinates, 3-D,
tiny and one-wide), dtypes, offsets and scales, radii, points (NaN, inf,
outside, on the border) and lazy inputs, each call either raises a
ValueError naming the faulty argument (the CLI: exit code 1 or 2 and a
one-line message) or returns rows that are each right (checked against a
brute-force NCC and, where the shift is known, the truth) or flagged.
Inputs are never modified, and nothing else is raised.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import tempfile
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from napari_normxcorr import (
    MatchResult,
    Status,
    fit_transform,
    grid_points,
    match_points,
    normalized_cross_correlation,
    register,
    track_points,
    warp,
)
from napari_normxcorr.cli import main
from napari_normxcorr.fields._grid import MAX_POINTS
from napari_normxcorr.tracking._track import retrack
from reference import brute_force_ncc
from strategies import (
    DTYPES,
    FLOAT_LEVELS,
    Case,
    cast,
    check_rows,
    drifting_stacks,
    exact_float,
    grid_arguments,
    point_pairs,
    points_for,
    shifted_pairs,
    texture,
)

SETTINGS = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
    # No explain phase: it re-runs failing cases many times (slow CLI).
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
ARGUMENT_NAMES = (
    "template_image",
    "image",
    "template",
    "points",
    "image_points",
    "template_radius",
    "search_radius",
    "radii",
    "batch_size",
    "fft_precision",
    "min_score",
    "mode",
)


def copies(*arrays):
    return [np.array(a, copy=True) for a in arrays]


def unchanged(originals, arrays):
    return all(
        np.array_equal(np.asarray(a), o, equal_nan=True)
        and np.asarray(a).dtype == o.dtype
        for o, a in zip(originals, arrays)
    )


def names_argument(error, names=ARGUMENT_NAMES):
    return any(name in str(error) for name in names)


def run_match(template_image, image, points, **options):
    """match_points, with its warnings and whether it touched its inputs.

    Returns (result or ValueError, RuntimeWarnings raised).
    """
    inputs = [template_image, image, points]
    if "image_points" in options:
        inputs.append(options["image_points"])
    before = copies(*inputs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = match_points(template_image, image, points, **options)
        except ValueError as error:
            result = error
    assert unchanged(before, inputs), "match_points modified its input"
    runtime = [
        str(w.message) for w in caught if issubclass(w.category, Warning)
    ]
    return result, runtime


def assert_contract(outcome, warned, case, **check):
    if isinstance(outcome, ValueError):
        assert names_argument(outcome), f"unclear ValueError: {outcome}"
        return None
    assert isinstance(outcome, MatchResult)
    problems = check_rows(
        outcome,
        case.template_image,
        case.image,
        case.points,
        case.template_radius,
        case.search_radius,
        **check,
    )
    if warned:
        problems.append(f"warnings: {sorted(set(warned))}")
    assert not problems, "\n".join(problems)
    return outcome


# ---------------------------------------------------------------------------
# normalized_cross_correlation against the brute force


@st.composite
def ncc_inputs(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(
        draw(st.integers(1, 9 if ndim < 3 else 5)) for _ in range(ndim)
    )
    t_shape = tuple(draw(st.integers(1, n)) for n in shape)
    dtype = draw(st.sampled_from(DTYPES))
    level = draw(st.sampled_from(FLOAT_LEVELS))
    seed = draw(st.integers(0, 2**16))
    smooth = draw(st.sampled_from([0.0, 1.0]))
    image = cast(texture(shape, seed, smooth), dtype, level)
    start = tuple(draw(st.integers(0, n - m)) for n, m in zip(shape, t_shape))
    template = image[tuple(slice(a, a + m) for a, m in zip(start, t_shape))]
    if draw(st.booleans()):
        template = cast(texture(t_shape, seed + 1, smooth), dtype, level)
    return np.ascontiguousarray(template), image


@settings(max_examples=60, **SETTINGS)
@given(
    ncc_inputs(),
    st.sampled_from(["full", "same", "valid"]),
    st.sampled_from(["double", "single"]),
)
def test_ncc_equals_brute_force(inputs, mode, precision):
    template, image = inputs
    before = copies(template, image)
    try:
        ncc = normalized_cross_correlation(
            template, image, mode, fft_precision=precision
        )
    except ValueError as error:
        # Only non-finite values (float16/float32 overflow) may be refused.
        finite = np.isfinite(template).all() and np.isfinite(image).all()
        assert not finite, f"refused finite input: {error}"
        assert names_argument(error, ("template", "image")), str(error)
        return
    assert unchanged(before, [template, image])
    # NCC ignores offsets and positive scales of either input (the global
    # means go in every mode): the brute force works on exact, power-of-two
    # scaled copies, whose squares neither overflow nor underflow.
    t, i = exact_float(template), exact_float(image)
    expected = brute_force_ncc(t, i, mode)
    assert ncc.shape == expected.shape
    tol = 1e-6 if precision == "double" else 1e-4
    assert np.isfinite(ncc).all(), f"non-finite NCC: {ncc}"
    assert np.all(np.abs(ncc) <= 1 + 1e-9)
    np.testing.assert_allclose(ncc, expected, atol=tol, rtol=0)


@pytest.mark.parametrize(
    ("template", "image", "name"),
    [
        (np.float64(1.0), np.ones((4, 4)), "template"),
        (np.ones((2, 2)), np.float64(3.0), "image"),
        (np.ones(0), np.ones(4), "template"),
        (np.ones((2, 2)), np.ones((4, 4), complex), "image"),
        (np.ones((2, 2), object), np.ones((4, 4)), "template"),
        (np.full((2, 2), np.nan), np.ones((4, 4)), "template"),
        (np.ones((5, 5)), np.ones((4, 4)), "template"),
        (np.ones(3), np.ones((4, 4)), "template"),
    ],
)
def test_ncc_bad_input_names_it(template, image, name):
    with pytest.raises(ValueError, match=name):
        normalized_cross_correlation(template, image)


# ---------------------------------------------------------------------------
# match_points: rows correct or flagged


@settings(max_examples=70, **SETTINGS)
@given(st.integers(1, 2).flatmap(lambda d: shifted_pairs(d)))
def test_match_points_rows_correct_or_flagged(case):
    outcome, warned = run_match(
        case.template_image,
        case.image,
        case.points,
        template_radius=case.template_radius,
        search_radius=case.search_radius,
        subpixel=False,
    )
    assert_contract(outcome, warned, case, shift=case.shift)


@settings(max_examples=30, **SETTINGS)
@given(shifted_pairs(2, planes=1, dtypes=("uint16", "float32", "float64")))
def test_stacks_match_in_the_plane_of_each_point(case):
    # Points (t, row, col): NaN, inf, outside and half-way plane
    # coordinates are rows 'outside image', never an exception.
    outcome, warned = run_match(
        case.template_image,
        case.image,
        case.points,
        template_radius=case.template_radius,
        search_radius=case.search_radius,
        subpixel=False,
    )
    assert_contract(outcome, warned, case, shift=case.shift)


@settings(max_examples=12, **SETTINGS)
@given(st.integers(0, 2**16), st.integers(-2, 2), st.booleans())
def test_volumes_match_in_3d(seed, shift, planes_nan):
    volume = texture((20, 20, 20), seed, 1.0)
    template_image = volume[3:17, 3:17, 3:17]
    image = volume[3 - shift : 17 - shift, 3:17, 3 + shift : 17 + shift]
    points = np.array(
        [[7.0, 7, 7], [0, 13, 13], [np.nan if planes_nan else 6, 6, 6]]
    )
    case = Case(
        template_image,
        image,
        points,
        (2, 2, 2),
        (5, 5, 5),
        np.array([shift, 0, -shift]),
    )
    outcome, warned = run_match(
        template_image,
        image,
        points,
        subpixel=False,
        template_radius=case.template_radius,
        search_radius=case.search_radius,
    )
    result = assert_contract(outcome, warned, case, shift=case.shift)
    assert result is not None and result.status[0] == Status.OK


def test_statuses_are_status_members():
    # MatchResult.status is documented as an "ndarray of Status": ok rows
    # too, so that `.name`, `is Status.OK` and isinstance work on each row.
    base = texture((30, 30), 3)
    result = match_points(
        base,
        np.roll(base, 2, 0),
        [[15.0, 15.0], [-5.0, 3.0]],
        template_radius=4,
        search_radius=8,
    )
    assert result.status[0] == Status.OK
    assert [type(s) for s in result.status] == [Status, Status]


# ---------------------------------------------------------------------------
# Sub-pixel: band-limited texture moved by a known fraction of a pixel


@st.composite
def subpixel_pairs(draw):
    ndim = draw(st.integers(1, 2))
    n = 48 if ndim == 1 else 40
    seed = draw(st.integers(0, 2**16))
    shift = np.array(
        [
            draw(st.floats(-2.5, 2.5).map(lambda v: round(v, 2)))
            for _ in range(ndim)
        ]
    )
    big = texture((n + 16,) * ndim, seed, 2.0)
    moved = np.fft.ifftn(ndimage.fourier_shift(np.fft.fftn(big), shift)).real
    cut = (slice(8, 8 + n),) * ndim
    dtype = draw(st.sampled_from(["float64", "float32", "uint16"]))
    # Offsets the dtype resolves the texture on (float32 at 1e6 holds three
    # levels of it: no sub-pixel truth left).
    levels = FLOAT_LEVELS[:4] if dtype == "float64" else FLOAT_LEVELS[::3]
    level = draw(st.sampled_from(levels))
    template_image = cast(big[cut], dtype, level)
    image = cast(moved[cut], dtype, level)
    t_radius = draw(st.integers(6, 9))
    s_radius = t_radius + draw(st.integers(4, 6))
    points = draw(points_for((n,) * ndim, special=False, max_size=4))
    # Away from the borders: whole windows, the truth inside the search.
    points = np.clip(points, s_radius, n - 1 - s_radius)
    radii = (t_radius,) * ndim, (s_radius,) * ndim
    return template_image, image, points, radii, shift


@settings(max_examples=25, **SETTINGS)
@given(subpixel_pairs())
def test_subpixel_ok_rows_are_within_a_tenth_of_the_truth(pair):
    template_image, image, points, (t_r, s_r), shift = pair
    outcome, warned = run_match(
        template_image,
        image,
        points,
        template_radius=t_r,
        search_radius=s_r,
    )

    case = Case(template_image, image, points, t_r, s_r, shift)
    result = assert_contract(
        outcome, warned, case, subpixel=True, shift=shift, sub_tol=0.1
    )
    assert result is not None, "a plain sub-pixel match was refused"
    if template_image.ndim == 2:
        # Clean, textured, whole windows: most rows are ok in 2-D.
        assert np.mean(result.status == Status.OK) >= 0.5, list(result.status)


# ---------------------------------------------------------------------------
# Lazy inputs give what numpy inputs give


@settings(max_examples=15, **SETTINGS)
@given(shifted_pairs(2, dtypes=("uint8", "float32", "float64")), st.booleans())
def test_dask_inputs_match_like_numpy(case, subpixel):
    options = dict(
        template_radius=case.template_radius,
        search_radius=case.search_radius,
        subpixel=subpixel,
    )
    eager, _ = run_match(
        case.template_image, case.image, case.points, **options
    )
    lazy, warned = run_match(
        da.from_array(case.template_image, chunks=7),
        da.from_array(case.image, chunks=5),
        case.points,
        **options,
    )
    if isinstance(eager, ValueError):
        assert isinstance(lazy, ValueError), "dask accepted what numpy refused"
        return
    assert not isinstance(lazy, ValueError), f"dask refused: {lazy}"
    assert list(lazy.status) == list(eager.status)
    np.testing.assert_allclose(lazy.matched, eager.matched, atol=1e-3)
    np.testing.assert_allclose(lazy.score, eager.score, atol=1e-3)
    assert_contract(
        lazy, warned, case, subpixel=subpixel, shift=case.shift, sub_tol=0.5
    )


# ---------------------------------------------------------------------------
# Odd keyword values: a ValueError naming the keyword, or a good result


@settings(max_examples=40, **SETTINGS)
@given(
    shifted_pairs(2, dtypes=("float64",), special=False),
    st.sampled_from([-1, 0, 1, 2.5, 3, True, "8", None, 10**6]),
    st.sampled_from(["single", "double", "half", "SINGLE", None]),
    st.sampled_from([0.5, 0.0, -1.0, 1.0, 2.0, np.nan, np.inf, -np.inf]),
)
def test_odd_keywords(case, batch_size, precision, min_score):
    options = dict(
        template_radius=case.template_radius,
        search_radius=case.search_radius,
        subpixel=False,
        batch_size=batch_size,
        fft_precision=precision,
        min_score=min_score,
    )
    try:
        outcome, warned = run_match(
            case.template_image, case.image, case.points, **options
        )
    except TypeError as error:
        pytest.fail(f"TypeError instead of a ValueError: {error}")
    valid_batch = (
        isinstance(batch_size, int)
        and not isinstance(batch_size, bool)
        and batch_size >= 1
    )
    if isinstance(outcome, ValueError):
        faulty = []
        if not valid_batch:
            faulty.append("batch_size")
        if precision not in ("single", "double"):
            faulty.append("fft_precision")
        if np.isnan(min_score):
            faulty.append("min_score")
        assert faulty, f"refused good keywords: {outcome}"
        assert names_argument(outcome, (*faulty, "radi", "points")), str(
            outcome
        )
        return
    assert precision in ("single", "double"), f"accepted {precision!r}"
    assert valid_batch, f"accepted batch_size={batch_size!r}"
    assert_contract(
        outcome,
        warned,
        case,
        shift=case.shift,
        min_score=min_score if np.isfinite(min_score) else -np.inf,
    )
    default, _ = run_match(
        case.template_image,
        case.image,
        case.points,
        template_radius=case.template_radius,
        search_radius=case.search_radius,
        subpixel=False,
        fft_precision=precision,
        min_score=min_score,
    )
    # The batch size bounds memory; it never changes a result.
    assert list(outcome.status) == list(default.status)
    np.testing.assert_allclose(outcome.score, default.score, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        (dict(points=np.zeros((2, 3))), "points"),
        (dict(points=np.zeros(2)), "points"),
        (dict(template_radius=-1), "template_radius"),
        (dict(template_radius=2.5), "template_radius"),
        (dict(search_radius=(3, 3, 3, 3)), "radii"),
        (dict(search_radius=(3, 3, 3)), "search_radius|radii"),
        (dict(image_points=np.zeros((3, 2))), "image_points"),
        (dict(template_image=np.zeros(())), "template_image"),
        (dict(image=np.zeros((0, 5))), "image"),
        (dict(image=np.zeros((9, 9), complex)), "image"),
        (dict(image=np.zeros((9, 9, 2))), "image"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=-1), "batch_size"),
        (dict(batch_size=2.5), "batch_size"),
        (dict(fft_precision="half"), "fft_precision"),
        (dict(min_valid=1.5), "min_valid"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(options, name):
    base = texture((9, 9), 0)
    arguments = dict(
        template_image=base,
        image=base,
        points=np.array([[4.0, 4.0]]),
        template_radius=1,
        search_radius=3,
    )
    arguments.update(options)
    with pytest.raises(ValueError, match=name):
        match_points(
            arguments.pop("template_image"),
            arguments.pop("image"),
            arguments.pop("points"),
            **arguments,
        )


# ---------------------------------------------------------------------------
# The command line: exit 0 with a right CSV, or 1/2 and a one-line message


@st.composite
def csv_texts(draw, shape):
    """A points CSV with good, odd and broken rows."""
    ndim = len(shape)
    header = ["index", *(f"axis-{k}" for k in range(ndim))]
    rows = []
    for k, point in enumerate(draw(points_for(shape, max_size=5))):
        rows.append([str(k), *(repr(float(v)) for v in point)])
    defect = draw(
        st.sampled_from(
            ["none", "none", "short", "long", "text", "bom", "empty", "blank"]
        )
    )
    if defect == "short":
        rows[-1] = rows[-1][:-1]
    elif defect == "long":
        rows[-1] = [*rows[-1], "7"]
    elif defect == "text":
        rows[0][-1] = "abc"
    elif defect == "empty":
        return "", defect
    elif defect == "blank":
        rows.append([])
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    if defect == "bom":
        text = "\ufeff" + text
    return text, defect


@st.composite
def cli_cases(draw):
    planes = draw(st.booleans())
    case = draw(
        shifted_pairs(
            2,
            planes=int(planes),
            dtypes=("uint8", "uint16", "float32", "float64", "bool"),
        )
    )
    text, defect = draw(csv_texts(case.template_image.shape))
    output = draw(st.sampled_from(["ok", "ok", "missing dir", "a dir"]))
    surfaces = draw(st.sampled_from([None, "dir", "existing file"]))
    radii = [
        draw(
            st.sampled_from([",".join(map(str, np.atleast_1d(r))), "x", "-1"])
        )
        if draw(st.integers(0, 5)) == 0
        else ",".join(map(str, np.atleast_1d(r)))
        for r in (case.template_radius, case.search_radius)
    ]
    fmt = draw(st.sampled_from([".npy", ".tif"]))
    subpixel = draw(st.booleans())
    return case, text, defect, output, surfaces, radii, fmt, subpixel


def _write_image(path, values):
    if path.suffix == ".npy":
        np.save(path, values)
    else:
        import tifffile

        tifffile.imwrite(path, values, photometric="minisblack")


def run_cli(args):
    """(exit code, stderr) of the command line."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            code = main([str(a) for a in args])
        except SystemExit as stop:
            code = stop.code
    return code, stderr.getvalue()


def assert_clean_exit(code, message):
    assert "Traceback" not in message
    if code == 0:
        return
    assert code in (1, 2), f"exit code {code}: {message}"
    lines = message.strip().splitlines()
    if code == 1:
        assert len(lines) == 1, message
        assert lines[0].startswith("napari-normxcorr: error:")
    else:
        assert lines and "error:" in lines[-1], message


def _read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


@settings(max_examples=30, **SETTINGS)
@given(cli_cases())
def test_cli_match_exits_cleanly(cli_case):
    case, text, defect, output, surfaces, radii, fmt, subpixel = cli_case
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        before, after = folder / f"before{fmt}", folder / f"after{fmt}"
        _write_image(before, case.template_image)
        _write_image(after, case.image)
        points = folder / "points.csv"
        points.write_text(text, encoding="utf-8")
        out = {
            "ok": folder / "matched.csv",
            "missing dir": folder / "nowhere" / "matched.csv",
            "a dir": folder,
        }[output]
        args = [
            "match",
            before,
            after,
            points,
            "-o",
            out,
            "--template-radius",
            radii[0],
            "--search-radius",
            radii[1],
        ]
        if not subpixel:
            args.append("--no-subpixel")
        if surfaces == "dir":
            args += ["--surfaces", folder / "surfaces"]
        elif surfaces == "existing file":
            args += ["--surfaces", points]
        code, message = run_cli(args)
        assert_clean_exit(code, message)
        if code != 0:
            return
        # Success: the inputs were usable, and each row is right or flagged.
        assert output == "ok", f"wrote into {output} with exit code 0"
        assert defect in ("none", "bom", "blank"), f"accepted a {defect} CSV"
        assert surfaces != "existing file", "--surfaces onto a file: exit 0"
        rows = _read_csv(out)
        expected_points = np.array(
            [
                [float(r[f"axis-{k}"]) for k in range(case.image.ndim)]
                for r in _read_csv(points)
                if any(v not in ("", None) for v in r.values())
            ]
        )
        assert len(rows) == len(expected_points)
        result = _result_from_rows(rows, case.image.ndim)
        case.points = expected_points
        t_r = tuple(int(v) for v in radii[0].split(","))
        s_r = tuple(int(v) for v in radii[1].split(","))
        problems = check_rows(
            result,
            case.template_image,
            case.image,
            expected_points,
            t_r[0] if len(t_r) == 1 else t_r,
            s_r[0] if len(s_r) == 1 else s_r,
            subpixel=subpixel,
            shift=case.shift,
            sub_tol=0.5,
        )
        assert not problems, "\n".join(problems)


def _result_from_rows(rows, ndim):
    """The CSV's columns as a MatchResult (for check_rows)."""

    def column(name, k=None):
        key = name if k is None else f"{name}-{k}"
        return np.array([float(r[key]) if r[key] else np.nan for r in rows])

    matched = np.stack([column("matched", k) for k in range(ndim)], axis=1)
    points = np.stack([column("point", k) for k in range(ndim)], axis=1)
    n = len(rows)
    empty = np.full(n, np.nan)
    return MatchResult(
        points=points,
        image_points=points,
        matched=matched,
        offset=np.stack([column("offset", k) for k in range(ndim)], axis=1),
        score=column("score"),
        second_score=empty,
        distinctiveness=column("distinctiveness"),
        consistency=column("consistency"),
        refined=np.zeros(n, bool),
        transform_residual=empty,
        transform_inlier=np.zeros(n, bool),
        status=np.array([Status(r["status"]) for r in rows], dtype=object),
    )


# ---------------------------------------------------------------------------
# Cases the properties found, pinned (they shrink to these)

_RAMP = np.array(
    [-1444, -1346, -2241, -3142, -3398, -2930, -2200, -1877, -2019, -2050]
    + [-1997, -1874, -1694, -1489, -1504, -1916, -2233, -2333, -2308]
    + [-1848, -1643, -1788, -1849, -1810, -1422, -1212, -1988, -2790],
    dtype=np.int16,
)


def test_narrow_surface_ok_needs_a_distinctiveness():
    # A surface 5 wide has no room for a second peak (reach >= 2 around
    # the best): distinctiveness is NaN, and NaN < min_distinctiveness is
    # False, so nothing checked the peak stands out. Not 'ok'.
    line = np.array([107, 150, 195, 178, 99, 72, 103, 134, 21, 122, 73, 97])
    line = line.astype(np.uint8)
    result = match_points(
        line, line, [[5.4]], template_radius=(2,), search_radius=(4,)
    )
    assert not (
        result.status[0] == Status.OK and np.isnan(result.distinctiveness[0])
    ), (result.status[0], result.distinctiveness[0])


def test_subpixel_fallback_keeps_an_exact_whole_pixel_match():
    # Shifted by exactly 3 px: whole pixels find 3 with score 1; on a 3-px
    # template the parabola fallback is biased (0.4 px here): a precision
    # limit, not a wrong match, which must stay within half a pixel.
    image = np.concatenate([[-2336, -2489, -2092], _RAMP[:-3]])
    image = image.astype(np.int16)
    result = match_points(
        _RAMP, image, [[14.0]], template_radius=(1,), search_radius=(8,)
    )
    if result.status[0] == Status.OK:
        assert abs(result.offset[0, 0] - 3) < 0.5, result.offset[0, 0]


def test_no_runtime_warning_for_a_template_clipped_to_two_pixels():
    image = np.concatenate([[-2336, -2489, -2092], _RAMP[:-3]])
    image = image.astype(np.int16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        match_points(
            _RAMP,
            image,
            [[0.0]],
            image_points=[[1.0]],
            template_radius=(1,),
            search_radius=(8,),
        )


# ---------------------------------------------------------------------------
# Tracking, transforms, grids, masks (issue 31): a ValueError naming the
# argument, or every row right or flagged; no warnings, inputs untouched.

TRACK_NAMES = (
    "stack",
    "points",
    "frames",
    "min_score",
    "patience",
    "refresh_score",
    "reference",
    "batch_size",
    "progress",
    "shape_order",
    "template_radius",
    "search_radius",
    "radii",
)
ODD_TRACK_KEYWORDS = (
    {"min_score": np.nan},
    {"patience": -1},
    {"refresh_score": 2},
    {"reference": "last"},
    {"batch_size": 0},
    {"progress": 5},
    {"frames": (0, 9)},
)


def run_quietly(function, *args, **kwargs):
    """function(...) or its ValueError, and the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome = function(*args, **kwargs)
        except ValueError as error:
            outcome = error
    return outcome, [str(w.message) for w in caught]


def track_problems(result, case, min_score=0.5):
    """What is wrong with the vertices of `result` (truth: case.step)."""
    problems = []
    n, frames = len(case.points), case.stack.shape[0]
    if result.status.shape != (n, frames):
        return [f"status has shape {result.status.shape}"]
    for i, k in np.ndindex(n, frames):
        status = Status(result.status[i, k])
        where = f"point {case.points[i].tolist()} frame {k}"
        position = result.position[i, k]
        if status == Status.LOST and np.isfinite(position).any():
            problems.append(f"{where}: lost at {position}")
        if status != Status.OK:
            continue
        t0 = int(np.rint(case.points[i, 0]))
        truth = case.points[i, 1:] + (k - t0) * case.step
        score = result.score[i, k]
        if not np.max(np.abs(position - truth)) <= 0.5:
            problems.append(f"{where}: wrong ok {position}, truth {truth}")
        if not min_score <= score <= 1 + 1e-6:
            problems.append(f"{where}: ok with score {score}")
    return problems


@settings(max_examples=30, **SETTINGS)
@given(
    drifting_stacks(),
    st.booleans(),
    st.sampled_from([{}] * 6 + list(ODD_TRACK_KEYWORDS)),
)
def test_track_points_vertices_right_or_flagged(case, subpixel, odd):
    before = copies(case.stack, case.points)
    outcome, warned = run_quietly(
        track_points,
        case.stack,
        case.points,
        template_radius=case.template_radius,
        search_radius=case.search_radius,
        subpixel=subpixel,
        **odd,
    )
    assert unchanged(before, [case.stack, case.points])
    assert not warned, warned
    if isinstance(outcome, ValueError):
        assert names_argument(outcome, TRACK_NAMES), outcome
        return
    assert not odd, f"accepted {odd}"
    assert np.isfinite(case.points).all(), "tracked NaN points"
    problems = track_problems(outcome, case)
    assert not problems, "\n".join(problems)


@settings(max_examples=12, **SETTINGS)
@given(
    drifting_stacks(dtypes=("float32", "uint16")),
    st.data(),
)
def test_retrack_replaces_one_point_from_its_frame(case, data):
    finite = np.isfinite(case.points).all(axis=1)
    times = np.rint(case.points[:, 0])
    frames = case.stack.shape[0]
    case.points = case.points[finite & (times >= 0) & (times < frames)]
    if not len(case.points):
        return
    radii = dict(
        template_radius=case.template_radius, search_radius=case.search_radius
    )
    result = track_points(case.stack, case.points, **radii)
    point = data.draw(
        st.one_of(
            st.integers(0, len(case.points) - 1),
            st.sampled_from([-1, len(case.points), 0.5, "0"]),
        )
    )
    t = data.draw(
        st.one_of(st.integers(0, frames - 1), st.sampled_from([frames, 1.5]))
    )
    position = data.draw(st.sampled_from(["truth", "truth", "nan", "short"]))
    outcome, warned = run_quietly(
        retrack,
        result,
        case.stack,
        point,
        t,
        _retrack_position(case, point, t, position),
        **radii,
    )
    assert not warned, warned
    if isinstance(outcome, ValueError):
        assert names_argument(outcome, ("point", "t", "position", "points"))
        return
    assert position == "truth" and isinstance(point, int) and t < frames
    others = np.arange(len(case.points)) != point
    np.testing.assert_array_equal(
        outcome.position[others], result.position[others]
    )
    problems = track_problems(outcome, case)
    assert not problems, "\n".join(problems)


def _retrack_position(case, point, t, kind):
    """Where point `point` truly is in frame `t` (or something odd)."""
    row = (
        point
        if isinstance(point, int) and 0 <= point < len(case.points)
        else 0
    )
    start = case.points[row]
    truth = start[1:] + (int(t) - int(np.rint(start[0]))) * case.step
    return {"truth": truth, "nan": [np.nan, 1.0], "short": truth[:1]}[kind]


FIT_NAMES = (
    "threshold",
    "model",
    "matched points",
    "fit",
    "chance",
    "source",
    "singular",
)


@settings(max_examples=60, **SETTINGS)
@given(
    point_pairs(),
    st.booleans(),
    st.sampled_from([None] * 6 + [0.5, 3.0, 0, np.nan, "a"]),
)
def test_fit_transform_is_right_or_refused(pairs, robust, threshold):
    source, target, model, truth, exact = pairs
    before = copies(source, target)
    outcome, warned = run_quietly(
        fit_transform,
        source,
        target,
        model=model,
        robust=robust,
        threshold=threshold,
    )
    assert unchanged(before, [source, target])
    assert not warned, warned
    if isinstance(outcome, ValueError):
        assert names_argument(outcome, FIT_NAMES), outcome
        return
    assert threshold is None or threshold in (0.5, 3.0)
    fit = outcome
    assert np.isfinite(fit.matrix).all()
    d = source.shape[1]
    np.testing.assert_allclose(
        fit.matrix @ fit.inverse,
        np.eye(d + 1) * (fit.matrix @ fit.inverse)[-1, -1],
        atol=1e-6,
    )
    assert np.all(fit.residuals[fit.inliers] <= fit.threshold)
    if exact and fit.inliers.all():
        # The model's own data: the fit is the model, also between the
        # points (an undetermined fit can pass through them and not be).
        low, high = source.min(0), source.max(0)
        probes = low + (high - low) * np.random.default_rng(1).random((8, d))
        expected = np.c_[probes, np.ones(8)] @ truth.T
        expected = expected[:, :-1] / expected[:, -1:]
        np.testing.assert_allclose(fit(probes), expected, atol=1e-3)


REGISTER_NAMES = (
    "register",
    "max_iterations",
    "tolerance",
    "threshold",
    "model",
    "nodata",
    "points",
    "image",
)


@settings(max_examples=6, **SETTINGS)
@given(
    st.integers(0, 2**16),
    st.tuples(st.integers(-2, 2), st.integers(-2, 2)),
    st.sampled_from(["translation", "rigid", "affine"]),
    st.sampled_from(
        [{}] * 4
        + [
            {"max_iterations": 0},
            {"tolerance": "a"},
            {"threshold": 0},
            {"nodata": 0},
            {"model": "bogus"},
        ]
    ),
)
def test_register_finds_the_shift_or_says_why(seed, shift, model, odd):
    big = texture((64, 64), seed, 1.0)
    template, image = (
        big[8:56, 8:56],
        big[8 - shift[0] : 56 - shift[0], 8 - shift[1] : 56 - shift[1]],
    )
    points = np.array(
        [[r, c] for r in (14, 24, 34) for c in (14, 24, 34)], float
    )
    options = {"model": model, **odd}
    outcome, warned = run_quietly(
        register,
        template,
        image,
        points,
        template_radius=5,
        search_radius=10,
        **options,
    )
    warned = [w for w in warned if not w.startswith("register did not")]
    assert not warned, warned
    if isinstance(outcome, ValueError):
        assert names_argument(outcome, REGISTER_NAMES), outcome
        return
    assert not odd, f"accepted {odd}"
    np.testing.assert_allclose(outcome(points), points + shift, atol=0.5)


WARP_NAMES = ("fit", "order", "output_shape", "image", "cval")


@settings(max_examples=40, **SETTINGS)
@given(
    st.integers(2, 3).flatmap(
        lambda d: st.tuples(
            st.tuples(*(st.integers(6, 14) for _ in range(d))),
            st.sampled_from(DTYPES),
            st.integers(0, 2**16),
        )
    ),
    st.sampled_from(["shift", "shift", "affine", "singular", "nan", "wide"]),
    st.integers(0, 6),
    st.sampled_from(["same", "same", "other", "bad"]),
    st.booleans(),
)
def test_warp_resamples_or_refuses(image_case, kind, order, out, lazy):
    shape, dtype, seed = image_case
    d = len(shape)
    image = cast(texture(shape, seed), dtype)
    rng = np.random.default_rng(seed)
    shift = rng.integers(-3, 4, d)
    matrix = np.eye(d + 1)
    matrix[:-1, -1] = shift
    if kind == "affine":
        matrix[:-1, :-1] += rng.normal(0, 0.1, (d, d))
    elif kind == "singular":
        matrix[0] = 0
    elif kind == "nan":
        matrix[0, 0] = np.nan
    elif kind == "wide":
        matrix = np.eye(d + 2)
    output_shape = {
        "same": None,
        "other": tuple(n + 2 for n in shape),
        "bad": (0,) * d,
    }[out]
    source = da.from_array(image, chunks=5) if lazy else image
    before = copies(image)
    outcome, warned = run_quietly(
        warp, source, matrix, output_shape, order=order
    )
    assert unchanged(before, [image])
    assert not warned, warned
    if isinstance(outcome, ValueError):
        assert names_argument(outcome, WARP_NAMES), outcome
        return
    assert kind in ("shift", "affine") and order <= 5 and out != "bad"
    result = np.asarray(outcome)
    assert result.shape == (shape if output_shape is None else output_shape)
    assert result.dtype.kind == "f"
    if kind == "shift":
        # A whole-pixel shift samples pixels exactly, NaN outside.
        grid = np.indices(result.shape).reshape(d, -1).T + shift
        inside = np.all((grid >= 0) & (grid < shape), axis=1)
        values = result.reshape(-1)
        expected = image[tuple(grid[inside].T)].astype(result.dtype)
        np.testing.assert_allclose(
            values[inside],
            expected,
            rtol=1e-3,
            atol=1e-3 * np.abs(expected).max(initial=1),
        )
        assert np.isnan(values[~inside]).all()


@settings(max_examples=60, **SETTINGS)
@given(grid_arguments())
def test_grid_points_on_the_grid_or_refused(arguments):
    shape, spacing, margin, mask = arguments
    outcome, warned = run_quietly(
        grid_points, shape, spacing, margin=margin, mask=mask
    )
    assert not warned, warned
    if isinstance(outcome, ValueError):
        names = ("shape", "spacing", "margin", "mask")
        assert names_argument(outcome, names), outcome
        return
    assert mask is None or mask.dtype == bool
    whole = np.asarray(shape, dtype=float)
    assert np.array_equal(whole, np.round(whole)), f"shape {shape} taken"
    points, d = outcome, len(shape)
    step = np.broadcast_to(np.asarray(spacing, float), (d,))
    keep = step / 2 if margin is None else np.full(d, float(margin))
    assert points.shape[1] == d and len(points) <= MAX_POINTS
    assert np.all(points >= np.ceil(keep) - 1e-9)
    assert np.all(points <= np.asarray(shape) - 1 - keep + 1e-9)
    for axis in range(d):
        gaps = np.diff(np.unique(points[:, axis]))
        assert np.allclose(gaps / step[axis], np.round(gaps / step[axis]))
    if mask is not None and len(points):
        index = tuple(np.rint(points).astype(int).T)
        assert not mask[index].any()


@settings(max_examples=30, **SETTINGS)
@given(
    st.sampled_from(["bool", "uint8", "float64", "int64", "<U5", "object"]),
    st.sampled_from(["template_mask", "image_mask"]),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_masks_follow_one_rule(dtype, which, right_shape, lazy, seed):
    image = texture((16, 16), seed)
    template = image[4:9, 5:10]
    shape = template.shape if which == "template_mask" else image.shape
    if not right_shape:
        shape = (shape[0], shape[1] + 1)
    rng = np.random.default_rng(seed)
    mask = (rng.random(shape) < 0.2).astype(dtype)
    searched = da.from_array(image, chunks=8) if lazy else image
    outcome, warned = run_quietly(
        normalized_cross_correlation,
        template,
        searched,
        "valid",
        **{which: mask},
    )
    assert not warned, warned
    accepted = dtype in ("bool", "uint8", "float64", "int64") and right_shape
    if isinstance(outcome, ValueError):
        assert which in str(outcome), outcome
        assert not accepted, outcome
        return
    assert accepted, f"accepted a {dtype} mask of shape {shape}"
    expected = normalized_cross_correlation(
        template, image, "valid", **{which: mask.astype(bool)}
    )
    np.testing.assert_allclose(np.asarray(outcome), expected, atol=1e-6)


# The track and register commands: exit 0 with right rows, or 1/2 and one
# line; inputs and other outputs never overwritten.


def _points_csv(points):
    header = ",".join(
        ["index", *(f"axis-{k}" for k in range(points.shape[1]))]
    )
    rows = [
        f"{k}," + ",".join(repr(float(v)) for v in row)
        for k, row in enumerate(points)
    ]
    return "\n".join([header, *rows]) + "\n"


@settings(max_examples=12, **SETTINGS)
@given(
    drifting_stacks(dtypes=("uint8", "uint16", "float32")),
    st.sampled_from([".npy", ".tif"]),
    st.sampled_from(["ok", "ok", "onto points", "onto stack", "missing dir"]),
)
def test_cli_track_exits_cleanly(case, fmt, output):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        stack = folder / f"stack{fmt}"
        _write_image(stack, case.stack)
        points = folder / "points.csv"
        points.write_text(_points_csv(case.points))
        inputs = {path: path.read_bytes() for path in (stack, points)}
        out = {
            "ok": folder / "tracks.csv",
            "onto points": points,
            "onto stack": stack,
            "missing dir": folder / "nowhere" / "tracks.csv",
        }[output]
        radii = [
            np.atleast_1d(r)[0]
            for r in (case.template_radius, case.search_radius)
        ]
        code, message = run_cli(
            [
                "track",
                stack,
                points,
                "-o",
                out,
                "--template-radius",
                radii[0],
                "--search-radius",
                radii[1],
            ]
        )
        assert_clean_exit(code, message)
        assert all(p.read_bytes() == b for p, b in inputs.items())
        if code != 0:
            return
        assert output == "ok", f"wrote {output} with exit code 0"
        assert np.isfinite(case.points).all()
        rows = _read_csv(out)
        assert len(rows) == case.points.size // 3 * case.stack.shape[0]


@settings(max_examples=8, **SETTINGS)
@given(
    st.integers(0, 2**16),
    st.tuples(st.integers(-2, 2), st.integers(-2, 2)),
    st.sampled_from(
        [
            [],
            [],
            ["--warped", "w.tif"],
            ["--warped", "t.json"],
            ["--matches", "t.json"],
            ["--matches", "points.csv"],
            ["--threshold", "0"],
            ["--model", "rigid", "--matches", "m.csv"],
        ]
    ),
    st.sampled_from(["ok", "ok", "nan row", "short row"]),
)
def test_cli_register_exits_cleanly(seed, shift, extra, points_kind):
    big = texture((64, 64), seed, 1.0)
    template = big[8:56, 8:56]
    image = big[8 - shift[0] : 56 - shift[0], 8 - shift[1] : 56 - shift[1]]
    points = np.array(
        [[r, c] for r in (14, 24, 34) for c in (14, 24, 34)], float
    )
    text = _points_csv(points)
    if points_kind == "nan row":
        text = text.replace("14.0,14.0", "nan,14.0", 1)
    elif points_kind == "short row":
        text += "9,3\n"
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        np.save(folder / "a.npy", template)
        np.save(folder / "b.npy", image)
        (folder / "points.csv").write_text(text)
        (folder / "t.json").write_text("{}")  # an earlier run's output
        inputs = {p: p.read_bytes() for p in folder.iterdir()}
        args = [
            "register",
            folder / "a.npy",
            folder / "b.npy",
            folder / "points.csv",
            "-o",
            folder / "t.json",
            "--template-radius",
            5,
            "--search-radius",
            10,
        ]
        args += [
            folder / e if "." in e and not e[0].isdigit() else e for e in extra
        ]
        code, message = run_cli(args)
        assert_clean_exit(code, message)
        if code != 0:
            assert all(p.read_bytes() == b for p, b in inputs.items())
            return
        assert "t.json" not in extra and "points.csv" not in extra
        assert "0" not in extra and points_kind != "short row"
        fit = json.loads((folder / "t.json").read_text())
        matrix = np.array(fit["matrix"])
        usable = np.isfinite(points).all(axis=1)
        moved = np.c_[points[usable], np.ones(usable.sum())] @ matrix.T
        np.testing.assert_allclose(
            moved[:, :2], points[usable] + shift, atol=0.5
        )
