"""Find a release on disk, or download it, verify its md5 and unpack it atomically.

Look-up order: an explicit path, ``$EMBEDREC_DATA/<name>``, the cache folder
(``$XDG_CACHE_HOME/embedrec`` or ``~/.cache/embedrec``), then a download from the mirror
(``$EMBEDREC_MIRROR`` or GroupLens). A failed or corrupt download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from embedrec.data.registry import BASE_URL, LICENCE, Release
from embedrec.errors import DataError, DownloadError
from embedrec.io import sweep_stale

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)
_MD5_TOKEN = re.compile(r"\b([0-9a-fA-F]{32})\b")


def cache_dir() -> Path:
    """The folder where downloaded releases are kept."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "embedrec"


def mirror_url() -> str:
    """The base URL releases are downloaded from: ``$EMBEDREC_MIRROR`` or GroupLens."""
    url = os.environ.get("EMBEDREC_MIRROR") or BASE_URL
    check_url(url, "EMBEDREC_MIRROR")
    return url if url.endswith("/") else url + "/"


def check_url(url: str, what: str) -> str:
    """Refuse anything but an http(s) or file URL, with a one-line error."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        raise DownloadError(f"{what} {url!r} is not a valid URL ({exc})") from None
    if parts.scheme in ("http", "https") and parts.hostname:
        return url
    if parts.scheme == "file" and parts.path:
        return url
    raise DownloadError(f"{what} {url!r} is not a URL: expected http://, https:// or file://")


def trust_mirror_default() -> bool:
    return os.environ.get("EMBEDREC_TRUST_MIRROR", "").strip().lower() in ("1", "true", "yes")


def md5_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _release_dir(candidate: Path, release: Release) -> Path | None:
    """``candidate`` itself or its release sub-folder, whichever holds the ratings file."""
    for folder in (candidate, candidate / release.folder, candidate / release.name):
        if (folder / release.ratings.file).is_file():
            return folder
    return None


def locate(
    release: Release,
    data: str | Path | None = None,
    *,
    download: bool = True,
    progress: ProgressFn | None = None,
    trust_mirror: bool | None = None,
) -> Path:
    """Return the folder holding ``release``'s files, downloading it if needed.

    ``trust_mirror`` (default: ``$EMBEDREC_TRUST_MIRROR``) accepts a download whose checksum
    embedrec cannot check against one it knows (the mirror's own ``.md5`` is then trusted).
    """
    looked: list[str] = []
    if data is not None:
        path = Path(data).expanduser()
        if path.is_file() and zipfile.is_zipfile(path):
            return _unpack_local_zip(path, release)
        if path.is_dir():
            found = _release_dir(path, release)
            if found:
                return found
            raise DataError(
                f"{path}: no {release.ratings.file} for {release.name} in this folder "
                f"(nor in {release.folder}/ below it)"
            )
        raise DataError(f"{path}: no such folder or zip file")
    env = os.environ.get("EMBEDREC_DATA")
    if env:
        for sub in dict.fromkeys((release.name, release.folder)):
            found = _release_dir(Path(env) / sub, release)
            if found:
                return found
        looked.append(f"$EMBEDREC_DATA/{release.name} ({env})")
    cached = _release_dir(cache_dir() / release.name, release)
    if cached:
        return cached
    looked.append(str(cache_dir() / release.name))
    if not download:
        raise DownloadError(_missing_message(release, looked, "downloads are switched off"))
    try:
        return download_release(release, progress=progress, trust_mirror=trust_mirror)
    except DownloadError as exc:
        raise DownloadError(_missing_message(release, looked, str(exc))) from exc


def _missing_message(release: Release, looked: list[str], why: str) -> str:
    return (
        f"{release.name} not found: looked in {', '.join(looked)}; download failed: {why}. "
        f"Provide it with --data PATH (folder or {release.name}.zip), set EMBEDREC_DATA to a "
        f"folder holding {release.name}/, or set EMBEDREC_MIRROR to a reachable mirror"
    )


def _fetch(url: str, dest: Path, progress: ProgressFn | None, timeout: float = 60.0) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
        total = resp.headers.get("Content-Length")
        total_n = int(total) if total and total.isdigit() else None
        done = 0
        while block := resp.read(1 << 20):
            out.write(block)
            done += len(block)
            if progress:
                progress(done, total_n)


def _with_retries(what: str, fn: Callable[[], None], retries: int, backoff: float) -> None:
    for attempt in range(1, retries + 1):
        try:
            fn()
            return
        except ValueError as exc:  # urllib: unknown url type and the like
            raise DownloadError(f"{what}: {exc}") from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            client_error = isinstance(exc, urllib.error.HTTPError) and 400 <= exc.code < 500
            if attempt == retries or client_error:  # a 404 will not go away by retrying
                raise DownloadError(f"{what}: {exc}") from exc
            log.warning("%s failed (%s), retry %d of %d", what, exc, attempt, retries - 1)
            time.sleep(backoff * attempt)


def expected_md5(release: Release, base: str, retries: int = 3, backoff: float = 1.0,
                 trust_mirror: bool = False) -> str:
    """The md5 to check the zip against: the registry's, confirmed by the live ``.md5`` file.

    A release without a registry md5 is checked against the mirror's ``.md5`` (to catch a
    damaged transfer) and, after unpacking, against the pinned md5 of its files; one with
    neither is refused unless ``trust_mirror``.
    """
    url = f"{base}{release.name}.zip.md5"
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "md5"
        try:
            _with_retries(url, lambda: _fetch(url, target, None), retries, backoff)
            match = _MD5_TOKEN.search(target.read_text("ascii", errors="replace"))
        except DownloadError:
            match = None
    live = match.group(1).lower() if match else None
    if release.md5 and live and live != release.md5:
        raise DownloadError(
            f"{url} says md5 {live} but embedrec's registry has {release.md5} for {release.name}"
        )
    md5 = release.md5 or live
    if md5 is None:
        raise DownloadError(f"no checksum known for {release.name} and {url} is unreachable")
    if release.md5 is None and not release.file_md5 and not trust_mirror:
        raise DownloadError(
            f"embedrec knows no checksum for {release.name}, so it cannot check what {base} "
            "serves; set EMBEDREC_TRUST_MIRROR=1 (or pass --trust-mirror) to accept the "
            "mirror's own .md5")
    return md5


def download_release(
    release: Release,
    *,
    base: str | None = None,
    dest_root: Path | None = None,
    progress: ProgressFn | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    trust_mirror: bool | None = None,
) -> Path:
    """Download ``release`` into the cache, check its md5 and unpack it; return its folder.

    An interrupted download (Ctrl-C, SIGTERM) removes its ``.part`` file; those a killed
    process left behind are removed by the next download.
    """
    base = check_url(base, "mirror") if base else mirror_url()
    trust = trust_mirror_default() if trust_mirror is None else trust_mirror
    root = dest_root or cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    sweep_stale(root, (f".{release.name}-*.zip.part", f".{release.name}-*"))
    md5 = expected_md5(release, base, retries, backoff, trust_mirror=trust)
    url = f"{base}{release.name}.zip"
    log.info("downloading %s from %s. %s", release.name, url, LICENCE)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{release.name}-", suffix=".zip.part", dir=root)
    os.close(fd)
    tmp_zip = Path(tmp_name)
    try:
        _with_retries(url, lambda: _fetch(url, tmp_zip, progress), retries, backoff)
        got = md5_of(tmp_zip)
        if got != md5:
            raise DownloadError(f"{url}: md5 {got} does not match the expected {md5}")
        final = _unpack(tmp_zip, release, root / release.name,
                        check_files=release.file_md5 and not trust)
        (final / "embedrec-source.txt").write_text(f"url={url}\nmd5={md5}\n")
        return final
    finally:
        tmp_zip.unlink(missing_ok=True)


def _unpack_local_zip(path: Path, release: Release) -> Path:
    md5 = md5_of(path)
    if release.md5 and md5 != release.md5:
        log.warning("%s: md5 %s differs from the registry's %s", path, md5, release.md5)
    target = cache_dir() / "unpacked" / f"{release.name}-{md5[:12]}"
    found = _release_dir(target, release)
    return found if found else _unpack(path, release, target)


MAX_UNPACKED = 8 << 30  # bytes: ml-32m's files are about 0.9 GB
MAX_RATIO = 100  # uncompressed / compressed size of a member; MovieLens files are about 3 to 6
RATIO_FLOOR = 1 << 20  # members smaller than this are not ratio-checked


def _members(zf: zipfile.ZipFile, zip_path: Path, release: Release) -> list[zipfile.ZipInfo]:
    """The members a release needs (its ratings and items files), after the safety checks."""
    names = zf.namelist()
    for member in names:  # refuse absolute paths and ../ escapes anywhere in the archive
        parts = member.replace("\\", "/").split("/")
        if member.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise DataError(f"{zip_path}: unsafe member path {member!r}")
    infos = {info.filename: info for info in zf.infolist()}
    for prefix in ("", f"{release.folder}/", f"{release.name}/"):
        if f"{prefix}{release.ratings.file}" in infos:
            wanted = [infos[f"{prefix}{f}"] for f in (release.ratings.file, release.items.file)
                      if f"{prefix}{f}" in infos]
            break
    else:
        raise DataError(f"{zip_path}: no {release.folder}/{release.ratings.file} inside")
    total = sum(info.file_size for info in wanted)
    if total > MAX_UNPACKED:
        raise DataError(f"{zip_path}: would unpack {total:,} bytes, over the limit of "
                        f"{MAX_UNPACKED:,}")
    for info in wanted:
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise DataError(f"{zip_path}: {info.filename} expands {info.file_size:,} bytes from "
                            f"{info.compress_size:,} (over {MAX_RATIO}x): refusing a zip bomb")
    return wanted


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> None:
    """Copy one member, never writing more than its declared size."""
    left = info.file_size
    with zf.open(info) as src, open(dest, "wb") as out:
        while block := src.read(1 << 20):
            left -= len(block)
            if left < 0:
                raise DataError(f"{info.filename}: larger than its declared size")
            out.write(block)


def _check_files(folder: Path, release: Release, zip_path: Path) -> None:
    for name, expected in release.file_md5:
        path = folder / name
        got = md5_of(path) if path.is_file() else None
        if got != expected:
            raise DownloadError(
                f"{zip_path}: {name} has md5 {got} but the {release.name} release embedrec "
                f"knows has {expected} (a changed release or a hostile mirror); set "
                "EMBEDREC_TRUST_MIRROR=1 (or pass --trust-mirror) to accept it")


def _unpack(zip_path: Path, release: Release, target: Path, *, check_files: bool = False) -> Path:
    """Extract the release's files into a temporary sibling of ``target``, then rename it into
    place. Only the ratings and items files are extracted, within size and ratio limits."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(target.parent, (f".{target.name}-*",))
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in _members(zf, zip_path, release):
                _extract(zf, info, tmp / Path(info.filename).name)
        if check_files:
            _check_files(tmp, release, zip_path)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
        return target
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise DataError(f"{zip_path}: not a valid zip file ({exc})") from exc
    except RuntimeError as exc:  # an encrypted member
        raise DataError(f"{zip_path}: cannot read ({exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
