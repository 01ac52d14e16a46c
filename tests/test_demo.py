"""The README's demo: headless run writes a table and a real screenshot."""

import csv

import numpy as np
import pytest

pytest.importorskip("skimage")
pytest.importorskip("napari")

from napari_normxcorr import demo


def test_headless_demo_writes_csv_and_screenshot(tmp_path, capsys, qapp):
    import imageio.v3 as iio

    assert demo.main(["--headless", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "matches ok" in printed
    assert str(tmp_path / "screenshot.png") in printed
    with open(tmp_path / "matches.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 12
    assert sum(r["status"] == "ok" for r in rows) >= 6
    picture = iio.imread(tmp_path / "screenshot.png")
    assert picture.ndim == 3 and picture.shape[0] > 300
    # A real rendering: many distinct colours, not a black canvas.
    colours = np.unique(picture[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 1000
