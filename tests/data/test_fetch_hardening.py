"""Issue 10 items 6, 7, 23, 24: stale temporaries swept, zip bombs refused, only a release's
files extracted, bad mirror URLs refused in one line, and no download accepted unchecked."""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile

import pytest

from embedrec import io as eio
from embedrec.data import fetch, get_release
from embedrec.data.fetch import _unpack, check_url, download_release, mirror_url
from embedrec.errors import DataError, DownloadError
from tests.conftest import real_data_dir

ML100K = get_release("ml-100k")


def _zip(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


# ---- item 7: zip bombs, extra members -----------------------------------------------------------
def test_a_zip_bomb_is_refused_before_extracting(tmp_path, tiny_100k):
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_zip({"ml-100k/u.data": b"1\t1\t5\t1\n" + b"0" * (20 << 20),
                           "ml-100k/u.item": tiny_100k.items}))
    assert bomb.stat().st_size < 200_000  # 20 MB inside
    with pytest.raises(DataError, match=r"u\.data expands 20,971,528 bytes from .* zip bomb"):
        _unpack(bomb, ML100K, tmp_path / "out" / "ml-100k")
    assert list((tmp_path / "out").iterdir()) == []


def test_total_size_is_capped(tmp_path, tiny_100k, monkeypatch):
    archive = tmp_path / "a.zip"
    archive.write_bytes(tiny_100k.zip_bytes())
    monkeypatch.setattr(fetch, "MAX_UNPACKED", 100)
    with pytest.raises(DataError, match="over the limit of 100"):
        _unpack(archive, ML100K, tmp_path / "out" / "ml-100k")


def test_only_the_release_files_are_extracted(tmp_path, tiny_100k):
    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip({"ml-100k/u.data": tiny_100k.data.encode(),
                              "ml-100k/u.item": tiny_100k.items,
                              "ml-100k/huge.bin": b"\0" * (5 << 20),
                              "ml-100k/sub/evil.sh": b"rm -rf /",
                              "other/u.data": b"x"}))
    target = _unpack(archive, ML100K, tmp_path / "out" / "ml-100k")
    assert sorted(p.name for p in target.iterdir()) == ["u.data", "u.item"]
    assert (target / "u.data").read_text() == tiny_100k.data


def test_a_member_larger_than_declared_is_cut(tmp_path):
    from embedrec.data.fetch import _extract

    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip({"u.data": b"x" * 1000}, zipfile.ZIP_STORED))
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("u.data")
        info.file_size = 10  # a lying header
        with pytest.raises((DataError, zipfile.BadZipFile)):
            _extract(zf, info, tmp_path / "u.data")


# ---- item 6: stale temporaries ------------------------------------------------------------------
def test_a_download_sweeps_stale_part_files_and_temp_folders(mirror, tiny_100k, tmp_path):
    payload = tiny_100k.zip_bytes()
    (mirror.root / "ml-100k.zip").write_bytes(payload)
    dest = tmp_path / "cache"
    dest.mkdir()
    stale_part, stale_dir = dest / ".ml-100k-dead.zip.part", dest / ".ml-100k-dead"
    fresh_part = dest / ".ml-100k-live.zip.part"
    stale_part.write_bytes(b"half")
    stale_dir.mkdir()
    fresh_part.write_bytes(b"another process, still running")
    past = eio.PROCESS_START - 60
    for p in (stale_part, stale_dir):
        os.utime(p, (past, past))
    release = dataclasses.replace(ML100K, md5=tiny_100k.md5(payload))
    download_release(release, base=mirror.url, dest_root=dest, retries=1, backoff=0)
    assert sorted(p.name for p in dest.iterdir()) == [".ml-100k-live.zip.part", "ml-100k"]


def test_an_interrupted_download_removes_its_part_file(mirror, tiny_100k, tmp_path, monkeypatch):
    payload = tiny_100k.zip_bytes()
    (mirror.root / "ml-100k.zip").write_bytes(payload)
    real = fetch._fetch

    def interrupted(url, dest, progress, timeout=60.0):
        if url.endswith(".zip"):
            dest.write_bytes(payload[:10])
            raise KeyboardInterrupt
        return real(url, dest, progress, timeout)

    monkeypatch.setattr(fetch, "_fetch", interrupted)
    dest = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        download_release(dataclasses.replace(ML100K, md5=tiny_100k.md5(payload)),
                         base=mirror.url, dest_root=dest, retries=1, backoff=0)
    assert list(dest.iterdir()) == []


# ---- item 23: mirror URLs -----------------------------------------------------------------------
@pytest.mark.parametrize("url", ["not a url", "ftp://host/", "http://", "https://h:70000/", "//x"])
def test_bad_mirror_urls_are_refused(url, monkeypatch):
    monkeypatch.setenv("EMBEDREC_MIRROR", url)
    with pytest.raises(DownloadError, match="EMBEDREC_MIRROR"):
        mirror_url()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/m", "https://files.example/x/",
                                 "file:///srv/mirror/"])
def test_good_mirror_urls_pass(url):
    assert check_url(url, "mirror") == url


# ---- item 24: no unchecked downloads ------------------------------------------------------------
def test_a_release_without_any_checksum_needs_trust(mirror, tiny_100k, tmp_path, monkeypatch):
    payload = tiny_100k.zip_bytes()
    (mirror.root / "ml-100k.zip").write_bytes(payload)
    (mirror.root / "ml-100k.zip.md5").write_text(tiny_100k.md5(payload))
    release = dataclasses.replace(ML100K, md5=None)
    with pytest.raises(DownloadError, match="EMBEDREC_TRUST_MIRROR=1"):
        download_release(release, base=mirror.url, dest_root=tmp_path / "a", retries=1,
                         backoff=0)
    assert not (tmp_path / "a" / "ml-100k").exists()
    monkeypatch.setenv("EMBEDREC_TRUST_MIRROR", "1")
    folder = download_release(release, base=mirror.url, dest_root=tmp_path / "b", retries=1,
                              backoff=0)
    assert (folder / "u.data").read_text() == tiny_100k.data


def test_pinned_file_checksums_refuse_a_hostile_mirror(mirror, tiny_100k, tmp_path):
    import hashlib

    good = hashlib.md5(tiny_100k.data.encode()).hexdigest()
    release = dataclasses.replace(ML100K, md5=None, file_md5=(("u.data", good),))
    hostile = _zip({"ml-100k/u.data": b"1\t1\t5\t1\n", "ml-100k/u.item": tiny_100k.items})
    (mirror.root / "ml-100k.zip").write_bytes(hostile)
    (mirror.root / "ml-100k.zip.md5").write_text(tiny_100k.md5(hostile))  # consistent, but evil
    with pytest.raises(DownloadError, match=rf"u\.data has md5 [0-9a-f]{{32}} but .* knows has {good}"):
        download_release(release, base=mirror.url, dest_root=tmp_path / "a", retries=1,
                         backoff=0)
    assert list((tmp_path / "a").iterdir()) == []
    honest = tiny_100k.zip_bytes()
    (mirror.root / "ml-100k.zip").write_bytes(honest)
    (mirror.root / "ml-100k.zip.md5").write_text(tiny_100k.md5(honest))
    folder = download_release(release, base=mirror.url, dest_root=tmp_path / "b", retries=1,
                              backoff=0)
    assert (folder / "u.data").read_text() == tiny_100k.data


def test_ml_latest_small_is_pinned_to_the_known_release():
    release = get_release("ml-latest-small")
    assert release.md5 is None
    assert dict(release.file_md5) == {"ratings.csv": "325a6f09399d1c45671f187505e1a100",
                                      "movies.csv": "ed94fab72b62442ef8150d9446e000d6"}


REAL_DATA = real_data_dir()  # read at import: the data tests' fixtures hide $EMBEDREC_DATA


def test_the_pinned_checksums_match_the_shared_copy():
    root = REAL_DATA
    if root is None:
        pytest.skip("EMBEDREC_DATA does not hold ml-latest-small")
    for name, md5 in get_release("ml-latest-small").file_md5:
        assert fetch.md5_of(root / "ml-latest-small" / name) == md5
