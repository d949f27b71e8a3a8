"""Safe file system helpers: atomic writes, bounded JSON, output-folder guards, crash recovery.

Every file embedrec writes goes through a temporary sibling renamed into place, so a crash or an
interrupt leaves either the old file or the new one, never half of one. Folders are replaced with
two renames (``folder`` -> ``.NAME.old``, temporary -> ``folder``); ``recover_dir`` puts the old
one back when a crash fell between the two. ``sweep_stale`` removes temporary files and folders
that a killed process left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from embedrec.errors import EmbedrecError

log = logging.getLogger(__name__)

RESULTS_MARKER = "embedrec_results"  # key of settings.json in a folder written by compare --out
MODEL_KEYS = ("format_version", "embedrec_version", "model")  # keys of a model manifest
MAX_MANIFEST_BYTES = 256 << 20  # a manifest lists ids and titles: 25M-rating models stay far below
MAX_JSON_DEPTH = 64


class OutputError(EmbedrecError):
    """An output target that embedrec refuses to write to (it would destroy the user's files)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _start_time() -> float:
    """When this process started (wall clock), from /proc when available."""
    try:
        stat = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(stat[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return _IMPORTED


_IMPORTED = time.time()
PROCESS_START = _start_time()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary sibling, fsync'd and renamed into place.

    The file gets the usual permissions (0666 minus the umask). On any exception, including
    KeyboardInterrupt, the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """``atomic_write_bytes`` for UTF-8 text (newlines written as given)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text (brackets inside strings ignored)."""
    import numpy as np

    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets.encode("ascii"), dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def read_json_limited(path: str | Path, max_bytes: int = MAX_MANIFEST_BYTES,
                      max_depth: int = MAX_JSON_DEPTH):
    """Parse a JSON file, refusing (one line, naming the file) one over ``max_bytes`` or nested
    deeper than ``max_depth``, before ``json.loads`` sees it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise EmbedrecError(f"{path}: {size:,} bytes, over the limit of {max_bytes:,}")
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise EmbedrecError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(raw) > max_bytes:
        raise EmbedrecError(f"{path}: over the limit of {max_bytes:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EmbedrecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if json_depth(text) > max_depth:
        raise EmbedrecError(f"{path}: JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise EmbedrecError(f"{path}: not valid JSON ({str(exc).splitlines()[0]})") from exc


def _bad_target(path: Path, what: str) -> None:
    if str(path) in ("", ".") or path == Path(".") or str(path).strip() == "":
        raise OutputError(f"--out {str(path)!r}: give a folder name for the {what}, not the "
                          "current folder")
    resolved = path.resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.cwd() or resolved == Path.home():
        raise OutputError(f"{path}: refusing to use {resolved} itself as the {what} folder")
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, not a folder; choose another --out")


def is_model_manifest(manifest) -> bool:
    return isinstance(manifest, dict) and all(k in manifest for k in MODEL_KEYS)


def check_model_out(path: str | Path) -> Path:
    """Refuse an output folder for a model unless it is absent, empty, or an embedrec model."""
    path = Path(path)
    _bad_target(path, "model")
    if not path.is_dir() or not any(path.iterdir()):
        return path
    manifest_path = path / "manifest.json"
    manifest = None
    if manifest_path.is_file():
        try:
            manifest = read_json_limited(manifest_path)
        except EmbedrecError:
            manifest = None
    if not is_model_manifest(manifest):
        raise OutputError(f"{path}: not empty and not a model folder written by embedrec; refusing to "
                          "replace it (choose another --out)")
    return path


def is_results_settings(settings) -> bool:
    return isinstance(settings, dict) and (
        settings.get(RESULTS_MARKER) is not None
        or (isinstance(settings.get("versions"), dict) and "embedrec" in settings["versions"]
            and "preset" in settings))


def holds_results(path: Path) -> bool:
    """Whether ``path/settings.json`` is an embedrec results folder's settings."""
    if not (path / "settings.json").is_file():
        return False
    try:
        return is_results_settings(read_json_limited(path / "settings.json"))
    except EmbedrecError:
        return False


def _holds_protocols(path: Path) -> bool:
    """Whether ``path`` is an earlier ``compare --protocol`` folder: a verdict.json beside
    protocol-<name>/ results folders, and nothing else."""
    entries = list(path.iterdir())
    folders = [e for e in entries if e.name.startswith("protocol-") and e.is_dir()]
    return ((path / "verdict.json").is_file() and bool(folders)
            and all(holds_results(f) for f in folders)
            and len(entries) == len(folders) + 1)


def check_results_out(path: str | Path) -> Path:
    """Refuse a results folder unless it is absent, empty, or an earlier embedrec results folder
    (recognised by its settings.json, or for ``--protocol`` by its verdict.json and
    protocol-<name>/ results folders)."""
    path = Path(path)
    _bad_target(path, "results")
    if not path.is_dir() or not any(path.iterdir()):
        return path
    if not (holds_results(path) or _holds_protocols(path)):
        raise OutputError(f"{path}: not empty and not an embedrec results folder; refusing to "
                          "overwrite it (choose another --out)")
    return path


def check_synth_out(path: str | Path) -> Path:
    """Refuse a folder for synthetic data unless it is absent, empty, or an earlier one
    (recognised by its synth.json): never overwrite someone's ratings.csv."""
    path = Path(path)
    _bad_target(path, "synthetic data")
    if not path.is_dir() or not any(path.iterdir()):
        return path
    settings = None
    if (path / "synth.json").is_file():
        try:
            settings = read_json_limited(path / "synth.json")
        except EmbedrecError:
            settings = None
    if not (isinstance(settings, dict) and "n_ratings" in settings):
        raise OutputError(f"{path}: not empty and not a folder written by `embedrec data "
                          "synth`; refusing to overwrite it (choose another --out)")
    return path


def sweep_stale(parent: str | Path, patterns: tuple[str, ...] | list[str],
                before: float | None = None) -> list[Path]:
    """Remove files and folders in ``parent`` matching ``patterns`` last modified before
    ``before`` (default: when this process started): temporaries of a killed process."""
    parent = Path(parent)
    cutoff = PROCESS_START if before is None else before
    removed = []
    if not parent.is_dir():
        return removed
    for pattern in patterns:
        for stale in parent.glob(pattern):
            try:
                if stale.lstat().st_mtime >= cutoff:
                    continue  # possibly another live process's: leave it
                if stale.is_dir() and not stale.is_symlink():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
                removed.append(stale)
                log.info("removed %s, left by an interrupted run", stale)
            except OSError as exc:
                log.warning("could not remove the stale %s (%s)", stale, exc)
    return removed


def old_path(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.old")


def recover_dir(folder: str | Path) -> bool:
    """If ``folder`` is missing but ``.NAME.old`` exists (a crash between the two renames of
    ``replace_dir``), put the old folder back. Returns True when it did."""
    folder = Path(folder)
    old = old_path(folder)
    if folder.exists() or folder.is_symlink() or not old.is_dir():
        return False
    try:
        os.rename(old, folder)
    except OSError as exc:
        log.warning("could not restore %s from %s (%s)", folder, old, exc)
        return False
    log.warning("restored %s from %s (an earlier save was interrupted)", folder, old)
    return True


def replace_dir(tmp: str | Path, folder: str | Path) -> Path:
    """Move the complete folder ``tmp`` to ``folder``, replacing any folder there.

    An existing ``folder`` is first renamed to ``.NAME.old``, then ``tmp`` renamed to ``folder``,
    then the old one removed. A crash between the renames is repaired by ``recover_dir``.
    """
    tmp, folder = Path(tmp), Path(folder)
    recover_dir(folder)
    old = old_path(folder)
    if folder.exists():
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        try:
            os.replace(tmp, folder)
        except BaseException:
            recover_dir(folder)
            raise
    else:
        os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


def make_temp_dir(folder: Path) -> Path:
    """A temporary sibling of ``folder`` (``.NAME-xxxx``) with ordinary folder permissions."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    return tmp


def ordinary_permissions(path: str | Path) -> None:
    """Give a file written by a library the usual 0666-minus-umask permissions."""
    os.chmod(path, 0o666 & ~_umask())
