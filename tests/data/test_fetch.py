"""Finding releases on disk, downloading from a loopback mirror, verifying and unpacking safely."""

from __future__ import annotations

import dataclasses
import re
import socket
import types
import zipfile
from pathlib import Path

import pytest

from embedrec.data import get_release, load_movielens
from embedrec.data import fetch, registry
from embedrec.data.fetch import _unpack, cache_dir, download_release, locate, mirror_url
from embedrec.errors import DataError, DownloadError

ML100K = get_release("ml-100k")


def _release_with_md5(md5: str | None) -> registry.Release:
    return dataclasses.replace(ML100K, md5=md5)


# ---- resolution order ---------------------------------------------------------------------------
@pytest.fixture
def three_copies(tmp_path, tiny_100k, monkeypatch, _hermetic_env):
    """An explicit folder, an $EMBEDREC_DATA tree and a cache, each holding ml-100k."""
    explicit = tiny_100k.write_folder(tmp_path / "explicit" / "ml-100k")
    env = tiny_100k.write_folder(tmp_path / "env" / "ml-100k")
    cached = tiny_100k.write_folder(_hermetic_env / "embedrec" / "ml-100k")
    monkeypatch.setenv("EMBEDREC_DATA", str(tmp_path / "env"))
    return explicit, env, cached


def test_cache_dir_follows_xdg(_hermetic_env):
    assert cache_dir() == _hermetic_env / "embedrec"


def test_mirror_url_gets_a_trailing_slash(monkeypatch):
    assert mirror_url() == registry.BASE_URL
    monkeypatch.setenv("EMBEDREC_MIRROR", "http://127.0.0.1:9/movielens")
    assert mirror_url() == "http://127.0.0.1:9/movielens/"


def test_explicit_path_beats_env_and_cache(three_copies):
    explicit, _, _ = three_copies
    assert locate(ML100K, explicit, download=False) == explicit
    assert locate(ML100K, explicit.parent, download=False) == explicit


def test_env_beats_cache(three_copies):
    _, env, _ = three_copies
    assert locate(ML100K, download=False) == env


def test_cache_is_used_when_env_lacks_the_release(three_copies, tmp_path, monkeypatch):
    _, _, cached = three_copies
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("EMBEDREC_DATA", str(tmp_path / "empty"))
    assert locate(ML100K, download=False) == cached
    monkeypatch.delenv("EMBEDREC_DATA")
    assert locate(ML100K, download=False) == cached


def test_explicit_folder_without_the_release(tmp_path, three_copies):
    (tmp_path / "wrong").mkdir()
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'wrong'}: no u.data for ml-100k")):
        locate(ML100K, tmp_path / "wrong", download=False)


def test_explicit_path_that_does_not_exist(tmp_path):
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'gone'}: no such folder or zip file")):
        locate(ML100K, tmp_path / "gone", download=False)


def test_nothing_local_and_no_download_says_where_it_looked(tmp_path, monkeypatch, _hermetic_env):
    env = tmp_path / "env"
    env.mkdir()
    monkeypatch.setenv("EMBEDREC_DATA", str(env))
    with pytest.raises(DownloadError) as info:
        locate(ML100K, download=False)
    msg = str(info.value)
    assert msg.startswith("ml-100k not found: looked in ")
    assert f"$EMBEDREC_DATA/ml-100k ({env})" in msg
    assert str(_hermetic_env / "embedrec" / "ml-100k") in msg
    assert "downloads are switched off" in msg
    assert "--data PATH (folder or ml-100k.zip)" in msg
    assert "set EMBEDREC_DATA to a folder holding ml-100k/" in msg
    assert "EMBEDREC_MIRROR" in msg


def test_load_movielens_without_download_raises_download_error():
    with pytest.raises(DownloadError, match="ml-latest-small not found: looked in"):
        load_movielens("ml-latest-small", download=False)


# ---- downloading from a loopback mirror ---------------------------------------------------------
def _publish(mirror, zip_bytes: bytes, md5_text: str | None) -> None:
    (mirror.root / "ml-100k.zip").write_bytes(zip_bytes)
    if md5_text is not None:
        (mirror.root / "ml-100k.zip.md5").write_text(md5_text)


def test_download_verifies_and_unpacks(mirror, tiny_100k, tmp_path):
    payload = tiny_100k.zip_bytes()
    md5 = tiny_100k.md5(payload)
    _publish(mirror, payload, f"{md5}  ml-100k.zip\n")
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "cache"
    folder = download_release(_release_with_md5(md5), base=mirror.url, dest_root=dest, retries=2,
                              backoff=0, progress=lambda done, total: seen.append((done, total)))
    assert folder == dest / "ml-100k"
    assert sorted(p.name for p in dest.iterdir()) == ["ml-100k"]  # no .part file, no temp folder
    assert sorted(p.name for p in folder.iterdir()) == ["embedrec-source.txt", "u.data", "u.item"]
    assert (folder / "u.data").read_text() == tiny_100k.data
    assert (folder / "u.item").read_bytes() == tiny_100k.items
    assert (folder / "embedrec-source.txt").read_text() == f"url={mirror.url}ml-100k.zip\nmd5={md5}\n"
    assert seen[-1] == (len(payload), len(payload))
    assert mirror.requested == ["/ml-100k.zip.md5", "/ml-100k.zip"]
    data = load_movielens("ml-100k", folder, download=False)
    assert (len(data), data.n_users, data.n_items) == (5, 3, 3)


def test_release_without_registry_md5_trusts_the_live_md5_file(mirror, tiny_100k, tmp_path):
    payload = tiny_100k.zip_bytes()
    _publish(mirror, payload, f"MD5 (ml-100k.zip) = {tiny_100k.md5(payload).upper()}\n")
    folder = download_release(_release_with_md5(None), base=mirror.url, dest_root=tmp_path / "c",
                              retries=1, backoff=0, trust_mirror=True)
    assert (folder / "u.data").is_file()


def test_load_movielens_downloads_into_the_cache_once(mirror, tiny_100k, monkeypatch, _hermetic_env):
    payload = tiny_100k.zip_bytes()
    md5 = tiny_100k.md5(payload)
    _publish(mirror, payload, md5)
    monkeypatch.setitem(registry.RELEASES, "ml-100k", _release_with_md5(md5))
    monkeypatch.setenv("EMBEDREC_MIRROR", mirror.url)
    data = load_movielens("ml-100k")
    assert len(data) == 5
    assert data.source["path"] == str(_hermetic_env / "embedrec" / "ml-100k" / "u.data")
    assert data.title(2) == "Misérables, Les (1995)"
    n_requests = len(mirror.requested)
    assert len(load_movielens("ml-100k")) == 5  # from the cache this time
    assert len(mirror.requested) == n_requests


def test_corrupt_zip_leaves_nothing_behind(mirror, tiny_100k, tmp_path):
    good = tiny_100k.zip_bytes()
    md5 = tiny_100k.md5(good)
    _publish(mirror, good[: len(good) // 2], md5)  # truncated in transit
    dest = tmp_path / "cache"
    with pytest.raises(DownloadError, match=rf"ml-100k\.zip: md5 [0-9a-f]{{32}} does not match the "
                                            rf"expected {md5}"):
        download_release(_release_with_md5(md5), base=mirror.url, dest_root=dest, retries=2, backoff=0)
    assert list(dest.iterdir()) == []


def test_live_md5_disagreeing_with_registry(mirror, tiny_100k, tmp_path):
    payload = tiny_100k.zip_bytes()
    _publish(mirror, payload, "0" * 32)
    dest = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"says md5 0{32} but embedrec's registry has"):
        download_release(_release_with_md5(tiny_100k.md5(payload)), base=mirror.url, dest_root=dest,
                         retries=1, backoff=0)
    assert list(dest.iterdir()) == []


def test_not_found_on_the_mirror(mirror, tmp_path):
    dest = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"ml-100k\.zip: HTTP Error 404"):
        download_release(_release_with_md5("0" * 32), base=mirror.url, dest_root=dest, retries=2,
                         backoff=0)
    assert list(dest.iterdir()) == []


def test_no_checksum_anywhere(mirror, tiny_100k, tmp_path):
    _publish(mirror, tiny_100k.zip_bytes(), None)
    with pytest.raises(DownloadError, match=r"no checksum known for ml-100k"):
        download_release(_release_with_md5(None), base=mirror.url, dest_root=tmp_path / "c",
                         retries=1, backoff=0)


def test_unreachable_mirror(tmp_path):
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "cache"
    with pytest.raises(DownloadError, match=rf"http://127\.0\.0\.1:{port}/ml-100k\.zip"):
        download_release(_release_with_md5("0" * 32), base=f"http://127.0.0.1:{port}/",
                         dest_root=dest, retries=2, backoff=0)
    assert list(dest.iterdir()) == []


def test_locate_wraps_a_failed_download(mirror, monkeypatch, _hermetic_env):
    monkeypatch.setenv("EMBEDREC_MIRROR", mirror.url)
    slept: list[float] = []  # locate uses the default retries and backoff: do not really wait
    monkeypatch.setattr(fetch, "time", types.SimpleNamespace(sleep=slept.append))
    with pytest.raises(DownloadError, match=r"ml-100k not found: looked in .*; download failed: "
                                            r".*HTTP Error 404.*Provide it with --data PATH"):
        locate(ML100K, download=True)


def test_zip_without_the_release_folder_is_refused(mirror, tiny_100k, tmp_path):
    payload = tiny_100k.zip_bytes(folder="something-else/deeper")
    md5 = tiny_100k.md5(payload)
    _publish(mirror, payload, md5)
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match=r"no ml-100k/u\.data inside"):
        download_release(_release_with_md5(md5), base=mirror.url, dest_root=dest, retries=1, backoff=0)
    assert list(dest.iterdir()) == []


# ---- unpacking ----------------------------------------------------------------------------------
@pytest.mark.parametrize("member", ["../evil", "ml-100k/../../evil", "/abs/evil"])
def test_unpack_refuses_paths_that_escape(tmp_path, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t1\t5\t1\n")
        zf.writestr(member, "gotcha")
    target_parent = tmp_path / "out" / "deep"
    with pytest.raises(DataError, match=re.escape(f"unsafe member path {member!r}")):
        _unpack(archive, ML100K, target_parent / "ml-100k")
    assert list(target_parent.iterdir()) == []  # temporary folder removed, no target
    assert not (tmp_path / "out" / "evil").exists() and not (tmp_path / "evil").exists()


def test_unpack_refuses_a_file_that_is_not_a_zip(tmp_path):
    fake = tmp_path / "fake.zip"
    fake.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="not a valid zip file"):
        _unpack(fake, ML100K, tmp_path / "out" / "ml-100k")
    assert list((tmp_path / "out").iterdir()) == []


def test_unpack_replaces_an_old_copy(tmp_path, tiny_100k):
    archive = tmp_path / "ml-100k.zip"
    archive.write_bytes(tiny_100k.zip_bytes())
    target = tmp_path / "out" / "ml-100k"
    target.mkdir(parents=True)
    (target / "stale.txt").write_text("old")
    assert _unpack(archive, ML100K, target) == target
    assert sorted(p.name for p in target.iterdir()) == ["u.data", "u.item"]


def test_local_zip_is_unpacked_into_the_cache(tmp_path, tiny_100k, _hermetic_env):
    archive = tmp_path / "mine.zip"
    payload = tiny_100k.zip_bytes()
    archive.write_bytes(payload)
    folder = locate(ML100K, archive, download=False)
    assert folder == _hermetic_env / "embedrec" / "unpacked" / f"ml-100k-{tiny_100k.md5(payload)[:12]}"
    assert (folder / "u.data").read_text() == tiny_100k.data
    assert locate(ML100K, archive, download=False) == folder  # reused


def test_a_plain_file_is_not_a_release(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match="no such folder or zip file"):
        locate(ML100K, path, download=False)


def test_paths_are_strings_or_paths(tmp_path, tiny_100k):
    folder = tiny_100k.write_folder(tmp_path / "ml-100k")
    assert locate(ML100K, str(folder), download=False) == Path(folder)
