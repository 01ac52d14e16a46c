"""The README's demo runs without a viewer and writes its table."""

import csv

import pytest

pytest.importorskip("skimage")

from napari_normxcorr import demo


def test_demo_prints_matches_and_writes_csv(tmp_path, capsys):
    assert demo.main(["--headless", "--output", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "matches ok" in printed
    rows = list(csv.DictReader(open(tmp_path / "matches.csv")))
    assert len(rows) == 12
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= 6
    # Rectified pair: ok matches stay on their row.
    for row in ok:
        assert abs(float(row["offset-0"])) < 3
