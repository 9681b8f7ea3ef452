"""Atomic file writes, so an interrupted write never leaves a half-written file behind."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from fcnedge.runtime.errors import InputError, mention


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success it is renamed over `path`.

    The rename is atomic on POSIX, so readers see either the old file or the complete new one.
    On an exception (or a kill) the temporary file is removed or left with a `.tmp` suffix that
    no reader looks at.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary keeps the target's suffix: some writers (Keras, OpenCV) pick the format by it.
    suffixes = "".join(target.suffixes)  # all of them: Keras reads '.weights.h5' as a format
    stem = target.name[: len(target.name) - len(suffixes)] if suffixes else target.name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffixes}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` atomically and returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` (UTF-8) to `path` atomically and returns the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Writes `obj` as indented JSON to `path` atomically and returns the path."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_image_atomic(path: str | os.PathLike, image) -> Path:
    """Encodes `image` with OpenCV by the path's extension and writes it atomically."""
    import cv2

    suffix = Path(path).suffix or ".png"
    ok, encoded = cv2.imencode(suffix, image)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode a {suffix} image of shape {image.shape}")
    return write_bytes_atomic(path, encoded.tobytes())


def safe_file_part(name: str) -> str:
    """`name` fit to be part of a file name: letters, digits, '.', '_' and '-' kept, anything
    else (a '/' or '..' from a label file above all) replaced by '_'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return cleaned or "_"


def check_writable_location(path: str | os.PathLike, param: str, folder: bool = False) -> Path:
    """Checks, before any work, that `path` can be written later: a file path must not be a
    folder, a folder path must not be a file, and the nearest existing folder on the way must
    take a new file. Nothing is created.

    Raises:
      InputError: about `param`, naming the path and what is in the way.
    """
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise InputError.about(param, path, f"is a {'file' if folder else 'folder'}; expected "
                               f"{'a folder' if folder else 'a file name'}")
    parent = path if folder and path.is_dir() else path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError.about(param, path, f"{parent} is a file, not a folder")
    try:
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as err:
        raise InputError.about(param, path,
                               f"cannot write in {parent} ({err.strerror})") from err
    return path


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def prepare_output_folder(folder: str | os.PathLike, overwrite: bool, param: str = "out",
                          hint: str = f"pass {mention('overwrite')} to replace them",
                          inputs: tuple = (), owned_marker: str | None = None) -> Path:
    """Creates an empty output folder; one holding files is replaced only with `overwrite`.

    Replacing is refused where it could lose what the user made rather than what this command
    wrote: when one of `inputs` (paths the command reads; None entries are skipped) lies inside
    the folder, or when `owned_marker` is given and the folder lacks that file (it is not an
    earlier output of the same command).

    Raises:
      InputError: the folder holds files and `overwrite` is False or refused (nothing is
        touched), or it cannot be created.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError.about(param, folder, "is a file; expected a folder to write into")
    if folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise InputError.about(param, folder, f"folder exists and holds files; {hint}")
        for source in inputs:
            if source and _inside(Path(source), folder):
                raise InputError.about(param, folder, f"{mention('overwrite')} would delete "
                                       f"{source}, which this command reads; write to another "
                                       "folder")
        if owned_marker and not (folder / owned_marker).is_file():
            raise InputError.about(param, folder, f"{mention('overwrite')} replaces only an "
                                   f"earlier output of this command (a folder with "
                                   f"{owned_marker}); this one has none, so it is left alone: "
                                   "write to another folder")
        shutil.rmtree(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-")
        probe.close()
    except OSError as err:
        raise InputError.about(param, folder, f"cannot write there ({err.strerror})") from err
    return folder
