"""Files: images in the formats napari's own dependencies read, points CSV."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np


class InputError(Exception):
    """A file that cannot be used, with the reason for the user."""


def check_input_file(path: Path) -> None:
    """Raise unless `path` is a file to read."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")


def read_image(path: Path) -> np.ndarray:
    """Read .npy, TIFF, or any format imageio reads (PNG, JPEG, ...)."""
    check_input_file(path)
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path)
        import imageio.v3 as iio

        return iio.imread(path)
    except Exception as error:
        raise InputError(
            f"{path}: cannot read it as an image ({error})"
        ) from error


def open_tiff(path: Path) -> Any:
    """A TIFF image, read only where needed when its layout allows.

    Uncompressed and contiguous: a numpy memmap of the file. Tiled: a
    `TiffTiles` array that reads (and a cluster's workers reopen) the
    tiles under each window. Otherwise (compressed strips, whose one
    chunk is the whole page) it is read whole, as `read_image` does.
    """
    check_input_file(path)
    import tifffile

    try:
        return tifffile.memmap(path, mode="r")
    except Exception:  # compressed, or not contiguous: not mappable
        pass
    try:
        tiles = TiffTiles(str(path))
    except Exception:  # no zarr, or a layout tifffile cannot view
        return read_image(path)
    if tiles.chunks == tiles.shape:
        return read_image(path)
    return tiles


class TiffTiles:
    """The first image of a tiled TIFF as a lazy array of its tiles
    (tifffile's zarr view), pickled as its path: whoever unpickles it
    reopens the file, so a cluster never ships its pixels."""

    def __init__(self, path: str):
        import tifffile
        import zarr

        self.path = path
        opened = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
        # A pyramid opens as a group: its full resolution.
        array: Any = opened["0"] if isinstance(opened, zarr.Group) else opened
        self._array = array
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.chunks = tuple(int(c) for c in array.chunks)

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self._array[index])

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (TiffTiles, (self.path,))


def open_zarr(path: Path) -> Any:
    """A zarr array, opened read-only: windows are read when needed.

    A group (an OME-Zarr image, say) gives its full-resolution array
    ``0``; any other group must be named down to the array.
    """
    if not path.exists():
        raise InputError(f"{path}: no such zarr store")
    try:
        import zarr
    except ImportError:
        raise InputError(
            f"{path}: reading zarr needs pip install "
            "napari-normxcorr[distributed]"
        ) from None
    try:
        store = zarr.open(str(path), mode="r")
    except Exception as error:
        raise InputError(f"{path}: cannot open it as zarr ({error})") from None
    if isinstance(store, zarr.Group):
        if "0" in store:
            return store["0"]
        names = ", ".join(sorted(store.array_keys())) or "none"
        raise InputError(
            f"{path}: is a zarr group; name one of its arrays ({names}), "
            f"e.g. {path}/<array>"
        )
    return store


def read_points(
    path: Path, *, finite: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Points from napari's CSV: columns ``axis-0, axis-1, ...``.

    NaN and infinite coordinates are read as they are (match_points
    flags their rows) unless `finite`; a missing or non-numeric one (and
    with `finite` a non-finite one) is an InputError naming its line and
    column, and so is a header whose axis columns are not ``axis-0 ..
    axis-<D-1>``, each once.
    """
    header, rows = _csv_rows(path)
    axes = _axis_columns(path, header)
    if not rows or not axes:
        raise InputError(
            f"{path}: expected napari's points CSV with a header "
            "'index,axis-0,axis-1,...' and one row per point"
        )
    columns = [header.index(a) for a in axes]
    points = np.empty((len(rows), len(axes)))
    for k, (line, row) in enumerate(rows):
        if len(row) > len(header):
            raise InputError(
                f"{path}, line {line}: {len(row)} fields for the header's "
                f"{len(header)}"
            )
        for j, (axis, column) in enumerate(zip(axes, columns)):
            points[k, j] = _coordinate(path, line, axis, row, column)
            if finite and not np.isfinite(points[k, j]):
                raise InputError(
                    f"{path}, line {line}, column {axis}: {row[column]!r} "
                    "is not a position (every point needs one here)"
                )
    return points, axes


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header of a CSV and its non-blank rows with their line numbers.

    UTF-8 (with or without a byte order mark: spreadsheet programs put
    one before axis-0), else Latin-1, as older spreadsheets save it.
    """
    check_input_file(path)
    for encoding in ("utf-8-sig", "latin-1"):
        try:
            with open(path, newline="", encoding=encoding) as stream:
                reader = csv.reader(stream)
                header = [h.strip() for h in next(reader, [])]
                # Blank lines hold nothing.
                rows = [(reader.line_num, r) for r in reader if r]
            break
        except UnicodeDecodeError:
            continue  # Latin-1 decodes any byte: the loop ends there
        except csv.Error as error:
            raise InputError(
                f"{path}: not a CSV text file ({error})"
            ) from None
    return header, rows


def _axis_columns(path: Path, header: list[str]) -> list[str]:
    """The header's ``axis-<k>`` columns in axis order, or an InputError
    when they are misnamed, repeated or leave an axis out."""
    named = [h for h in header if h.startswith("axis-")]
    numbers = []
    for name in named:
        number = name.removeprefix("axis-")
        if not number.isdigit():
            raise InputError(
                f"{path}: column {name!r} is not axis-<number> (napari "
                "names them axis-0, axis-1, ...)"
            )
        numbers.append(int(number))
    twice = sorted({n for n in numbers if numbers.count(n) > 1})
    if twice:
        raise InputError(
            f"{path}: the header has column axis-{twice[0]} more than once"
        )
    if sorted(numbers) != list(range(len(numbers))):
        raise InputError(
            f"{path}: the header's axis columns are {named}; give axis-0 "
            f"to axis-{len(named) - 1}, each once"
        )
    return sorted(named, key=lambda h: int(h.removeprefix("axis-")))


def _coordinate(
    path: Path, line: int, axis: str, row: list[str], column: int
) -> float:
    """One coordinate of a points CSV, or an InputError saying where."""
    if column >= len(row):
        raise InputError(
            f"{path}, line {line}: no value in column {axis} (the row has "
            f"{len(row)} of the header's fields)"
        )
    try:
        return float(row[column])
    except ValueError:
        raise InputError(
            f"{path}, line {line}, column {axis}: {row[column]!r} is not a "
            "number"
        ) from None


def check_output_file(path: Path, option: str) -> None:
    """Raise unless a file can be written at `path` (before any work)."""
    with _naming(option, path):
        _check_output_file(path, option)


def _check_output_file(path: Path, option: str) -> None:
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory, not a file name")
    if not path.parent.is_dir():
        raise InputError(
            f"{option} {path}: the directory {path.parent} does not exist"
        )
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"{option} {path}: {path.parent} is not writable")


def check_output_directory(path: Path, option: str) -> None:
    """Raise unless `path` is, or can be made, a writable directory."""
    with _naming(option, path):
        _check_output_directory(path, option)


def _check_output_directory(path: Path, option: str) -> None:
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: exists and is not a directory")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise InputError(f"{option} {path}: {existing} is not writable")


def check_distinct(
    outputs: list[tuple[str, Path]], inputs: list[Path]
) -> None:
    """Raise when two outputs, or an output and an input, are one file:
    writing one would destroy the other."""
    for k, (option, path) in enumerate(outputs):
        for other, earlier in outputs[:k]:
            if _same_file(path, earlier):
                raise InputError(
                    f"{option} {path}: is also {other}; give each output "
                    "its own file"
                )
        for source in inputs:
            if _same_file(path, source):
                raise InputError(
                    f"{option} {path}: is an input file; writing it would "
                    "destroy it"
                )


def _same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name one file (links and ``..`` resolved)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): not the same
        return False


class StagedOutputs:
    """Output files written whole or not at all.

    Each output is first written under a hidden name beside its target
    (a device such as /dev/null: in the temporary folder); :meth:`commit`
    moves them all into place once every one is written. An error or
    Ctrl-C before that leaves no partial file and changes no file.
    """

    def __init__(self) -> None:
        # (option, target, staged) of each file and folder.
        self._files: list[tuple[str, Path, Path]] = []
        self._folders: list[tuple[str, Path, Path]] = []

    def write(
        self, target: Path, option: str, writer: Callable[[Path], object]
    ) -> None:
        """Call ``writer(path)`` to write `target` (of `option`) staged."""
        special = target.exists() and not target.is_file()
        handle, name = tempfile.mkstemp(
            prefix=f".{target.name}.",
            suffix=target.suffix,
            dir=tempfile.gettempdir() if special else target.parent,
        )
        os.close(handle)
        self._files.append((option, target, Path(name)))
        with _naming(option, target):
            writer(Path(name))

    def write_folder(
        self, target: Path, option: str, writer: Callable[[Path], object]
    ) -> None:
        """Call ``writer(folder)`` to fill the folder `target`, staged."""
        existing = next(p for p in (target, *target.parents) if p.exists())
        staged = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", dir=existing)
        )
        self._folders.append((option, target, staged))
        with _naming(option, target):
            writer(staged)

    def commit(self) -> None:
        """Move every staged output into place: devices first, as they
        are what may still refuse (/dev/full)."""
        files = sorted(self._files, key=lambda f: f[1].is_file())
        for option, target, staged in files:
            with _naming(option, target):
                if target.exists() and not target.is_file():
                    with open(staged, "rb") as source:
                        with open(target, "wb") as sink:
                            shutil.copyfileobj(source, sink)
                else:
                    # mkstemp makes files only their owner may read.
                    os.chmod(staged, _new_file_mode(target))
                    os.replace(staged, target)
        for option, target, staged in self._folders:
            with _naming(option, target):
                target.mkdir(parents=True, exist_ok=True)
                for item in staged.iterdir():
                    os.chmod(item, _new_file_mode(target / item.name))
                    os.replace(item, target / item.name)

    def discard(self) -> None:
        """Remove whatever is still staged."""
        for _, _, staged in self._files:
            staged.unlink(missing_ok=True)
        for _, _, staged in self._folders:
            shutil.rmtree(staged, ignore_errors=True)


@contextmanager
def staged_outputs() -> Iterator[StagedOutputs]:
    """Outputs written in the block, put in place only if it completes."""
    outputs = StagedOutputs()
    try:
        yield outputs
        outputs.commit()
    finally:
        outputs.discard()


@contextmanager
def _naming(option: str, target: Path) -> Iterator[None]:
    """OSErrors as an InputError naming the output (not a staged name)."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or str(error)
        raise InputError(
            f"{option} {target}: cannot write it ({reason})"
        ) from None


def _new_file_mode(target: Path) -> int:
    """The permissions `target` has, or a new file would get."""
    if target.is_file():
        return target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_columns(
    path: str | os.PathLike[str], columns: Mapping[str, Iterable[object]]
) -> None:
    """Write equal-length columns as CSV, header first."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))
