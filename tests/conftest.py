"""Shared fixtures; tests that need napari's canvas need a display."""

import os

import numpy as np
import pytest

from helpers import SHIFT, texture
from napari_normxcorr.core._compiled import enabled, numpy_only

# napari's viewer and Qt's application need an X server (Xvfb in CI).
_GUI_FIXTURES = {"make_napari_viewer", "qtbot", "qapp"}


def pytest_runtest_setup(item):
    if _GUI_FIXTURES & set(item.fixturenames) and not os.environ.get(
        "DISPLAY"
    ):
        pytest.skip("needs a display: run the tests with `make test` (Xvfb)")


@pytest.fixture
def viewer_with_pair(make_napari_viewer):
    """A viewer with 'before', 'after' (rolled by SHIFT) and three 'pois'."""
    viewer = make_napari_viewer()
    base = texture((160, 180))
    viewer.add_image(base, name="before")
    viewer.add_image(np.roll(base, SHIFT, axis=(0, 1)), name="after")
    viewer.add_points([[60.0, 70.0], [100.5, 120.25], [40, 140]], name="pois")
    return viewer


@pytest.fixture(params=["compiled", "numpy"])
def kernel_path(request):
    """The test once with the compiled kernels (numba installed) and once
    with the numpy paths they stand in for."""
    if request.param == "numpy":
        with numpy_only():
            yield request.param
    elif not enabled():
        pytest.skip("numba is not installed (the fast extra)")
    else:
        yield request.param
