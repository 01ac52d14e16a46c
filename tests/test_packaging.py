"""The npe2 manifest is valid and ships inside the package."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_validates_for_the_installed_package():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_distribution("napari-normxcorr")
    assert manifest.name == "napari-normxcorr"
    manifest.validate_imports()
    widgets = [w.display_name for w in manifest.contributions.widgets]
    assert widgets == ["Match points (NCC)"]
    menus = manifest.contributions.menus
    assert "napari/layers/register" in menus


def test_built_wheel_contains_the_manifest(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        manifest = archive.read("napari_normxcorr/napari.yaml").decode()
        entry_points = next(
            archive.read(n).decode()
            for n in archive.namelist()
            if n.endswith("entry_points.txt")
        )
    assert manifest == (ROOT / "napari.yaml").read_text()
    assert "napari_normxcorr:napari.yaml" in entry_points
