"""An encoded, versioned cache of a ratings file: .npy arrays plus a manifest.

The cache sits next to the data (``.embedrec-cache/`` beside the ratings file) when that folder
is writable, else under ``$XDG_CACHE_HOME/embedrec/encoded``. It is keyed by the ratings file's
md5 and the options that shaped the encoding (scale, duplicate policy, columns), so it is
rebuilt whenever the source or the options change and never used when stale. A damaged cache
is ignored and rebuilt. Writes go to a temporary folder swapped into place with renames
(``embedrec.io.replace_dir``), so a killed process leaves the old cache or the new one, never part
of one; temporaries it leaves are swept by the next build.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from embedrec.data.fetch import cache_dir
from embedrec.io import recover_dir, replace_dir, sweep_stale

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: ids typed as labels, seconds timestamps, blank lines
ARRAYS = ("users", "items", "ratings", "timestamps", "user_ids", "item_ids")


def _folder(source: Path, md5: str) -> list[Path]:
    """Candidate cache folders, preferred first."""
    return [source.parent / ".embedrec-cache" / f"{source.name}-{md5[:16]}",
            cache_dir() / "encoded" / f"{source.name}-{md5[:16]}"]


def load(source: Path, md5: str, options: dict) -> dict | None:
    """The cached arrays and manifest for ``source``, or None when absent or stale."""
    for folder in _folder(source, md5):
        recover_dir(folder)  # a build killed between its two renames left it in .NAME.old
        manifest_path = folder / "manifest.json"
        if not manifest_path.is_file():
            continue
        try:
            manifest = json.loads(manifest_path.read_text())
            if (manifest.get("version") != CACHE_VERSION or manifest.get("md5") != md5
                    or manifest.get("options") != options):
                log.info("cache %s is stale; rebuilding", folder)
                continue
            arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False)
                      for name in ARRAYS if (folder / f"{name}.npy").is_file()}
            n = manifest["n_rows"]
            if any(len(arrays[k]) != n for k in ("users", "items", "ratings")):
                raise ValueError("row counts differ from the manifest")
            log.info("loaded %s from the cache %s", source, folder)
            return {"arrays": arrays, "manifest": manifest}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            log.warning("ignoring a damaged cache %s (%s)", folder, exc)
    return None


def store(source: Path, md5: str, options: dict, arrays: dict[str, np.ndarray],
          extra: dict) -> Path | None:
    """Write the cache; returns its folder, or None when no candidate folder is writable."""
    manifest = {"version": CACHE_VERSION, "md5": md5, "source": str(source),
                "options": options, "n_rows": int(len(arrays["ratings"]))} | extra
    for folder in _folder(source, md5):
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            recover_dir(folder)
            sweep_stale(folder.parent, (".tmp-*", ".*.old"))
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        except OSError:
            continue
        try:
            for name, array in arrays.items():
                if array is not None:
                    np.save(tmp / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
            (tmp / "manifest.json").write_text(json.dumps(manifest))
            replace_dir(tmp, folder)
            _drop_older(folder)
            return folder
        except (OSError, ValueError) as exc:
            log.warning("could not write the cache %s (%s)", folder, exc)
            shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:  # interrupted: leave no temporary behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return None


def _drop_older(keep: Path) -> None:
    """Remove caches of earlier versions of the same file (a changed source leaves them)."""
    stem = keep.name.rsplit("-", 1)[0]
    for other in keep.parent.glob(f"{stem}-*"):
        if other != keep and other.is_dir() and len(other.name) == len(keep.name):
            shutil.rmtree(other, ignore_errors=True)
