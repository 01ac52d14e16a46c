"""napari-normxcorr match, end to end on files in a temporary folder."""

import csv
import json
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_normxcorr.cli import main

SHIFT = (3, -5)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(120, 130)), 1.5)
    base = ((base - base.min()) / np.ptp(base) * 60000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "before.tif", base)
    np.save(tmp_path / "after.npy", np.roll(base, SHIFT, axis=(0, 1)))
    points = tmp_path / "points.csv"
    points.write_text("index,axis-0,axis-1\n0,60.0,65.5\n1,40,90\n2,500,5\n")
    return tmp_path


def run(*args):
    return main([str(a) for a in args])


def read(path):
    with open(path) as stream:
        return list(csv.DictReader(stream))


def test_matches_written_in_napari_layout(files, capsys):
    out = files / "matched.csv"
    code = run(
        "match",
        files / "before.tif",
        files / "after.npy",
        files / "points.csv",
        "-o",
        out,
        "--template-radius",
        10,
        "--search-radius",
        20,
        "--surfaces",
        files / "surfaces",
    )
    assert code == 0
    rows = read(out)
    assert list(rows[0])[:3] == ["index", "axis-0", "axis-1"]
    assert {
        "score",
        "offset-0",
        "offset-1",
        "distinctiveness",
        "consistency",
        "status",
    } <= set(rows[0])
    assert float(rows[0]["axis-0"]) == pytest.approx(63.0, abs=1e-6)
    assert float(rows[0]["axis-1"]) == pytest.approx(60.5, abs=1e-6)
    assert float(rows[1]["offset-1"]) == pytest.approx(-5, abs=1e-6)
    assert rows[2]["status"] == "outside image"
    surface = np.load(files / "surfaces" / "surface-0.npy")
    assert surface.shape == (21, 21)
    assert "2 of 3 points matched ok" in capsys.readouterr().err


def test_png_images_and_per_axis_radii(files):
    base = tifffile.imread(files / "before.tif")
    iio.imwrite(files / "before.png", base)
    iio.imwrite(files / "after.png", np.roll(base, SHIFT, axis=(0, 1)))
    out = files / "matched.csv"
    assert (
        run(
            "match",
            files / "before.png",
            files / "after.png",
            files / "points.csv",
            "-o",
            out,
            "--template-radius",
            "8,10",
            "--search-radius",
            "16,18",
        )
        == 0
    )
    assert float(read(out)[1]["offset-0"]) == pytest.approx(3, abs=1e-6)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file"),
        ("not_image", "cannot read it as an image"),
        ("bad_csv", "expected napari's points CSV"),
        ("bad_number", "not a number"),
        ("dimensions", "axes"),
    ],
)
def test_bad_files_exit_1_with_a_message(files, capsys, setup, message):
    template = files / "before.tif"
    points = files / "points.csv"
    if setup == "missing":
        template = files / "nope.tif"
    elif setup == "not_image":
        template = files / "text.tif"
        template.write_text("hello")
    elif setup == "bad_csv":
        points.write_text("x,y\n1,2\n")
    elif setup == "bad_number":
        points.write_text("index,axis-0,axis-1\n0,a,1\n")
    elif setup == "dimensions":
        points.write_text("index,axis-0,axis-1,axis-2\n0,1,2,3\n")
    code = run(
        "match", template, files / "after.npy", points, "-o", files / "out.csv"
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("napari-normxcorr: error:")
    assert message in err
    assert not (files / "out.csv").exists()


def test_bad_arguments_exit_2(files, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(
            "match",
            files / "before.tif",
            files / "after.npy",
            files / "points.csv",
            "-o",
            files / "o.csv",
            "--template-radius",
            "ten",
        )
    assert exit_info.value.code == 2
    assert "not an int" in capsys.readouterr().err


def test_console_script_help_shows_an_example():
    result = subprocess.run(
        [sys.executable, "-m", "napari_normxcorr.cli", "match", "--help"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    assert "example:" in result.stdout
    assert "index,axis-0,axis-1" in result.stdout


def turned_pair(folder, seed, degrees, scale, shift, rows, cols):
    """A texture and its copy turned by `degrees` and scaled by `scale`
    about a known centre, then shifted, written as TIFFs with a grid of
    points (`rows` x `cols` positions) as napari's CSV in `folder`;
    returns the true matrix and the points."""
    rng = np.random.default_rng(seed)
    before = ndimage.gaussian_filter(rng.normal(size=(220, 240)), 2.0)
    angle = np.deg2rad(degrees)
    linear = scale * np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    centre = np.array([110.0, 120.0])
    truth = np.eye(3)
    truth[:2, :2] = linear
    truth[:2, 2] = centre - linear @ centre + shift
    # after(q) = before(truth^-1 q): affine_transform maps output -> input.
    inverse = np.linalg.inv(truth)
    after = ndimage.affine_transform(
        before, inverse[:2, :2], inverse[:2, 2], order=3, mode="reflect"
    )
    tifffile.imwrite(folder / "before.tif", before.astype(np.float32))
    tifffile.imwrite(folder / "after.tif", after.astype(np.float32))
    grid = np.stack(np.meshgrid(rows, cols), -1).reshape(-1, 2)
    lines = ["index,axis-0,axis-1"]
    lines += [f"{i},{r},{c}" for i, (r, c) in enumerate(grid)]
    (folder / "points.csv").write_text("\n".join(lines) + "\n")
    return truth, grid


@pytest.fixture
def rotated(tmp_path):
    """A texture and its copy rotated by 4 degrees about a known centre,
    with a 5 x 5 grid of points; returns the folder and the true matrix."""
    truth, grid = turned_pair(
        tmp_path,
        1,
        4.0,
        1.0,
        [2.5, -1.5],
        np.linspace(50, 170, 5),
        np.linspace(50, 190, 5),
    )
    return tmp_path, truth, grid


def test_register_writes_the_transform_and_the_warped_image(rotated):
    folder, truth, grid = rotated
    out, warped = folder / "transform.json", folder / "aligned.tif"
    code = run(
        "register",
        folder / "before.tif",
        folder / "after.tif",
        folder / "points.csv",
        "-o",
        out,
        "--model",
        "rigid",
        "--template-radius",
        12,
        "--search-radius",
        24,
        "--warped",
        warped,
        "--matches",
        folder / "matches.csv",
    )
    assert code == 0
    record = json.loads(out.read_text())
    assert record["model"] == "rigid"
    matrix = np.array(record["matrix"])
    mapped = grid @ matrix[:2, :2].T + matrix[:2, 2]
    expected = grid @ truth[:2, :2].T + truth[:2, 2]
    assert np.sqrt(np.mean(np.sum((mapped - expected) ** 2, 1))) < 0.1
    assert len(record["points"]) == len(record["inliers"]) == len(grid)
    aligned = tifffile.imread(warped)
    before = tifffile.imread(folder / "before.tif")
    assert aligned.shape == before.shape
    inside = (slice(40, -40), slice(40, -40))
    error = np.abs(aligned[inside] - before[inside])
    assert error.max() < 0.05 * before.std()
    assert len(read(folder / "matches.csv")) == len(grid)


@pytest.mark.parametrize("order", [1, 0])
def test_match_writes_the_gradient_of_the_fitted_warp(rotated, order):
    """The affine warp's gradient is the rotation's (R - I) in the
    gradient-i-j columns; --shape-order 0 fits none (nan)."""
    folder, truth, _ = rotated
    out = folder / "matched.csv"
    code = run(
        "match",
        folder / "before.tif",
        folder / "after.tif",
        folder / "points.csv",
        "-o",
        out,
        "--template-radius",
        12,
        "--search-radius",
        24,
        "--shape-order",
        order,
    )
    assert code == 0
    rows = [r for r in read(out) if r["status"] == "ok"]
    assert len(rows) >= 20
    cells = [
        [[r[f"gradient-{i}-{j}"] for j in range(2)] for i in range(2)]
        for r in rows
    ]
    if order == 0:
        assert {c for row in cells for pair in row for c in pair} == {"nan"}
        return
    gradient = np.array(cells, dtype=float)
    np.testing.assert_allclose(
        gradient,
        np.broadcast_to(truth[:2, :2] - np.eye(2), gradient.shape),
        atol=2e-3,
    )


def test_register_with_too_few_points_says_why(rotated, capsys):
    folder, _, _ = rotated
    (folder / "two.csv").write_text("index,axis-0,axis-1\n0,60,60\n1,90,80\n")
    code = run(
        "register",
        folder / "before.tif",
        folder / "after.tif",
        folder / "two.csv",
        "-o",
        folder / "t.json",
        "--model",
        "affine",
        "--template-radius",
        12,
        "--search-radius",
        24,
    )
    assert code == 1
    message = capsys.readouterr().err.strip()
    assert message.startswith("napari-normxcorr: error:")
    assert len(message.splitlines()) == 1
    assert not (folder / "t.json").exists()


def test_a_grid_instead_of_a_points_file(files):
    out = files / "grid.csv"
    code = run(
        "match",
        files / "before.tif",
        files / "after.npy",
        "--grid",
        30,
        "-o",
        out,
        "--template-radius",
        10,
        "--search-radius",
        20,
    )
    assert code == 0
    rows = read(out)
    points = np.array(
        [[float(r["point-0"]), float(r["point-1"])] for r in rows]
    )
    # Every point at least a template radius inside, 30 px apart.
    assert points.min() >= 10 and (points[:, 0] <= 109).all()
    assert set(np.diff(np.unique(points[:, 1]))) == {30.0}
    inside = (points >= 25).all(1) & (points <= [95, 105]).all(1)
    offsets = np.array(
        [[float(r["offset-0"]), float(r["offset-1"])] for r in rows]
    )
    np.testing.assert_allclose(
        offsets[inside], [SHIFT] * inside.sum(), atol=0.01
    )


@pytest.mark.parametrize("both", [False, True])
def test_points_and_grid_exclude_each_other(files, both, capsys):
    args = ["match", files / "before.tif", files / "after.npy"]
    if both:
        args += [files / "points.csv", "--grid", 20]
    with pytest.raises(SystemExit) as stop:
        run(*args, "-o", files / "x.csv")
    assert stop.value.code == 2
    assert "either POINTS.csv or --grid" in capsys.readouterr().err


def test_masks_and_nodata_mark_pixels_without_data(files):
    before = tifffile.imread(files / "before.tif")
    mask = np.zeros(before.shape, dtype=np.uint8)
    mask[45:76, 50:82] = 255  # all of point 0's template window
    iio.imwrite(files / "mask.png", mask)
    after = np.load(files / "after.npy")
    after[:, 104:] = 0  # a fill value over the edge of point 1's search
    np.save(files / "after.npy", after)
    out = files / "masked.csv"
    code = run(
        "match",
        files / "before.tif",
        files / "after.npy",
        files / "points.csv",
        "-o",
        out,
        "--template-radius",
        10,
        "--search-radius",
        20,
        "--template-mask",
        files / "mask.png",
        "--nodata",
        0,
    )
    assert code == 0
    rows = read(out)
    assert [r["status"] for r in rows] == [
        "too little data",
        "ok",
        "outside image",
    ]
    assert float(rows[1]["offset-0"]) == pytest.approx(SHIFT[0], abs=0.01)


def test_track_writes_one_row_per_vertex(tmp_path, capsys):
    from napari_normxcorr import track_points
    from napari_normxcorr.io._samples import drifting_series

    stack, _, points = (layer[0] for layer in drifting_series())
    stack, points = stack[:8], points[::6]
    tifffile.imwrite(tmp_path / "series.tif", stack)
    lines = ["index,axis-0,axis-1,axis-2"]
    lines += [f"{i},{t},{r},{c}" for i, (t, r, c) in enumerate(points)]
    (tmp_path / "points.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "tracks.csv"
    code = run(
        "track",
        tmp_path / "series.tif",
        tmp_path / "points.csv",
        "-o",
        out,
        "--template-radius",
        10,
        "--search-radius",
        20,
    )
    assert code == 0
    assert "vertices ok" in capsys.readouterr().err
    rows = read(out)
    assert len(rows) == len(points) * len(stack)
    expected = track_points(
        stack, points, template_radius=10, search_radius=20
    ).to_table()
    for name in ("position-0", "position-1", "score"):
        np.testing.assert_allclose(
            [float(r[name]) for r in rows], expected[name], rtol=1e-12
        )
    assert [r["status"] for r in rows] == list(expected["status"])


def test_track_without_a_time_column_exits_1(files, capsys):
    stack = np.stack([tifffile.imread(files / "before.tif")] * 3)
    tifffile.imwrite(files / "stack.tif", stack, photometric="minisblack")
    code = run(
        "track",
        files / "stack.tif",
        files / "points.csv",
        "-o",
        files / "t.csv",
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("napari-normxcorr: error:")
    assert len(err.strip().splitlines()) == 1
    assert not (files / "t.csv").exists()


@pytest.mark.parametrize(
    "layout, lazy",
    [
        ({}, np.memmap),  # uncompressed: mapped from the file
        ({"tile": (32, 32), "compression": "zlib"}, "TiffTiles"),
        ({"compression": "zlib"}, np.ndarray),  # strips: read whole
    ],
)
def test_tiff_inputs_are_read_where_needed(files, layout, lazy):
    """A TIFF is opened as lazily as its layout allows, and matches as
    the same pixels given as .npy do."""
    import pickle

    from napari_normxcorr.io._files import TiffTiles, open_tiff

    base = tifffile.imread(files / "before.tif")
    tifffile.imwrite(files / "laid.tif", base, **layout)
    opened = open_tiff(files / "laid.tif")
    expected = TiffTiles if lazy == "TiffTiles" else lazy
    assert type(opened) is expected
    np.testing.assert_array_equal(opened[10:50, 20:70], base[10:50, 20:70])
    if isinstance(opened, TiffTiles):
        # Pickled as its path: a cluster's workers reopen the file.
        assert len(pickle.dumps(opened)) < 1000
        again = pickle.loads(pickle.dumps(opened))
        np.testing.assert_array_equal(again[5:9, 7:90], base[5:9, 7:90])
    np.save(files / "before.npy", base)
    outputs = []
    for name in ("laid.tif", "before.npy"):
        out = files / f"{name}.csv"
        code = run(
            "match",
            files / name,
            files / "after.npy",
            files / "points.csv",
            "-o",
            out,
            "--template-radius",
            10,
            "--search-radius",
            20,
        )
        assert code == 0
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]


def test_field_writes_vectors_in_physical_units(tmp_path, capsys):
    """`field`: one row per grid point, x, y, u, v in the units given,
    the vectors those of the flow."""
    import ground_truth as gt

    pair = gt.particle_pair("rotation", shape=(192, 192))
    a, b, out = tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "f.csv"
    tifffile.imwrite(a, pair.template_image.astype(np.float32))
    tifffile.imwrite(b, pair.image.astype(np.float32))
    code = run(
        "field",
        a,
        b,
        "-o",
        out,
        "--spacing",
        16,
        "--pixel-size",
        0.5,
        "--unit",
        "mm",
        "--frame-interval",
        2,
        "--time-unit",
        "s",
    )
    assert code == 0
    assert "wrote" in capsys.readouterr().err
    rows = read(out)
    points = np.array(
        [[float(r["point-0"]), float(r["point-1"])] for r in rows]
    )
    offsets = np.array(
        [[float(r["offset-0"]), float(r["offset-1"])] for r in rows]
    )
    ok = np.array([r["status"] == "ok" for r in rows])
    truth = pair.info["flow"].displacement(points)
    assert ok.mean() > 0.9
    assert np.abs(offsets[ok] - truth[ok]).max() < 0.3
    u = np.array([float(r["u"]) for r in rows])
    np.testing.assert_allclose(u[ok], offsets[ok, 1] * 0.5 / 2)
    assert run("field", a, b, "-o", a) == 1  # an input is never overwritten
    assert "-o" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        run("field", a, b, "-o", out, "--spacing", "0")
    assert stop.value.code == 2


@pytest.fixture
def turned(tmp_path):
    """A texture and its copy turned 30 degrees and scaled 1.25 about its
    centre, beyond what phase correlation or plain NCC can start from;
    returns the folder, the true matrix and the points."""
    truth, grid = turned_pair(
        tmp_path,
        2,
        30.0,
        1.25,
        [1.5, -2.0],
        np.linspace(75, 145, 4),
        np.linspace(80, 160, 4),
    )
    return tmp_path, truth, grid


def _register_turned(folder, *extra):
    return run(
        "register",
        folder / "before.tif",
        folder / "after.tif",
        folder / "points.csv",
        "-o",
        folder / "transform.json",
        "--template-radius",
        12,
        "--search-radius",
        20,
        *extra,
    )


def test_register_starts_from_a_saved_transform(turned, capsys):
    """Two pairs clicked about 1 px off give an exact similarity, saved;
    --transform starts from it (and keeps its model) and registers to
    within 0.1 px. The -o file loads as the fit it holds."""
    from napari_normxcorr import TransformFit, fit_transform

    folder, truth, grid = turned
    clicks = np.array([[80.0, 90.0], [140.0, 150.0]])
    off = [[0.8, -0.6], [-1.0, 0.7]]
    guessed = clicks @ truth[:2, :2].T + truth[:2, 2] + off
    rough = fit_transform(clicks, guessed, model="similarity")
    assert rough.exact
    rough.to_json(folder / "rough.json")
    assert _register_turned(folder, "--transform", folder / "rough.json") == 0
    assert "wrote" in capsys.readouterr().err
    record = json.loads((folder / "transform.json").read_text())
    assert record["model"] == "similarity"
    fit = TransformFit.from_json(folder / "transform.json")
    np.testing.assert_array_equal(fit.matrix, record["matrix"])
    expected = grid @ truth[:2, :2].T + truth[:2, 2]
    assert np.sqrt(np.mean(np.sum((fit(grid) - expected) ** 2, 1))) < 0.1
    # Refined again from its own output: the same transform.
    again = folder / "again.json"
    code = _register_turned(
        folder, "--transform", folder / "transform.json", "-o", again
    )
    assert code == 0
    np.testing.assert_allclose(
        TransformFit.from_json(again).matrix, fit.matrix, atol=1e-3
    )


def test_register_without_a_start_fails_where_transform_helps(turned, capsys):
    """Phase correlation cannot start a 30 degree, x1.25 pair."""
    folder, _, _ = turned
    assert _register_turned(folder) == 1
    assert "napari-normxcorr: error: register" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{oops", "not a JSON file"),
        (None, "a 3-D transform, but the images are matched in 2 axes"),
    ],
)
def test_register_with_a_bad_transform_file_exits_1(
    turned, capsys, content, message
):
    """A transform file that is not one, or has other axes: one line
    naming it, nothing written."""
    from napari_normxcorr import fit_transform

    folder, _, grid = turned
    path = folder / "start.json"
    if content is None:
        volume = np.c_[grid, np.arange(len(grid))]
        fit_transform(volume, volume + 1.0, model="translation").to_json(path)
    else:
        path.write_text(content)
    assert _register_turned(folder, "--transform", path) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"napari-normxcorr: error: {path}: ")
    assert message in error and len(error.splitlines()) == 1
    assert not (folder / "transform.json").exists()
    # The start file is an input: never overwritten by -o.
    assert _register_turned(folder, "--transform", path, "-o", path) == 1
