"""Fits saved as JSON and loaded back; exact fits; too few ok matches."""

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage

from napari_normxcorr import TransformFit, fit_transform, match_points
from napari_normxcorr.registration import TooFewMatches, register

SQUARE = np.array([[0.0, 0.0], [40, 0], [0, 50], [40, 50], [20, 20]])


def _fit(model="affine", ndim=2, seed=0):
    """A robust fit with outliers and a row without a match."""
    rng = np.random.default_rng(seed)
    source = rng.uniform(0, 200, (30, ndim))
    linear = np.eye(ndim) + rng.uniform(-0.05, 0.05, (ndim, ndim))
    if model in ("translation",):
        linear = np.eye(ndim)
    target = source @ linear.T + rng.uniform(-9, 9, ndim) / 3
    target += rng.normal(0, 0.05, target.shape)
    target[:4] += 25.0
    target[4] = np.nan
    return fit_transform(source, target, model=model)


def _same(loaded, fit):
    """Every field equal, arrays to the bit (NaN where NaN)."""
    for name in ("matrix", "inverse", "inliers", "residuals"):
        np.testing.assert_array_equal(
            getattr(loaded, name), getattr(fit, name)
        )
        assert getattr(loaded, name).dtype == getattr(fit, name).dtype
    np.testing.assert_array_equal(loaded.rms, fit.rms)
    assert (loaded.model, loaded.threshold) == (fit.model, fit.threshold)
    assert loaded.exact == fit.exact


@pytest.mark.parametrize(
    ("model", "ndim"),
    [("translation", 2), ("similarity", 2), ("affine", 2), ("affine", 3)],
)
def test_round_trip_is_exact_to_the_bit(tmp_path, model, ndim):
    """from_json(to_json(fit)) has the same fields, matrices bit for bit,
    and writing it again gives the same bytes."""
    fit = _fit(model, ndim)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    fit.to_json(first)
    loaded = TransformFit.from_json(first)
    _same(loaded, fit)
    loaded.to_json(second)
    assert second.read_bytes() == first.read_bytes()


def test_the_file_is_plain_json_a_user_can_read(tmp_path):
    """Standard JSON (no NaN token), versioned, one matrix row a line."""
    fit = _fit()
    path = tmp_path / "fit.json"
    fit.to_json(path)
    text = path.read_text()

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    record = json.loads(text, parse_constant=refuse)
    assert record["format"] == "napari-normxcorr transform"
    assert record["version"] == 1
    assert (record["model"], record["ndim"]) == ("affine", 2)
    assert record["residuals"][4] is None  # the row without a match
    assert record["rms"] == fit.rms and record["exact"] is False
    assert "points" not in record  # no matches to write
    row = json.dumps(fit.matrix[0].tolist())
    assert f"    {row},\n" in text


def test_a_fit_with_matches_writes_its_points_and_matches(tmp_path):
    """The points, their matches and statuses go in the file; loading
    gives the fit (matches stay in the file)."""
    rng = np.random.default_rng(3)
    base = ndimage.gaussian_filter(rng.normal(size=(160, 160)), 1.5)
    moved = ndimage.shift(base, (2.25, -1.5), order=3)
    points = rng.uniform(40, 120, size=(8, 2))
    result = match_points(
        base, moved, points, template_radius=10, search_radius=20
    )
    result.matched[0] = np.nan  # a row without a match: null
    fit = fit_transform(result, model="translation")
    fit = replace(fit, matches=fit.flag(result))
    path = tmp_path / "fit.json"
    fit.to_json(path)
    record = json.loads(path.read_text())
    np.testing.assert_array_equal(record["points"], result.points)
    assert record["matched"][0] == [None, None]
    np.testing.assert_array_equal(record["matched"][1:], result.matched[1:])
    assert record["status"] == [str(s) for s in fit.matches.status]
    loaded = TransformFit.from_json(path)
    _same(loaded, fit)
    assert loaded.matches is None


def _broken(record, key, value):
    changed = dict(record)
    if value is _DROP:
        del changed[key]
    else:
        changed[key] = value
    return json.dumps(changed)


_DROP = object()
_BAD = [
    (lambda r: "{not json", "not a JSON file"),
    (lambda r: "[1, 2]", "not a transform file"),
    (lambda r: _broken(r, "format", "something else"), "not a transform"),
    (lambda r: _broken(r, "version", 2), "version 2.*upgrade"),
    (lambda r: _broken(r, "version", _DROP), "version None"),
    (lambda r: _broken(r, "inverse", _DROP), "missing key.*'inverse'"),
    (lambda r: _broken(r, "matrix", [[1, 0], [0, 1]]), r"shape \(2, 2\)"),
    (lambda r: _broken(r, "matrix", [[1, 0, 0], [0, 1]]), "3 x 3 array"),
    (lambda r: _broken(r, "matrix", [[1, None, 0]] * 3), "null, NaN"),
    (lambda r: _broken(r, "matrix", [["1", 0, 0]] * 3), "3 x 3 array"),
    (lambda r: _broken(r, "matrix", np.diag([2, 1, 1.0]).tolist()), "inv"),
    (lambda r: _broken(r, "model", "shear"), "unknown model 'shear'"),
    (lambda r: _broken(r, "ndim", "2"), "ndim must be"),
    (lambda r: _broken(r, "residuals", [0.1]), "residuals must be a list"),
    (lambda r: _broken(r, "inliers", [1, 0]), "inliers must be"),
    (lambda r: _broken(r, "threshold", 0), "threshold must be a positive"),
    (lambda r: _broken(r, "rms", -1), "rms must be"),
    (lambda r: _broken(r, "exact", "no"), "exact must be"),
]


@pytest.mark.parametrize(
    ("corrupt", "problem"), _BAD, ids=[problem for _, problem in _BAD]
)
def test_a_bad_file_is_refused_naming_it_and_the_problem(
    tmp_path, corrupt, problem
):
    """Every way a file can be wrong: one ValueError, the file named."""
    good = tmp_path / "good.json"
    _fit().to_json(good)
    path = tmp_path / "bad.json"
    path.write_text(corrupt(json.loads(good.read_text())))
    with pytest.raises(ValueError, match=problem) as caught:
        TransformFit.from_json(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_projective_file_for_3d_is_refused(tmp_path):
    """A model unavailable in the file's dimensions is named."""
    fit = _fit("affine", 3)
    path = tmp_path / "fit.json"
    replace(fit, model="projective").to_json(path)
    with pytest.raises(ValueError, match="not available for 3-D"):
        TransformFit.from_json(path)


@pytest.mark.parametrize(
    ("model", "source"),
    [
        ("translation", SQUARE[:1]),
        ("similarity", SQUARE[:2]),
        ("affine", SQUARE[:3]),
        ("projective", SQUARE[:4]),
        ("affine", np.c_[SQUARE[:4], [0, 0, 0, 30.0]]),
    ],
)
def test_an_exactly_determined_fit_is_called_exact(model, source):
    """As many coordinates as parameters: exact, no RMS, and said so."""
    target = source * 1.1 + 3.0
    fit = fit_transform(source, target, model=model)
    assert fit.exact
    assert np.isnan(fit.rms)
    expected = f"exact ({len(source)} points, no residual)"
    assert expected in fit.summary and expected in repr(fit)
    assert "RMS" not in fit.summary


@pytest.mark.parametrize(
    ("model", "source"),
    [("rigid", SQUARE[:2]), ("affine", SQUARE[:4]), ("similarity", SQUARE)],
)
def test_an_overdetermined_fit_has_an_rms(model, source):
    """A rigid fit to 2 points (4 coordinates, 3 parameters) has a
    residual: not exact."""
    fit = fit_transform(source, source + 1.0, model=model)
    assert not fit.exact
    assert fit.rms == pytest.approx(0.0, abs=1e-9)
    assert "RMS 0.000 px" in fit.summary


def test_an_exact_fit_round_trips_without_a_nan_in_the_file(tmp_path):
    """rms NaN is written as null (standard JSON) and read back as NaN."""
    fit = fit_transform(SQUARE[:2], SQUARE[:2] * 1.2, model="similarity")
    path = tmp_path / "exact.json"
    fit.to_json(path)
    assert json.loads(path.read_text())["rms"] is None
    json.dumps(fit.to_dict(), allow_nan=False)  # what Export fit does
    loaded = TransformFit.from_json(path)
    _same(loaded, fit)
    assert "exact (2 points, no residual)" in loaded.summary


def _result(status, points=SQUARE):
    return SimpleNamespace(points=points, matched=points + 1.0, status=status)


@pytest.mark.parametrize(
    ("model", "ok", "said", "supported"),
    [
        (
            "affine",
            2,
            "2 support a similarity or rigid fit: try model="
            "'similarity', or Refine",
            ("similarity", "rigid", "translation"),
        ),
        (
            "projective",
            3,
            "3 support an affine, similarity or rigid fit: try model='affine'",
            ("affine", "similarity", "rigid", "translation"),
        ),
        (
            "similarity",
            1,
            "1 supports a translation fit: try model='translation'",
            ("translation",),
        ),
        (
            "rigid",
            0,
            "got 0 ok (of 5); Refine through a rough fit, or "
            "widen search_radius",
            (),
        ),
    ],
)
def test_too_few_ok_matches_say_how_many_and_what_they_support(
    model, ok, said, supported
):
    """The count of ok rows of all rows, and the simpler models they
    determine, most general first."""
    status = ["ok"] * ok + ["two motions"] * (5 - ok)
    with pytest.raises(TooFewMatches) as caught:
        fit_transform(_result(status), model=model)
    message = str(caught.value)
    assert f"got {ok} ok (of 5)" in message
    assert said in message
    assert caught.value.supported == supported


def test_too_few_coincident_matches_support_a_shift_only():
    """Two ok matches at one place determine no rotation."""
    status = ["ok", "ok", "ambiguous", "ambiguous", "ambiguous"]
    points = np.array([[5.0, 5.0]] * 2 + SQUARE[2:].tolist())
    with pytest.raises(ValueError, match="2 support a translation fit"):
        fit_transform(_result(status, points), model="affine")


def test_too_few_points_without_statuses_need_no_refine():
    """Bare points: the count, no 'ok', and no Refine (nothing to match
    again)."""
    with pytest.raises(ValueError) as caught:
        fit_transform(SQUARE[:2], SQUARE[:2], model="affine")
    message = str(caught.value)
    assert "at least 3 matched points, got 2;" in message
    assert "try model='similarity'" in message and "Refine" not in message


def test_a_register_round_with_too_few_matches_names_it_and_the_models():
    """A point outside the template leaves 2 ok matches for an affine
    fit: register says so in the round's words."""
    rng = np.random.default_rng(5)
    base = ndimage.gaussian_filter(rng.normal(size=(120, 130)), 1.5)
    moved = np.roll(base, (3, -5), axis=(0, 1))
    points = [[60.0, 65.5], [40.0, 90.0], [500.0, 5.0]]
    with pytest.raises(TooFewMatches) as caught:
        register(base, moved, points, template_radius=10, search_radius=20)
    message = str(caught.value)
    assert message.startswith("register: round 1: an affine fit needs")
    assert "got 2 ok (of 3); 2 support a similarity or rigid fit" in message
