"""Model folders: ``weights.safetensors`` + ``manifest.json``. No pickle, nothing executes on load.

A folder holds one trained model (neural or baseline) with everything needed to use it: the id
maps, the items each user rated in training (to mask them), item popularity, the bias baseline
used for cold users and movies, and item titles. The manifest records the sha256 of the weights
file; loading refuses a file whose checksum, format version or tensor shapes do not match.
Saving writes a temporary sibling folder and renames it into place, so a crash leaves any
earlier model intact. Loading needs numpy only (no torch): every model comes back as its
spec's numpy scorer, and the spec checks the arrays it stores.
"""

from __future__ import annotations

import functools
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
from embedrec.data.features import ItemFeatures, item_features
from embedrec.errors import EmbedrecError
from embedrec.models.baselines import BiasBaseline
from embedrec.models.fallback import WithFallback
from embedrec.models.outputs import predicts_ratings
from embedrec.models.registry import get as get_spec
from embedrec.models.scorer import Scorer
from embedrec.models.spec import ModelSpec, Shape, check_values
from embedrec.io import (
    OutputError, atomic_write_text, check_model_out, make_temp_dir, ordinary_permissions,
    read_json_limited, recover_dir, replace_dir, sha256_file, sweep_stale,
)

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: embedrec 0.1 before the model registry (same arrays)
# keys of version 1's one-size-fits-all neural config that a model's own config may not have
LEGACY_CONFIG_KEYS = ("n_users", "n_items", "rating_range", "hidden", "dropout_in",
                      "dropout_hidden")
WEIGHTS, MANIFEST = "weights.safetensors", "manifest.json"


class ModelFileError(EmbedrecError):
    """A model folder is missing, tampered with, truncated, or from an unknown format."""


@dataclass(eq=False)
class ModelBundle:
    """A trained model and what it needs to recommend: ids, seen items, popularity, titles."""

    name: str  # a registered model name
    config: Any  # the model spec's Config
    scorer: Scorer  # the trained model as numpy arrays
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
    features: ItemFeatures | None = None

    @classmethod
    def from_training(cls, name: str, scorer: Scorer, train: Ratings, fallback: BiasBaseline, *,
                      config: Any = None, seen: Ratings | None = None,
                      manifest: dict | None = None) -> ModelBundle:
        """Package a trained model (its numpy scorer).

        ``train`` holds the rows the model was fitted on (they decide which users and movies it
        knows); ``seen`` (default: ``train``) the rows whose movies are never recommended back
        to their user, e.g. the training rows plus a validation carve-out.
        """
        spec = get_spec(name)
        config = spec.config() if config is None else config
        seen = train if seen is None else seen
        order = np.argsort(seen.users, kind="stable")
        counts = np.bincount(seen.users, minlength=seen.n_users)
        indptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        return cls(name=name, config=config, scorer=scorer, user_map=train.user_map,
                   item_map=train.item_map, scale=train.scale, seen_indptr=indptr,
                   seen_items=seen.items[order].astype(np.int32),
                   item_counts=np.bincount(train.items, minlength=train.n_items).astype(np.int64),
                   user_counts=np.bincount(train.users, minlength=train.n_users).astype(np.int64),
                   fallback=fallback, item_info=train.item_info, manifest=dict(manifest or {}),
                   features=item_features(train.item_map, train.item_info))

    @property
    def spec(self) -> ModelSpec:
        return get_spec(self.name)

    @property
    def model(self) -> Scorer:
        """The model's own scorer (no fallback); ``scored`` composes the fallback."""
        return self.scorer

    @functools.cached_property
    def scored(self) -> WithFallback:
        """The model's scorer with the cold-start fallback: what every user of a bundle calls."""
        return WithFallback(self.scorer, self.fallback, known_users=self.known_users(),
                            known_items=self.known_items(), capabilities=self.spec.capabilities,
                            predicts_ratings=predicts_ratings(self.spec.capabilities, self.loss))

    @property
    def loss(self) -> str | None:
        """The loss the model was trained with (None: fitted in closed form)."""
        loss = self.manifest.get("loss")
        return loss if isinstance(loss, str) else None

    def seen(self, user: int) -> np.ndarray:
        return self.seen_items[self.seen_indptr[user]:self.seen_indptr[user + 1]]

    def known_users(self) -> np.ndarray:
        """Users the model was fitted on (others are scored by the fallback)."""
        counts = self.user_counts if self.user_counts is not None else np.diff(self.seen_indptr)
        return counts > 0

    def known_items(self) -> np.ndarray:
        """Movies with training ratings."""
        return self.item_counts > 0

    def candidate_items(self) -> np.ndarray:
        """Movies a recommendation list may hold: those with training ratings and, for a model
        that scores movies from their features (``cold_items_from_features``), the movies
        without training ratings that it can score (e.g. the hybrid's, from genres and release
        year). The one rule for every list: recommend, fold-in, the service and evaluation."""
        return self.scored.scorable_items

    @property
    def shape(self) -> Shape:
        return Shape(len(self.user_map), len(self.item_map), self.scale)

    def config_dict(self) -> dict:
        return self.spec.config_to_dict(self.config)


def _arrays(bundle: ModelBundle) -> dict[str, np.ndarray]:
    t = {f"model.{k}": np.array(v) for k, v in bundle.scorer.arrays().items()}  # own copies
    t |= {f"fallback.{k}": np.array(v, dtype=np.float64) for k, v in bundle.fallback.arrays().items()}
    t["seen.indptr"] = bundle.seen_indptr.astype(np.int64)
    t["seen.items"] = bundle.seen_items.astype(np.int32)
    t["items.counts"] = bundle.item_counts.astype(np.int64)
    t["users.counts"] = (bundle.user_counts if bundle.user_counts is not None
                         else np.diff(bundle.seen_indptr)).astype(np.int64)
    if bundle.features is not None:
        t |= {f"features.{k}": v for k, v in bundle.features.arrays().items()}
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
            "config": bundle.config_dict(),
            "genres": None if bundle.features is None else list(bundle.features.genre_names),
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
    if version not in READABLE_VERSIONS:
        raise _fail(folder, f"unknown format version {version!r} (this embedrec reads "
                            f"{', '.join(map(str, READABLE_VERSIONS))}); retrain it with "
                            "`embedrec train --model NAME --out DIR`")
    if sha256_file(wpath) != manifest.get("weights_sha256"):
        raise _fail(folder, f"{WEIGHTS} does not match the checksum in {MANIFEST} "
                            "(tampered with or truncated)")
    try:
        arrays = load_file(str(wpath))
    except (SafetensorError, OSError) as exc:
        raise _fail(folder, f"{WEIGHTS} is not a valid safetensors file ({exc})") from exc
    try:
        return _assemble(manifest, arrays)
    except EmbedrecError as exc:  # e.g. an unknown model name or a bad setting
        raise _fail(folder, str(exc)) from exc
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise _fail(folder, f"the manifest does not match the weights ({exc!s:.300})") from exc


def _finite_range(raw) -> tuple[float, float]:
    if not isinstance(raw, list) or len(raw) != 2 or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw):
        raise ValueError(f"rating_range must be two numbers, got {raw!r}")
    lo, hi = float(raw[0]), float(raw[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"rating_range must be finite and increasing, got {raw!r}")
    return lo, hi


def _count(manifest: dict, key: str) -> int:
    value = manifest[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{key} must be a whole number >= 1, got {value!r}")
    return value


def _assemble(manifest: dict, t: dict[str, np.ndarray]) -> ModelBundle:
    name = manifest["model"]
    if not isinstance(name, str):
        raise ValueError(f"model must be a name, got {name!r}")
    spec = get_spec(name)
    raw_config = manifest["config"]
    if not isinstance(raw_config, dict):
        raise ValueError("config must be a JSON object")
    if raw_config.get("name", name) != name:
        raise ValueError(f"the manifest says model {name!r} but its config is for "
                         f"{raw_config.get('name')!r}")
    scale = _finite_range(manifest["rating_range"])
    n_users, n_items = _count(manifest, "n_users"), _count(manifest, "n_items")
    shape = Shape(n_users, n_items, scale)
    legacy = LEGACY_CONFIG_KEYS if manifest["format_version"] == 1 else ()
    config = spec.config_from_dict(raw_config, legacy=legacy)
    if "users.counts" not in t and "seen.indptr" in t:  # files written before it was stored,
        t["users.counts"] = np.diff(t["seen.indptr"])   # when the seen rows were the fit rows
    for key, want in (("fallback.user_bias", (n_users,)), ("fallback.item_bias", (n_items,)),
                      ("fallback.mean", (1,)), ("items.counts", (n_items,)),
                      ("users.counts", (n_users,)), ("seen.indptr", (n_users + 1,))):
        if tuple(t[key].shape) != want:
            raise ValueError(f"{key} has shape {tuple(t[key].shape)}, expected {want}")
        check_values(key, t[key])
    for key in ("seen.indptr", "seen.items", "items.counts", "users.counts"):
        if t[key].dtype.kind not in "iu":
            raise ValueError(f"{key} must hold integers, not {t[key].dtype}")
        if len(t[key]) and t[key].min() < 0:
            raise ValueError(f"{key} holds negative values")
    indptr, seen = t["seen.indptr"], t["seen.items"]
    if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(seen):
        raise ValueError("seen.indptr is not a valid offsets array over seen.items")
    if len(seen) and seen.max() >= n_items:
        raise ValueError("seen items out of range")
    model_t = {k[len("model."):]: v for k, v in t.items() if k.startswith("model.")}
    scorer = spec.load_scorer(config, model_t, shape)
    damping = manifest.get("fallback_damping", 5.0)
    if not isinstance(damping, (int, float)) or isinstance(damping, bool) or not damping >= 0:
        raise ValueError(f"fallback_damping must be a number >= 0, got {damping!r}")
    fallback = BiasBaseline(user_damping=float(damping), item_damping=float(damping), clip=scale)
    fallback.load_arrays({k[len("fallback."):]: v for k, v in t.items() if k.startswith("fallback.")})
    user_ids = t["ids.users"] if "ids.users" in t else np.array(manifest["user_ids"])
    item_ids = t["ids.items"] if "ids.items" in t else np.array(manifest["item_ids"])
    if len(user_ids) != n_users or len(item_ids) != n_items:
        raise ValueError("id maps and the manifest's counts differ")
    features = None
    if "features.year" in t:
        genres = manifest.get("genres") or []
        if not isinstance(genres, list):
            raise ValueError("genres must be a list of names")
        features = ItemFeatures.from_arrays(
            genres, {k[len("features."):]: v for k, v in t.items() if k.startswith("features.")},
            n_items)
    items = manifest.get("items")
    info = pd.DataFrame(items, columns=["item", "title", "genres"]).set_index("item") if items else None
    return ModelBundle(name=name, config=config, scorer=scorer, user_map=IdMap(user_ids),
                       item_map=IdMap(item_ids), scale=scale, seen_indptr=indptr, seen_items=seen,
                       item_counts=t["items.counts"], fallback=fallback, item_info=info,
                       user_counts=t["users.counts"], manifest=manifest, features=features)
