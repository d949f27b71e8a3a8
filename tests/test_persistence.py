import json
from pathlib import Path

import numpy as np
import pytest

from embedrec.recommender import score_users
from embedrec.persistence import ModelFileError, load_model, save_model
from embedrec.presets import get_preset
from embedrec.experiment import train_bundle
from tests.conftest import make_ratings

PRESET = get_preset("default").with_overrides(epochs=2, batch_size=32)


@pytest.fixture(scope="module")
def data():
    return make_ratings(n_users=25, n_items=18, seed=3)


@pytest.fixture(scope="module", params=["dot", "biased", "mlp", "bias", "mean", "pop"])
def saved(request, data, tmp_path_factory):
    bundle = train_bundle(data, request.param, PRESET, seed=1)
    folder = save_model(bundle, tmp_path_factory.mktemp("m") / request.param)
    return bundle, folder


def test_round_trip_gives_identical_scores(saved):
    bundle, folder = saved
    loaded = load_model(folder)
    users = np.arange(len(bundle.user_map))
    assert np.array_equal(score_users(bundle, users), score_users(loaded, users))
    assert loaded.manifest["model"] == bundle.name and loaded.manifest["format_version"] == 2
    assert np.array_equal(loaded.seen_items, bundle.seen_items)


def test_tampered_weights_are_refused(saved, tmp_path):
    _, folder = saved
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(folder, copy)
    raw = bytearray((copy / "weights.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (copy / "weights.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(copy)
    (copy / "weights.safetensors").write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(copy)


def _rewrite_manifest(folder, tmp_path, change):
    import shutil

    copy = tmp_path / "edited"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_unknown_format_version(saved, tmp_path):
    copy = _rewrite_manifest(saved[1], tmp_path, lambda m: m.update(format_version=99))
    with pytest.raises(ModelFileError, match="format version 99"):
        load_model(copy)


def test_manifest_that_does_not_match_weights(data, tmp_path):
    folder = save_model(train_bundle(data, "biased", PRESET, seed=0), tmp_path / "b")
    copy = _rewrite_manifest(folder, tmp_path, lambda m: m["config"].update(n_factors=7))
    with pytest.raises(ModelFileError, match="does not match the weights"):
        load_model(copy)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ModelFileError, match="not a model folder"):
        load_model(tmp_path)


def test_failed_save_keeps_the_earlier_model(data, tmp_path, monkeypatch):
    bundle = train_bundle(data, "dot", PRESET, seed=0)
    folder = save_model(bundle, tmp_path / "model")
    before = (folder / "weights.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("embedrec.persistence.save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        save_model(bundle, folder)
    assert (folder / "weights.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp folders left


FORMAT1 = Path(__file__).parent / "fixtures" / "format1"


@pytest.mark.parametrize("name", ["dot", "biased", "mlp", "mean", "bias", "pop"])
def test_model_files_of_format_1_still_load_with_the_same_scores(name, tmp_path):
    import json
    import shutil

    expected = json.loads((FORMAT1 / "expected_scores.json").read_text())[name]
    folder = shutil.copytree(FORMAT1 / name, tmp_path / name)  # loading may sweep; keep a copy
    loaded = load_model(folder)
    assert loaded.manifest["format_version"] == 1 and loaded.name == name
    got = score_users(loaded, np.arange(len(loaded.user_map)))
    np.testing.assert_allclose(got, np.array(expected), atol=2e-6)
