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


def test_built_wheel_has_the_manifest_licence_and_hub_metadata(tmp_path):
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
        metadata = next(
            archive.read(n).decode()
            for n in archive.namelist()
            if n.endswith(".dist-info/METADATA")
        )
        licences = [n for n in archive.namelist() if n.endswith("/LICENSE")]
    assert manifest == (ROOT / "napari.yaml").read_text()
    assert "napari_normxcorr:napari.yaml" in entry_points
    assert "napari_normxcorr.cli:main" in entry_points
    assert len(licences) == 1
    for url in ("Source", "Issues", "Documentation"):
        assert f"Project-URL: {url}, https://" in metadata
    for classifier in (
        "License :: OSI Approved :: BSD License",
        "Development Status :: ",
        "Programming Language :: Python :: 3.11",
        "Operating System :: OS Independent",
    ):
        assert f"Classifier: {classifier}" in metadata
