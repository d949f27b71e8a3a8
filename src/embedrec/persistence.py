"""Model folders: ``weights.safetensors`` + ``manifest.json``. No pickle, nothing executes on load.

A folder holds one trained model (neural or baseline) with everything needed to use it: the id
maps, the items each user rated in training (to mask them), item popularity, the bias baseline
used for cold users and movies, and item titles. The manifest records the sha256 of the weights
file; loading refuses a file whose checksum, format version or tensor shapes do not match.
Saving writes a temporary sibling folder and renames it into place, so a crash leaves any
earlier model intact. Loading needs numpy only (no torch): neural models come back as
``EmbeddingScorer``s.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from embedrec import __version__
from embedrec.data.dataset import IdMap, Ratings
from embedrec.errors import EmbedrecError
from embedrec.io import (
    OutputError, atomic_write_text, check_model_out, make_temp_dir, ordinary_permissions,
    read_json_limited, recover_dir, replace_dir, sha256_file, sweep_stale,
)
from embedrec.models.baselines import BiasBaseline, GlobalMean, Popular
from embedrec.models.inference import NEURAL_NAMES, EmbeddingScorer

FORMAT_VERSION = 1
WEIGHTS, MANIFEST = "weights.safetensors", "manifest.json"


class ModelFileError(EmbedrecError):
    """A model folder is missing, tampered with, truncated, or from an unknown format."""


@dataclass(eq=False)
class ModelBundle:
    """A trained model and what it needs to recommend: ids, seen items, popularity, titles."""

    name: str  # dot | biased | mlp | mean | bias | pop
    model: Any  # EmbeddingScorer, BiasBaseline, GlobalMean or Popular
    user_map: IdMap
    item_map: IdMap
    scale: tuple[float, float]
    seen_indptr: np.ndarray  # CSR over users of the items they rated in training
    seen_items: np.ndarray
    item_counts: np.ndarray  # ratings per item the model was fitted on (popularity)
    fallback: BiasBaseline  # predicts cold users and movies
    user_counts: np.ndarray | None = None  # ratings per user the model was fitted on
    item_info: pd.DataFrame | None = None
    manifest: dict = field(default_factory=dict)

    @classmethod
    def from_training(cls, name: str, model: Any, train: Ratings, fallback: BiasBaseline, *,
                      seen: Ratings | None = None, config: dict | None = None,
                      manifest: dict | None = None) -> ModelBundle:
        """Package a trained model; a torch module is converted to numpy arrays here.

        ``train`` holds the rows the model was fitted on (they decide which users and movies it
        knows); ``seen`` (default: ``train``) the rows whose movies are never recommended back
        to their user, e.g. the training rows plus a validation carve-out.
        """
        if name in NEURAL_NAMES and not isinstance(model, EmbeddingScorer):
            model = EmbeddingScorer.from_module(dict(config or {}), model)
        seen = train if seen is None else seen
        order = np.argsort(seen.users, kind="stable")
        counts = np.bincount(seen.users, minlength=seen.n_users)
        indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return cls(name=name, model=model, user_map=train.user_map, item_map=train.item_map,
                   scale=train.scale, seen_indptr=indptr,
                   seen_items=seen.items[order].astype(np.int32),
                   item_counts=np.bincount(train.items, minlength=train.n_items).astype(np.int64),
                   user_counts=np.bincount(train.users, minlength=train.n_users).astype(np.int64),
                   fallback=fallback, item_info=train.item_info, manifest=dict(manifest or {}))

    def seen(self, user: int) -> np.ndarray:
        return self.seen_items[self.seen_indptr[user]:self.seen_indptr[user + 1]]

    def known_users(self) -> np.ndarray:
        """Users the model was fitted on (others are scored by the fallback)."""
        counts = self.user_counts if self.user_counts is not None else np.diff(self.seen_indptr)
        return counts > 0

    def known_items(self) -> np.ndarray:
        return self.item_counts > 0

    @property
    def is_neural(self) -> bool:
        return isinstance(self.model, EmbeddingScorer)

    def config(self) -> dict:
        if self.is_neural:
            return self.model.config
        if isinstance(self.model, BiasBaseline):
            return {"name": "bias", "user_damping": self.model.user_damping,
                    "item_damping": self.model.item_damping, "sweeps": self.model.sweeps}
        return {"name": self.name}


def _arrays(bundle: ModelBundle) -> dict[str, np.ndarray]:
    t = {f"model.{k}": np.array(v) for k, v in bundle.model.arrays().items()}  # own copies
    t |= {f"fallback.{k}": np.array(v, dtype=np.float64) for k, v in bundle.fallback.arrays().items()}
    t["seen.indptr"] = bundle.seen_indptr.astype(np.int64)
    t["seen.items"] = bundle.seen_items.astype(np.int32)
    t["items.counts"] = bundle.item_counts.astype(np.int64)
    t["users.counts"] = (bundle.user_counts if bundle.user_counts is not None
                         else np.diff(bundle.seen_indptr)).astype(np.int64)
    for role, ids in (("users", bundle.user_map.ids), ("items", bundle.item_map.ids)):
        if ids.dtype.kind in "iu":
            t[f"ids.{role}"] = ids.astype(np.int64)
    return {k: np.ascontiguousarray(v) for k, v in t.items()}


def _id_list(ids: np.ndarray) -> list | None:
    return None if ids.dtype.kind in "iu" else [str(x) for x in ids.tolist()]


def _items_json(info: pd.DataFrame | None) -> list | None:
    if info is None:
        return None
    return [[k if isinstance(k, (int, str)) else int(k), str(t), str(g)]
            for k, t, g in zip(info.index.tolist(), info["title"], info["genres"])]


def save_model(bundle: ModelBundle, folder: str | Path) -> Path:
    """Write the bundle to ``folder`` atomically; returns the folder.

    An existing model folder is replaced; anything else already at ``folder`` (a file, or a
    folder that is not empty and holds no model) is refused, so nothing of the user's is lost.
    """
    try:
        folder = check_model_out(folder)
    except OutputError as exc:
        raise ModelFileError(str(exc)) from exc
    folder.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(folder)  # first: an interrupted save's model may sit in .NAME.old
    sweep_stale(folder.parent, (f".{folder.name}-*", f".{folder.name}.old"))
    tmp = make_temp_dir(folder)
    try:
        save_file(_arrays(bundle), str(tmp / WEIGHTS), metadata={"format": "embedrec"})
        ordinary_permissions(tmp / WEIGHTS)  # safetensors writes 0600; the manifest is 0644
        manifest = dict(bundle.manifest) | {
            "format_version": FORMAT_VERSION,
            "embedrec_version": __version__,
            "model": bundle.name,
            "config": bundle.config(),
            "rating_range": list(bundle.scale),
            "n_users": len(bundle.user_map), "n_items": len(bundle.item_map),
            "user_ids": _id_list(bundle.user_map.ids), "item_ids": _id_list(bundle.item_map.ids),
            "items": _items_json(bundle.item_info),
            "weights_sha256": sha256_file(tmp / WEIGHTS),
        }
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest))
        return replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fail(folder: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{folder}: {what}")


def load_model(folder: str | Path) -> ModelBundle:
    """Load a model folder written by ``save_model``, verifying it first."""
    folder = Path(folder)
    recover_dir(folder)  # a save interrupted between its two renames left the model in .NAME.old
    mpath, wpath = folder / MANIFEST, folder / WEIGHTS
    if not mpath.is_file() or not wpath.is_file():
        raise _fail(folder, f"not a model folder (needs {MANIFEST} and {WEIGHTS})")
    try:
        manifest = read_json_limited(mpath)
    except EmbedrecError as exc:
        raise ModelFileError(str(exc)) from exc
    if not isinstance(manifest, dict):
        raise _fail(folder, f"{MANIFEST} must hold a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise _fail(folder, f"unknown format version {version!r} (this embedrec reads {FORMAT_VERSION})")
    if sha256_file(wpath) != manifest.get("weights_sha256"):
        raise _fail(folder, f"{WEIGHTS} does not match the checksum in {MANIFEST} "
                            "(tampered with or truncated)")
    try:
        arrays = load_file(str(wpath))
    except (SafetensorError, OSError) as exc:
        raise _fail(folder, f"{WEIGHTS} is not a valid safetensors file ({exc})") from exc
    try:
        return _assemble(manifest, arrays)
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise _fail(folder, f"the manifest does not match the weights ({exc})") from exc


def _assemble(manifest: dict, t: dict[str, np.ndarray]) -> ModelBundle:
    name = manifest["model"]
    model_t = {k[len("model."):]: v for k, v in t.items() if k.startswith("model.")}
    scale = tuple(float(x) for x in manifest["rating_range"])
    n_users, n_items = manifest["n_users"], manifest["n_items"]
    if "users.counts" not in t and "seen.indptr" in t:  # files written before it was stored,
        t["users.counts"] = np.diff(t["seen.indptr"])   # when the seen rows were the fit rows
    if manifest["config"].get("name", name) != name:
        raise ValueError(f"the manifest says model {name!r} but its config is for "
                         f"{manifest['config'].get('name')!r}")
    expected = {"mean": {"mean": (1,)}, "pop": {"counts": (n_items,)},
                "bias": {"mean": (1,), "user_bias": (n_users,), "item_bias": (n_items,)}}
    if name in expected:
        shapes = {k: tuple(v.shape) for k, v in model_t.items()}
        if shapes != expected[name]:
            raise ValueError(f"{name} weights {shapes} should be {expected[name]}")
    for key, shape in (("fallback.user_bias", (n_users,)), ("fallback.item_bias", (n_items,)),
                       ("items.counts", (n_items,)), ("users.counts", (n_users,)),
                       ("seen.indptr", (n_users + 1,))):
        if tuple(t[key].shape) != shape:
            raise ValueError(f"{key} has shape {tuple(t[key].shape)}, expected {shape}")
    for key in ("seen.indptr", "seen.items", "items.counts", "users.counts"):
        if t[key].dtype.kind not in "iu":
            raise ValueError(f"{key} must hold integers, not {t[key].dtype}")
    if name in NEURAL_NAMES:
        model: Any = EmbeddingScorer(manifest["config"], model_t)
    elif name == "bias":
        cfg = manifest["config"]
        model = BiasBaseline(user_damping=cfg["user_damping"], item_damping=cfg["item_damping"],
                             sweeps=cfg["sweeps"], clip=scale)
        _fill_bias(model, model_t)
    elif name == "mean":
        model = GlobalMean()
        model.mean = float(model_t["mean"][0])
    elif name == "pop":
        model = Popular()
        model.counts = model_t["counts"]
    else:
        raise ValueError(f"unknown model {name!r}")
    damping = float(manifest.get("fallback_damping", 5.0))
    fallback = BiasBaseline(user_damping=damping, item_damping=damping, clip=scale)
    _fill_bias(fallback, {k[len("fallback."):]: v for k, v in t.items() if k.startswith("fallback.")})
    user_ids = t["ids.users"] if "ids.users" in t else np.array(manifest["user_ids"])
    item_ids = t["ids.items"] if "ids.items" in t else np.array(manifest["item_ids"])
    if len(user_ids) != n_users or len(item_ids) != n_items:
        raise ValueError("id maps and the manifest's counts differ")
    if len(fallback.user_bias) != n_users or len(fallback.item_bias) != n_items:
        raise ValueError("fallback biases do not cover every user and item")
    indptr, seen = t["seen.indptr"], t["seen.items"]
    if len(indptr) != n_users + 1 or indptr[-1] != len(seen) or len(t["items.counts"]) != n_items:
        raise ValueError("seen items or item counts do not match the number of users and items")
    if len(seen) and (seen.min() < 0 or seen.max() >= n_items):
        raise ValueError("seen items out of range")
    items = manifest.get("items")
    info = pd.DataFrame(items, columns=["item", "title", "genres"]).set_index("item") if items else None
    return ModelBundle(name=name, model=model, user_map=IdMap(user_ids), item_map=IdMap(item_ids),
                       scale=scale, seen_indptr=indptr, seen_items=seen,
                       item_counts=t["items.counts"], fallback=fallback, item_info=info,
                       user_counts=t["users.counts"], manifest=manifest)


def _fill_bias(model: BiasBaseline, arrays: dict[str, np.ndarray]) -> None:
    model.mean = float(arrays["mean"][0])
    model.user_bias = arrays["user_bias"]
    model.item_bias = arrays["item_bias"]
