"""Bad input, round three (issue 31): tracking, registration, grids,
masks and the command line. A ValueError naming the argument, a row
flagged, or a right answer; the CLI exits 1 or 2 with one line naming the
file (130 on Ctrl-C), and never destroys what was already written."""

import warnings
from pathlib import Path
from types import MappingProxyType

import dask.array as da
import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from helpers import texture
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
from napari_normxcorr.tracking._track import retrack
from test_track_checks import occluded

SHIFT = (2, -3)
RADII = ["--template-radius", "8", "--search-radius", "16"]


def drifting(frames=4, shape=(60, 60), scale=1.0, offset=0.0):
    base = texture(shape, seed=1)
    return offset + scale * np.stack(
        [np.roll(base, (k, -k), axis=(0, 1)) for k in range(frames)]
    )


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = texture((100, 100), seed=3)
    np.save("a.npy", base)
    np.save("b.npy", np.roll(base, SHIFT, axis=(0, 1)))
    np.save("stack.npy", drifting(3, (100, 100)))
    spots = [(30, 30), (30, 70), (70, 30), (70, 70), (50, 50), (40, 60)]
    rows = [f"{k},{r},{c}" for k, (r, c) in enumerate(spots)]
    Path("p.csv").write_text("index,axis-0,axis-1\n" + "\n".join(rows))
    rows = [f"{k},0,{r},{c}" for k, (r, c) in enumerate(spots)]
    Path("tp.csv").write_text("index,axis-0,axis-1,axis-2\n" + "\n".join(rows))
    return tmp_path


def cli(capsys, *args):
    """Exit code and stderr lines of the command line."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err.strip().splitlines()


def one_line(code, lines, *words, exit_code=1):
    assert code == exit_code, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("napari-normxcorr:")
    for word in words:
        assert word in lines[0], lines[0]


def leftovers(folder):
    """Hidden staged files an interrupted write would leave."""
    return [p.name for p in Path(folder).iterdir() if p.name.startswith(".")]


REGISTER = ["register", "a.npy", "b.npy", "p.csv", *RADII]
RADII_6_12 = MappingProxyType({"template_radius": 6, "search_radius": 12})


class TestOutputsAreNeverDestroyed:
    def test_warped_onto_the_transform_is_refused(self, files, capsys):
        Path("t.json").write_text("{}")
        code, lines = cli(
            capsys, *REGISTER, "-o", "t.json", "--warped", "t.json"
        )
        one_line(code, lines, "--warped t.json", "-o")
        assert Path("t.json").read_text() == "{}"

    def test_matches_onto_the_transform_is_refused(self, files, capsys):
        args = ["-o", "t.json", "--matches", "./t.json"]
        code, lines = cli(capsys, *REGISTER, *args)
        one_line(code, lines, "--matches")
        assert not Path("t.json").exists()

    def test_an_output_onto_an_input_is_refused(self, files, capsys):
        before = Path("p.csv").read_text()
        args = ["match", "a.npy", "b.npy", "p.csv", "-o", "p.csv", *RADII]
        code, lines = cli(capsys, *args)
        one_line(code, lines, "-o p.csv", "input")
        assert Path("p.csv").read_text() == before

    @pytest.mark.parametrize("option", ["--warped", "--surfaces"])
    def test_an_uncreatable_second_output_writes_nothing(
        self, files, capsys, option
    ):
        command = "register" if option == "--warped" else "match"
        args = [command, "a.npy", "b.npy", "p.csv", "-o", "out", *RADII]
        code, lines = cli(capsys, *args, option, "x" * 300)
        one_line(code, lines, option)
        assert not Path("out").exists()

    def test_a_second_output_failing_while_written_writes_nothing(
        self, files, capsys, monkeypatch
    ):
        def failing(path, data, **options):
            Path(path).write_bytes(b"II*\0partial")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(tifffile, "imwrite", failing)
        args = ["-o", "t.json", "--warped", "w.tif", "--matches", "m.csv"]
        code, lines = cli(capsys, *REGISTER, *args)
        one_line(code, lines, "--warped w.tif", "No space left")
        assert not any(Path(n).exists() for n in ("t.json", "w.tif", "m.csv"))
        assert leftovers(files) == []

    @pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
    def test_a_full_device_is_named(self, files, capsys):
        args = ["match", "a.npy", "b.npy", "p.csv", "-o", "/dev/full", *RADII]
        code, lines = cli(capsys, *args)
        one_line(code, lines, "-o /dev/full", "No space left")

    def test_outputs_are_written_whole_with_the_usual_permissions(
        self, files, capsys
    ):
        args = ["-o", "t.json", "--warped", "w.tif", "--matches", "m.csv"]
        code, _ = cli(capsys, *REGISTER, *args)
        assert code == 0
        assert tifffile.imread("w.tif").shape == (100, 100)
        assert Path("t.json").stat().st_mode & 0o044  # not owner-only
        assert leftovers(files) == []


class TestCtrlC:
    @pytest.mark.parametrize(
        ("command", "target"),
        [
            ("match", "napari_normxcorr.cli._commands.match_points"),
            ("register", "napari_normxcorr.registration._register.register"),
            ("track", "napari_normxcorr.tracking._track.track_points"),
        ],
    )
    def test_interrupted_run_exits_130_with_one_line(
        self, files, capsys, monkeypatch, command, target
    ):
        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(target, interrupted)
        inputs = (
            ["stack.npy", "tp.csv"]
            if command == "track"
            else ["a.npy", "b.npy", "p.csv"]
        )
        code, lines = cli(capsys, command, *inputs, "-o", "out", *RADII)
        one_line(code, lines, "interrupted", exit_code=130)
        assert not Path("out").exists()

    def test_interrupted_while_writing_leaves_no_partial_file(
        self, files, capsys, monkeypatch
    ):
        def interrupted(path, data, **options):
            Path(path).write_bytes(b"II*\0partial")
            raise KeyboardInterrupt

        monkeypatch.setattr(tifffile, "imwrite", interrupted)
        args = ["-o", "t.json", "--warped", "w.tif"]
        code, lines = cli(capsys, *REGISTER, *args)
        one_line(code, lines, "interrupted", exit_code=130)
        assert not Path("t.json").exists() and not Path("w.tif").exists()
        assert leftovers(files) == []


class TestCommandLineInputs:
    @pytest.mark.parametrize(
        ("header", "words"),
        [
            ("index,axis-x,axis-1", ["pts.csv", "'axis-x'"]),
            ("index,axis-0,axis-0,axis-1", ["pts.csv", "axis-0 more than"]),
            ("index,axis-0,axis-2", ["pts.csv", "axis-0 to axis-1"]),
        ],
    )
    def test_a_bad_header_names_the_file(self, files, capsys, header, words):
        Path("pts.csv").write_text(f"{header}\n0,40,30,40\n")
        args = ["match", "a.npy", "b.npy", "pts.csv", "-o", "o.csv", *RADII]
        one_line(*cli(capsys, *args), *words)

    def test_a_latin1_csv_is_read(self, files, capsys):
        text = "index,axis-0,axis-1,label\n0,50,50,caf\xe9\n"
        Path("pts.csv").write_bytes(text.encode("latin-1"))
        args = ["match", "a.npy", "b.npy", "pts.csv", "-o", "o.csv", *RADII]
        code, _ = cli(capsys, *args)
        assert code == 0
        assert "ok" in Path("o.csv").read_text()

    def test_a_binary_csv_names_the_file(self, files, capsys):
        Path("pts.csv").write_bytes(bytes(range(256)) * 4)
        args = ["match", "a.npy", "b.npy", "pts.csv", "-o", "o.csv", *RADII]
        one_line(*cli(capsys, *args), "pts.csv")

    def test_track_names_the_line_of_a_nan_coordinate(self, files, capsys):
        Path("tp.csv").write_text(
            "index,axis-0,axis-1,axis-2\n0,0,40,40\n1,0,nan,50\n"
        )
        args = ["track", "stack.npy", "tp.csv", "-o", "o.csv", *RADII]
        one_line(*cli(capsys, *args), "tp.csv, line 3, column axis-1")

    def test_track_refuses_one_colour_picture(self, files, capsys):
        grey = (texture((100, 100), seed=3) * 30 + 128).clip(0, 255)
        rgb = np.stack([grey] * 3, axis=-1).astype(np.uint8)
        iio.imwrite("rgb.png", rgb)
        args = ["track", "rgb.png", "tp.csv", "-o", "o.csv", *RADII]
        one_line(*cli(capsys, *args), "rgb.png", "colour image")

    def test_track_names_both_files_for_a_missing_time_column(
        self, files, capsys
    ):
        args = ["track", "stack.npy", "p.csv", "-o", "o.csv", *RADII]
        one_line(*cli(capsys, *args), "p.csv", "stack.npy", "time first")

    def test_a_zero_threshold_is_refused_before_matching(
        self, files, capsys, monkeypatch
    ):
        monkeypatch.setattr(
            "napari_normxcorr.registration._register.match_points", None
        )
        code, lines = cli(capsys, *REGISTER, "-o", "t.json", "--threshold", 0)
        assert code == 2 and "--threshold" in lines[-1]

    def test_register_2d_against_3d_names_the_files(self, files, capsys):
        args = ["register", "a.npy", "stack.npy", "p.csv", "-o", "t.json"]
        one_line(*cli(capsys, *args, *RADII), "stack.npy", "a.npy", "axes")

    def test_a_tiny_grid_spacing_is_one_line(self, files, capsys):
        args = ["match", "a.npy", "b.npy", "--grid", "0.001", "-o", "o.csv"]
        one_line(*cli(capsys, *args, *RADII), "spacing 0.001")


class TestGridPoints:
    def test_a_tiny_spacing_is_refused_before_allocating(self):
        with pytest.raises(ValueError, match=r"spacing 0\.001 puts"):
            grid_points((1000, 1000), 1e-3)

    def test_an_image_for_shape_is_named(self):
        with pytest.raises(ValueError, match=r"pass image\.shape"):
            grid_points(np.zeros((50, 50)), 5)

    @pytest.mark.parametrize("shape", [(50.7, 50), (0, 5), (), ("a", 3)])
    def test_a_shape_that_is_not_whole_pixels_is_refused(self, shape):
        with pytest.raises(ValueError, match="shape must be"):
            grid_points(shape, 5)

    def test_a_whole_float_shape_is_fine(self):
        assert (
            grid_points((50.0, 50), 10).shape
            == grid_points((50, 50), 10).shape
        )

    def test_a_string_mask_is_refused(self):
        with pytest.raises(ValueError, match="mask must hold real numbers"):
            grid_points((20, 20), 5, mask=np.full((20, 20), "False"))


class TestWarp:
    image = texture((40, 40), seed=4)
    turn = np.array([[0.99, -0.1, 3.0], [0.1, 0.99, -2.0], [0.0, 0.0, 1.0]])

    @pytest.mark.parametrize("dtype", [np.float16, bool])
    def test_half_floats_and_booleans_are_warped(self, dtype):
        image = (self.image > 0) if dtype is bool else self.image
        image = image.astype(dtype)
        out = warp(image, self.turn)
        expected = warp(image.astype(np.float32), self.turn)
        np.testing.assert_array_equal(out, expected)

    def test_spline_order_beyond_five_is_named(self):
        with pytest.raises(ValueError, match="order must be an int from 0"):
            warp(self.image, np.eye(3), order=6)

    @pytest.mark.parametrize(
        ("matrix", "message"),
        [
            (np.zeros((3, 3)), "singular"),
            (np.full((3, 3), np.nan), "NaN or infinity"),
            (np.diag([1.0, np.inf, 1.0]), "NaN or infinity"),
            (np.diag([1.0, 0.0, 1.0]), "singular"),
        ],
    )
    def test_an_unusable_matrix_is_refused_without_warnings(
        self, matrix, message
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=f"fit's matrix .*{message}"):
                warp(self.image, matrix)

    def test_an_output_larger_than_memory_is_named(self):
        with pytest.raises(ValueError, match="output_shape"):
            warp(self.image, np.eye(3), output_shape=(10**6, 10**6))

    @pytest.mark.parametrize("shape", [(10, 0), (10.5, 10), (10,)])
    def test_a_bad_output_shape_is_named(self, shape):
        with pytest.raises(ValueError, match="output_shape"):
            warp(self.image, np.eye(3), output_shape=shape)


class TestFitTransform:
    rng = np.random.default_rng(0)

    @pytest.mark.parametrize(
        "source",
        [
            [[0, 0], [10, 0], [20, 0], [5, 30]],  # three on a line
            [[0, 0], [10, 0], [5, 30], [5, 30]],  # three and a duplicate
            [[0, 0], [10, 0], [20, 0], [30, 0], [5, 30]],  # all but one
        ],
    )
    @pytest.mark.parametrize("robust", [True, False])
    def test_projective_needs_four_in_general_position(self, source, robust):
        source = np.array(source, float)
        target = 1.1 * source + 3 + self.rng.normal(0, 1, source.shape)
        with pytest.raises(ValueError, match="projective"):
            fit_transform(source, target, model="projective", robust=robust)

    def test_a_result_with_a_plane_column_is_fitted_in_the_plane(self):
        base = texture((80, 80), seed=5)
        stack = np.stack([base, base])
        moved = np.stack([np.roll(base, SHIFT, axis=(0, 1))] * 2)
        points = [
            [p, r, c] for p in (0, 1) for r in (25, 55) for c in (25, 55)
        ]
        result = match_points(
            stack, moved, points, template_radius=8, search_radius=16
        )
        fit = fit_transform(result, model="translation")
        np.testing.assert_allclose(fit.matrix[:2, 2], SHIFT, atol=0.05)
        assert fit.matrix.shape == (3, 3)

    def test_points_a_rounding_error_apart_are_one_point(self):
        source = np.array([[10.0, 10.0], [10.0, 10.0 + 1e-12]])
        with pytest.raises(ValueError, match="single point"):
            fit_transform(source, source + 1, model="rigid")

    def test_a_translation_of_unrelated_pairs_is_refused(self):
        source = self.rng.uniform(0, 500, (40, 2))
        target = self.rng.uniform(0, 500, (40, 2))
        with pytest.raises(ValueError, match="than chance would give"):
            fit_transform(source, target, model="translation")

    def test_a_true_translation_with_outliers_is_still_found(self):
        source = self.rng.uniform(0, 500, (40, 2))
        target = source + (3.0, -5.0) + self.rng.normal(0, 0.05, (40, 2))
        target[:8] = self.rng.uniform(0, 500, (8, 2))
        fit = fit_transform(source, target, model="translation")
        assert fit.inliers[8:].all() and not fit.inliers[:8].any()

    def test_messages_say_an_affine_and_coplanar(self):
        flat = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.0]])
        with pytest.raises(ValueError, match=r"coplanar.* an affine"):
            fit_transform(flat, flat, model="affine")
        with pytest.raises(ValueError, match="an affine fit needs"):
            fit_transform(flat[:2], flat[:2], model="affine")

    @pytest.mark.parametrize("threshold", ["a", 0, -1, np.nan, np.inf])
    def test_a_bad_threshold_is_named(self, threshold):
        source = self.rng.uniform(0, 50, (6, 2))
        with pytest.raises(ValueError, match="threshold"):
            fit_transform(source, source, threshold=threshold)


class TestRegister:
    image = texture((80, 80), seed=6)
    points = ((25, 25), (25, 55), (55, 25), (55, 55), (40, 40))

    def test_no_data_options_name_register(self):
        with pytest.raises(ValueError, match="register cannot take nodata"):
            register(self.image, self.image, self.points, nodata=0)

    def test_2d_against_3d_names_the_images(self):
        volume = np.stack([self.image] * 3)
        with pytest.raises(ValueError, match="image has 3 axes"):
            register(self.image, volume, self.points)

    @pytest.mark.parametrize(
        ("keyword", "value"),
        [
            ("max_iterations", "a"),
            ("max_iterations", 0),
            ("tolerance", "a"),
            ("tolerance", 0),
            ("threshold", "a"),
            ("threshold", 0),
            ("model", ["affine"]),
        ],
    )
    def test_bad_keywords_are_named_before_matching(
        self, monkeypatch, keyword, value
    ):
        monkeypatch.setattr(
            "napari_normxcorr.registration._register.match_points", None
        )
        with pytest.raises(ValueError, match=keyword):
            register(self.image, self.image, self.points, **{keyword: value})


def vertex_statuses(result):
    return [str(s) for s in result.status[0]]


class TestTrackPoints:
    stack = drifting()
    points = ((0, 30, 30), (0, 25, 35))
    radii = RADII_6_12

    @pytest.mark.parametrize(
        ("keyword", "value"),
        [
            ("min_score", np.nan),
            ("min_distinctiveness", np.nan),
            ("refresh_score", "high"),
            ("progress", 5),
            ("frames", (0, 2, 3)),
            ("frames", (0.5, 2)),
        ],
    )
    def test_bad_keywords_are_named_before_any_work(
        self, monkeypatch, keyword, value
    ):
        monkeypatch.setattr("napari_normxcorr.tracking._track.Tracker", None)
        with pytest.raises(ValueError, match=keyword):
            track_points(self.stack, self.points, **{keyword: value})

    def test_nan_points_are_named_by_row(self):
        with pytest.raises(ValueError, match=r"points \[1\] hold NaN"):
            track_points(self.stack, [[0, 30, 30], [0, np.nan, 30]])

    @pytest.mark.parametrize(
        "level", [(1e200, 1e198), (0, 1e200), (0, 1e-300)]
    )
    @pytest.mark.parametrize("subpixel", [True, False])
    def test_extreme_values_track_like_unit_ones(self, level, subpixel):
        stack = level[0] + level[1] * self.stack
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = track_points(
                stack, self.points, subpixel=subpixel, **self.radii
            )
        assert (result.status == Status.OK).all()
        np.testing.assert_allclose(result.score, 1.0, atol=1e-6)

    def test_a_reference_with_nan_pixels_is_not_a_flat_template(self):
        stack = self.stack.copy()
        stack[0, 27:34, 27:34] = np.nan
        result = track_points(stack, [[0, 30, 30]], **self.radii)
        assert result.status[0, 0] == Status.NON_FINITE
        assert np.isnan(result.score[0]).all()

    def test_an_unrefined_vertex_is_uncertain_not_low_score(self):
        stack, given, _ = occluded(0.3)
        result = track_points(
            stack, [[0, *given]], template_radius=10, search_radius=20
        )
        low = result.status == Status.LOW_SCORE
        assert not (result.score[low] >= 0.5).any()
        assert (result.status == Status.UNCERTAIN).any()

    @pytest.mark.parametrize("patience", [0, 1, 2, 3])
    def test_patience_counts_the_doubtful_vertices(self, patience):
        frames = [texture((60, 60), seed=1)]
        frames += [texture((60, 60), seed=10 + k) for k in range(7)]
        result = track_points(
            np.stack(frames), [self.points[0]], patience=patience, **self.radii
        )
        statuses = vertex_statuses(result)[1:]
        first_lost = statuses.index("lost")
        assert first_lost == patience
        assert all(s not in ("ok", "lost") for s in statuses[:first_lost])

    def test_a_closed_client_is_named(self):
        distributed = pytest.importorskip("distributed")
        with distributed.LocalCluster(
            n_workers=1, processes=False, dashboard_address=None
        ) as cluster:
            client = distributed.Client(cluster)
            client.close()
        for call in (
            lambda: track_points(self.stack, self.points, client=client),
            lambda: match_points(
                self.stack[0], self.stack[1], [[30, 30]], client=client
            ),
        ):
            with pytest.raises(ValueError, match="client is closed"):
                call()


@pytest.fixture(scope="module")
def tracked():
    return track_points(drifting(), [[0, 30, 30]], **TestRetrack.radii)


class TestRetrack:
    stack = drifting()
    radii = RADII_6_12

    @pytest.fixture
    def result(self, tracked):
        return tracked

    @pytest.mark.parametrize(
        ("point", "t", "message"),
        [
            (1.5, 1, "point must lie"),
            (0, 2.5, "t must be an int"),
            ("0", 1, "point must lie"),
            (0, None, "t must be an int"),
        ],
    )
    def test_non_integer_rows_and_frames_are_named(
        self, result, point, t, message
    ):
        with pytest.raises(ValueError, match=message):
            retrack(result, self.stack, point, t, [31, 29], **self.radii)

    def test_a_whole_float_row_is_fine(self, result):
        again = retrack(result, self.stack, 0.0, 1.0, [31, 29], **self.radii)
        assert isinstance(again, type(result))

    def test_a_stack_of_another_frame_size_is_refused(self, result):
        other = drifting(shape=(80, 80))
        with pytest.raises(ValueError, match="stack has shape"):
            retrack(result, other, 0, 1, [31, 29], **self.radii)


class TestMasks:
    image = texture((30, 30), seed=7)
    template = image[5:12, 5:12]

    @pytest.mark.parametrize("lazy", [False, True])
    @pytest.mark.parametrize("which", ["template_mask", "image_mask"])
    def test_string_masks_are_refused_like_match_points(self, lazy, which):
        image = da.from_array(self.image, chunks=15) if lazy else self.image
        shape = self.template.shape if which == "template_mask" else (30, 30)
        masks = {which: np.full(shape, "False")}
        with pytest.raises(ValueError, match=f"{which} must hold real"):
            normalized_cross_correlation(
                self.template, image, "valid", **masks
            )
        with pytest.raises(ValueError, match="must hold real"):
            match_points(
                self.image,
                self.image,
                [[15, 15]],
                template_radius=3,
                search_radius=6,
                **{which: np.full((30, 30), "False")},
            )

    def test_a_non_number_min_overlap_is_named(self):
        with pytest.raises(ValueError, match="min_overlap"):
            normalized_cross_correlation(
                self.template,
                self.image,
                image_mask=self.image > 9,
                min_overlap="x",
            )


def test_match_result_of_a_stack_keeps_its_plane_axis():
    """What the plane-column fit relies on: a stack's result knows its
    matched axes from the gradient."""
    base = texture((40, 40), seed=8)
    result = match_points(
        np.stack([base] * 2),
        np.stack([base] * 2),
        [[1, 20, 20]],
        template_radius=4,
        search_radius=8,
    )
    assert isinstance(result, MatchResult)
    assert result.gradient.shape == (1, 2, 2)


class TestStatusesMatchTheirNumbers:
    def test_min_valid_of_the_wrong_type_is_named(self):
        image = texture((40, 40), seed=1)
        with pytest.raises(ValueError, match="min_valid"):
            match_points(
                image,
                image,
                [[20, 20]],
                template_radius=3,
                search_radius=6,
                min_valid="a",
            )

    def test_unconfirmed_whole_pixel_vertices_are_not_low_score(self):
        """A whole-pixel match the refinement does not confirm keeps its
        NCC score, often high: it is `uncertain`, never `low score` with
        a score above min_score (before: low score, score 0.98)."""
        from test_track_checks import scene

        stack, points, _, radii = scene(3, count=30)
        result = track_points(stack, points, subpixel=False, **radii)
        low = result.status == Status.LOW_SCORE
        assert not (low & (result.score >= 0.5)).any()
        assert (result.status == Status.UNCERTAIN).any()
