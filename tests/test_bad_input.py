"""Bad and edge input, as a new user tries it: a clear message, a flagged
row, or a right answer; never a wrong ok, a traceback or lost work."""

import time
import warnings

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from helpers import texture
from napari_normxcorr import (
    Status,
    fit_transform,
    match_points,
    normalized_cross_correlation,
)
from napari_normxcorr.cli import main
from reference import brute_force_ncc

SHIFT = (3, -5)
PATCH = (slice(90, 111), slice(90, 111))


@pytest.fixture
def pair():
    base = texture((200, 200), seed=2)
    return base, np.roll(base, SHIFT, axis=(0, 1))


# --- a match that could not move is never ok ---------------------------


@pytest.mark.parametrize(
    ("search_radius", "shift"), [((10, 20), (1, -5)), ((20, 10), (-5, 1))]
)
def test_a_surface_one_position_wide_is_never_ok(search_radius, shift):
    # Smooth enough that one pixel off still scores well above 0.5.
    before = ndimage.gaussian_filter(texture((200, 200), seed=2), 3)
    after = np.roll(before, shift, axis=(0, 1))
    result = match_points(
        before,
        after,
        [[100.0, 100.0], [60.0, 120.0]],
        template_radius=10,
        search_radius=search_radius,
    )
    # Along the one-wide axis the window could not move: 1 px unseen.
    assert np.all(result.score > 0.5)
    assert set(result.status) == {Status.ON_BORDER}


def test_windows_clipped_to_the_whole_image_are_never_ok():
    # One row of texture: template and search window are the whole image
    # along rows, so the surface is one row tall.
    strip = texture((21, 120), seed=4)
    shifted = ndimage.shift(strip, (0.4, 3), order=3, mode="wrap")
    result = match_points(
        strip, shifted, [[10.0, 60.0]], template_radius=10, search_radius=20
    )
    assert result.status[0] == Status.ON_BORDER


# --- one bad coordinate flags its row, not the run ---------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_a_bad_plane_coordinate_flags_only_its_row(pair, bad):
    before, after = (np.stack([image] * 2) for image in pair)
    points = np.array([[bad, 100.0, 100.0], [1.0, 100.0, 100.0]])
    given = points.copy()
    result = match_points(
        before, after, points, template_radius=10, search_radius=20
    )
    assert result.status[0] == Status.OUTSIDE_IMAGE
    assert result.status[1] == Status.OK
    assert np.allclose(result.offset[1, 1:], SHIFT, atol=0.05)
    np.testing.assert_array_equal(points, given)


# --- scale: NCC does not care, neither may we --------------------------


# Magnitudes where the single-precision transforms (1e20, 1e-25) or the
# product of two energies (1e100, 1e-110) once over- or underflowed.
SCALES = [1e200, 1e100, 1e20, 1e-25, 1e-110, 1e-300]


@pytest.mark.parametrize(
    ("offset", "scale"), [(1e6, 0.04), *((0.0, s) for s in SCALES)]
)
def test_offset_and_scale_do_not_change_the_match(pair, offset, scale):
    before, after = (offset + scale * image for image in pair)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        result = match_points(
            before, after, [[100.0, 100.0]], template_radius=10
        )
    assert result.status[0] == Status.OK
    assert np.allclose(result.offset[0], SHIFT, atol=0.02)
    assert result.score[0] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    ("offset", "scale"), [(1e6, 0.04), *((0.0, s) for s in SCALES)]
)
def test_whole_image_ncc_is_free_of_offset_and_scale(pair, offset, scale):
    base = pair[0][60:140, 60:140]
    template = base[30:51, 30:51]
    expected = brute_force_ncc(template, base, "valid")
    got = normalized_cross_correlation(
        offset + scale * template, offset + scale * base, "valid"
    )
    # float64 keeps 1e-16 of the 1e6 offset: 2e-10 of the 0.04 texture.
    tolerance = 1e-6 if offset else 1e-9
    np.testing.assert_allclose(got, expected, atol=tolerance)
    assert got[30, 30] == pytest.approx(1.0, abs=tolerance)


@pytest.mark.parametrize("scale", SCALES)
def test_masked_whole_image_ncc_is_free_of_scale(pair, scale):
    base = pair[0][60:140, 60:140]
    template = base[30:51, 30:51]
    mask = np.zeros(base.shape, dtype=bool)
    mask[:5] = True
    expected = normalized_cross_correlation(
        template, base, "valid", image_mask=mask
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = normalized_cross_correlation(
            scale * template, scale * base, "valid", image_mask=mask
        )
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert got[30, 30] == pytest.approx(1.0, abs=1e-9)


def test_a_flat_template_has_no_position():
    flat = np.full((60, 60), 7.0)
    result = match_points(
        flat, flat, [[30.0, 30.0]], template_radius=5, search_radius=10
    )
    assert result.status[0] == Status.FLAT_TEMPLATE
    assert np.isnan(result.matched[0]).all()
    assert np.isnan(result.offset[0]).all()


def test_radius_zero_warns_nothing(pair):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = match_points(
            *pair, [[100.0, 100.0]], template_radius=0, search_radius=5
        )
    assert result.status[0] == Status.FLAT_TEMPLATE


# --- shapes and arguments ----------------------------------------------


@pytest.mark.parametrize("subpixel", [True, False])
def test_one_dimensional_images(subpixel):
    signal = ndimage.gaussian_filter1d(
        np.random.default_rng(5).normal(size=400), 2
    )
    shifted = ndimage.shift(signal, 3.3, order=3, mode="wrap")
    result = match_points(
        signal,
        shifted,
        [[150.0], [250.0]],
        template_radius=15,
        search_radius=30,
        subpixel=subpixel,
    )
    assert list(result.status) == [Status.OK, Status.OK]
    tolerance = 0.02 if subpixel else 0.5
    assert np.allclose(result.offset, 3.3, atol=tolerance)


@pytest.mark.parametrize("batch_size", [-1, 0, 2.5, True, "8"])
def test_batch_size_must_be_a_positive_int(pair, batch_size):
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        match_points(*pair, [[100.0, 100.0]], batch_size=batch_size)


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("min_score", np.nan, "min_score must be a number"),
        ("min_score", "high", "min_score must be a number"),
        ("min_distinctiveness", np.nan, "min_distinctiveness must be a"),
        ("max_consistency_error", np.nan, "max_consistency_error must be"),
        ("max_consistency_error", -1, "max_consistency_error must be"),
        ("max_motion_gap", np.nan, "max_motion_gap must be a number"),
        ("max_motion_gap", -0.1, "max_motion_gap must be a number >= 0"),
        ("nodata", "x", "nodata must be a number"),
        ("progress", 5, "progress must be callable"),
    ],
)
def test_a_threshold_that_would_turn_a_check_off_is_refused(
    pair, keyword, value, message
):
    with pytest.raises(ValueError, match=message):
        match_points(*pair, [[100.0, 100.0]], **{keyword: value})


def test_colour_images_are_refused_with_a_hint(pair):
    rgb = np.stack([pair[0]] * 3, axis=-1)
    with pytest.raises(ValueError, match=r"looks like colour.*rgb2gray"):
        match_points(rgb, rgb, [[100.0, 100.0, 1.0]])


def test_an_infinite_inlier_threshold_is_refused():
    source = np.random.default_rng(0).uniform(0, 100, size=(10, 2))
    with pytest.raises(ValueError, match="threshold must be positive and"):
        fit_transform(source, source + 3, threshold=np.inf)


@pytest.mark.parametrize("value", [np.array(1.0), 3.0])
def test_a_single_number_is_not_an_image(value):
    with pytest.raises(ValueError, match="template is a single number"):
        normalized_cross_correlation(value, np.ones((5, 5)))


# --- the command line: exit 1 and one line, before any work ------------


@pytest.fixture
def files(tmp_path):
    base = texture((120, 130), seed=1)
    tifffile.imwrite(tmp_path / "before.tif", base)
    tifffile.imwrite(tmp_path / "after.tif", np.roll(base, SHIFT, (0, 1)))
    (tmp_path / "points.csv").write_text(
        "index,axis-0,axis-1\n0,60.0,65.5\n1,40,90\n"
    )
    return tmp_path


def cli(files, *extra, points="points.csv", output="out.csv"):
    args = ["match", "before.tif", "after.tif", points, "-o", output]
    args += ["--template-radius", "10", "--search-radius", "20", *extra]
    return main([str(files / a) if "." in a else a for a in args])


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing_directory", "does not exist"),
        ("onto_directory", "is a directory"),
        ("surfaces_is_a_file", "exists and is not a directory"),
        ("short_row", "line 3: no value in column axis-1"),
        ("long_row", "line 2: 4 fields for the header's 3"),
        ("empty_value", "line 2, column axis-0: '' is not a number"),
        ("points_is_a_directory", "is a directory, not a file"),
        ("grid_nan", "spacing must be finite"),
    ],
)
def test_cli_problems_exit_1_naming_the_file(files, capsys, setup, message):
    output, extra, points = "out.csv", [], files / "points.csv"
    if setup == "missing_directory":
        output = "nowhere/out.csv"
    elif setup == "onto_directory":
        (files / "taken.csv").mkdir()
        output = "taken.csv"
    elif setup == "surfaces_is_a_file":
        (files / "surfaces.npy").write_text("")
        extra = ["--surfaces", str(files / "surfaces.npy")]
    elif setup == "short_row":
        points.write_text("index,axis-0,axis-1\n0,60,65\n1,40\n")
    elif setup == "long_row":
        points.write_text("index,axis-0,axis-1\n0,60,65,7\n")
    elif setup == "empty_value":
        points.write_text("index,axis-0,axis-1\n0,,65\n")
    elif setup == "points_is_a_directory":
        points.unlink()
        points.mkdir()
    start = time.perf_counter()
    if setup == "grid_nan":
        images = [str(files / name) for name in ("before.tif", "after.tif")]
        code = main(["match", *images, "--grid", "nan", "-o", "out.csv"])
    else:
        code = cli(files, *extra, output=output)
    assert code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("napari-normxcorr: error:")
    assert message in lines[0]
    assert not (files / "out.csv").exists()
    assert time.perf_counter() - start < 30  # sanity: nothing hung


def test_cli_reads_a_byte_order_mark_and_flags_inf(files):
    stack = np.stack([texture((120, 130), seed=1)] * 2)
    tifffile.imwrite(files / "before.tif", stack)
    tifffile.imwrite(files / "after.tif", np.roll(stack, SHIFT, (1, 2)))
    (files / "points.csv").write_text(
        "\ufeffindex,axis-0,axis-1,axis-2\n0,inf,60,65\n1,1,40,90\n",
        encoding="utf-8",
    )
    assert cli(files) == 0
    text = (files / "out.csv").read_text().splitlines()
    assert text[0].startswith("index,axis-0,axis-1,axis-2")
    assert text[1].endswith("outside image")
    assert text[2].endswith(",ok")


def test_cli_rgb_png_with_a_plane_column_says_colour(files, capsys):
    rgb = np.stack([texture((120, 130), seed=1)] * 3, -1) * 30 + 128
    iio.imwrite(files / "before.png", rgb.clip(0, 255).astype(np.uint8))
    (files / "points.csv").write_text("index,axis-0,axis-1,axis-2\n0,6,6,1\n")
    args = ["match", files / "before.png", files / "before.png"]
    code = main([str(a) for a in (*args, files / "points.csv", "-o", "x")])
    assert code == 1
    assert "looks like colour" in capsys.readouterr().err
