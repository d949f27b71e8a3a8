"""Regression tests for defects found in review: each names the defect it pins down."""

import csv
import hashlib
import json
import socket

import numpy as np
import pytest

from embedrec.cli import main
from embedrec.data import load_ratings_file
from embedrec.errors import DataError
from embedrec.persistence import ModelFileError, load_model, save_model
from embedrec.presets import get_preset
from embedrec.recommender import recommend, score_users, similar_items
from embedrec.experiment import train_bundle
from tests.conftest import make_ratings

PRESET = get_preset("default").with_overrides(epochs=2)


@pytest.fixture(scope="module")
def data():
    return make_ratings(n_users=30, n_items=25, seed=4)


def test_save_never_replaces_a_folder_that_is_not_a_model(data, tmp_path):
    bundle = train_bundle(data, "mean", PRESET, seed=0)
    precious = tmp_path / "important"
    precious.mkdir()
    (precious / "notes.txt").write_text("precious")
    with pytest.raises(ModelFileError, match="not empty and not a model folder"):
        save_model(bundle, precious)
    assert (precious / "notes.txt").read_text() == "precious"
    victim = tmp_path / "victim.csv"
    victim.write_text("keep me")
    with pytest.raises(ModelFileError, match="is a file"):
        save_model(bundle, victim)
    assert victim.read_text() == "keep me"
    save_model(bundle, tmp_path / "model")
    save_model(bundle, tmp_path / "model")  # replacing a model folder is fine


def test_validation_rows_are_never_recommended_back(data):
    bundle = train_bundle(data, "biased", PRESET.with_overrides(valid_fraction=0.3), seed=0)
    for user in range(data.n_users):
        mine = set(data.item_map.raw(data.items[data.users == user]).tolist())
        recs = set(recommend(bundle, data.user_map.ids[user], k=5)["movieId"])
        assert not mine & recs


def test_users_the_model_never_saw_are_ranked_by_the_fallback(tmp_path):
    data = make_ratings(n_users=30, n_items=25, seed=4)
    bundle = train_bundle(data, "biased", PRESET.with_overrides(valid_fraction=0.0), seed=0)
    bundle.user_counts = bundle.user_counts.copy()
    bundle.user_counts[3] = 0  # as if user 3 had only test rows
    fb = bundle.fallback
    expected = np.clip(fb.mean + fb.user_bias[3] + fb.item_bias, *bundle.scale)
    assert np.allclose(score_users(bundle, np.array([3]))[0], expected, atol=1e-6)


def test_a_row_with_an_extra_field_is_an_error_not_a_shifted_table(tmp_path):
    path = tmp_path / "shifted.csv"
    path.write_text("userId,movieId,rating\n1,10,4\n1,20,3,978300761\n2,10,5\n")
    with pytest.raises(DataError, match="shifted.csv"):
        load_ratings_file(path)


def test_bom_and_spaced_headers(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffuserId,movieId,rating\n1,1,4\n2,1,3\n".encode("utf-8"))
    assert len(load_ratings_file(bom)) == 2
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("userId, movieId, rating\n1, 1, 4\n1, 2, oops\n")
    with pytest.raises(DataError, match=r"line 3, column rating: ' oops'|line 3, column rating"):
        load_ratings_file(spaced)


def test_similar_with_k_beyond_the_catalogue_has_no_empty_places(data):
    bundle = train_bundle(data, "biased", PRESET, seed=0)
    frame = similar_items(bundle, data.item_map.ids[0], k=100)
    assert np.isfinite(frame["score"]).all() and data.item_map.ids[0] not in set(frame["movieId"])


def _retag(folder, change):
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_relabelled_or_reshaped_model_files_are_refused(data, tmp_path):
    folder = save_model(train_bundle(data, "biased", PRESET, seed=0), tmp_path / "b")
    _retag(folder, lambda m: m.update(model="dot"))
    with pytest.raises(ModelFileError, match="config is for 'biased'"):
        load_model(folder)
    from safetensors.numpy import load_file, save_file

    bias = save_model(train_bundle(data, "bias", PRESET, seed=0), tmp_path / "bias")
    arrays = load_file(str(bias / "weights.safetensors"))
    arrays["model.user_bias"] = np.zeros(3)
    save_file(arrays, str(bias / "weights.safetensors"))
    digest = hashlib.sha256((bias / "weights.safetensors").read_bytes()).hexdigest()
    _retag(bias, lambda m: m.update(weights_sha256=digest))
    with pytest.raises(ModelFileError, match=r"user_bias has shape \(3,\), expected \(30,\)"):
        load_model(bias)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    (root / "r.csv").write_text("userId,movieId,rating\n1,10,4\n1,20,3\n1,30,5\n2,10,5\n2,20,2\n"
                                "3,10,1\n")
    assert main(["train", "--model", "bias", "--data", str(root / "r.csv"), "--out",
                 str(root / "m")]) == 0
    return root


def test_all_users_csv_has_no_made_up_rows(tiny_model, capsys):
    out = tiny_model / "all.csv"
    assert main(["recommend", "--model", str(tiny_model / "m"), "--all-users", "-k", "5",
                 "--out", str(out)]) == 0
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert all(r["score"] != "-inf" for r in rows)
    assert not [r for r in rows if r["userId"] == "1"]  # user 1 has seen every movie


@pytest.mark.parametrize("args, message", [
    (["--all-users", "--out", "{root}"], "error: "),
    (["--ratings", "{root}/bad.csv"], "line 2, column rating"),
    (["--user", "1", "--fallback", "random"], "the only fallback is 'popular'"),
])
def test_cli_mistakes_are_one_line(tiny_model, capsys, args, message):
    (tiny_model / "bad.csv").write_text("movieId,rating\n10,oops\n")
    args = [a.format(root=tiny_model) for a in args]
    assert main(["recommend", "--model", str(tiny_model / "m"), *args]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) <= 2


def test_serve_on_a_busy_port_is_a_one_line_error(tiny_model, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--model", str(tiny_model / "m"), "--port", str(port)]) == 1
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err


def test_data_folder_named_like_a_release_loads_that_release(capsys):
    from tests.conftest import real_data_dir

    root = real_data_dir()
    if root is None or not (root / "ml-100k").is_dir():
        pytest.skip("needs ml-100k under $EMBEDREC_DATA")
    assert main(["data", "info", "--data", str(root / "ml-100k"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_ratings"] == 100_000


def test_pop_model_does_not_predict_ratings(data):
    from embedrec.recommender import predict
    from embedrec.errors import EmbedrecError

    bundle = train_bundle(data, "pop", PRESET, seed=0)
    with pytest.raises(EmbedrecError, match="does not predict ratings"):
        predict(bundle, [(data.user_map.ids[0], data.item_map.ids[0])])


def test_punctuation_only_search_matches_nothing(data):
    from embedrec.recommender import UnknownIdError, find_movie

    bundle = train_bundle(data, "bias", PRESET, seed=0)
    bundle.item_info = __import__("pandas").DataFrame(
        {"title": [f"Movie {i} (2000)" for i in range(len(bundle.item_map))], "genres": ""},
        index=bundle.item_map.ids)
    with pytest.raises(UnknownIdError, match="no movie matches"):
        find_movie(bundle, "(")


def test_model_folders_get_ordinary_permissions(data, tmp_path):
    import os
    import stat

    folder = save_model(train_bundle(data, "mean", PRESET, seed=0), tmp_path / "m")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask
