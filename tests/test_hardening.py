"""Issue 10: output folders (items 2-6), model-folder limits and permissions (13, 14), markup in
printed data (25), a bad mirror URL (23), and the io helpers behind them."""

from __future__ import annotations

import json
import os
import stat
import time

import pytest

from embedrec import io
from embedrec.cli import main
from embedrec.compare import write_results
from embedrec.errors import EmbedrecError
from embedrec.persistence import ModelFileError, load_model, save_model
from embedrec.presets import get_preset
from embedrec.recommender import recommend
from embedrec.experiment import train_bundle
from tests.conftest import make_ratings

PRESET = get_preset("default").with_overrides(epochs=1)


@pytest.fixture(scope="module")
def data():
    return make_ratings(n_users=20, n_items=15, seed=2)


@pytest.fixture(scope="module")
def bundle(data):
    return train_bundle(data, "biased", PRESET, seed=0)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "Traceback" not in lines[0]
    return lines[0]


@pytest.fixture
def ratings_csv(tmp_path, data):
    path = tmp_path / "r.csv"
    rows = ["userId,movieId,rating"] + [
        f"{data.user_map.raw(u)},{data.item_map.raw(i)},{r:g}"
        for u, i, r in zip(data.users, data.items, data.ratings)]
    path.write_text("\n".join(rows) + "\n")
    return path


# ---- items 2, 3, 4: --out is checked before any work --------------------------------------------
@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts loading data (it must refuse --out first)."""
    def boom(*args, **kwargs):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr("embedrec.cli.models.load_data", boom)
    monkeypatch.setattr("embedrec.cli.compare.load_data", boom)


@pytest.mark.parametrize("command", [["train", "--model", "biased"], ["compare"]])
@pytest.mark.parametrize("target", ["", "."])
def test_out_that_is_the_current_folder_is_refused_before_work(command, target, no_work, capsys,
                                                               tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("mine")
    assert main([*command, "--out", target]) == 1
    assert "not the current folder" in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_train_refuses_a_folder_with_a_foreign_manifest(tmp_path, no_work, capsys):
    ext = tmp_path / "extension"
    ext.mkdir()
    (ext / "manifest.json").write_text(json.dumps({"manifest_version": 3, "name": "x"}))
    (ext / "background.js").write_text("// precious")
    assert main(["train", "--model", "biased", "--out", str(ext)]) == 1
    assert "not a model folder written by embedrec" in _one_line_error(capsys)
    assert (ext / "background.js").read_text() == "// precious"


def test_save_model_refuses_foreign_manifests_and_replaces_its_own(bundle, tmp_path):
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "manifest.json").write_text('{"model": "x"}')  # has "model" but is not ours
    (ext / "other.txt").write_text("keep")
    with pytest.raises(ModelFileError, match="not a model folder written by embedrec"):
        save_model(bundle, ext)
    assert (ext / "other.txt").read_text() == "keep"
    folder = save_model(bundle, tmp_path / "model")
    assert save_model(bundle, folder) == folder  # an embedrec model folder may be replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ext", "model"]


def test_compare_refuses_a_folder_that_is_not_a_results_folder(tmp_path, no_work, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text("my own results")
    assert main(["compare", "--out", str(mine)]) == 1
    assert "not an embedrec results folder" in _one_line_error(capsys)
    assert (mine / "results.json").read_text() == "my own results"


def test_compare_out_rewrites_an_earlier_results_folder(ratings_csv, tmp_path, capsys):
    out = tmp_path / "res"
    args = ["compare", "--data", str(ratings_csv), "--models", "bias", "--seeds", "1",
            "--no-report", "--out", str(out)]
    assert main(args) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings[io.RESULTS_MARKER] == "0.1.0"
    assert main(args) == 0  # its own folder: rewritten
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_write_results_itself_refuses_a_foreign_folder(tmp_path):
    from embedrec.compare import Comparison

    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(io.OutputError, match="not an embedrec results folder"):
        write_results(Comparison(records=[], settings={}), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.md"]


def _protocols_folder(path, names, foreign=None, settings='{"embedrec_results": "0.1.0"}'):
    path.mkdir()
    (path / "verdict.json").write_text("{}")
    for name in names:
        (path / f"protocol-{name}").mkdir()
        (path / f"protocol-{name}" / "settings.json").write_text(settings)
    if foreign:
        (path / foreign).write_text("mine")


@pytest.mark.parametrize("setup, ok", [
    (lambda p: None, True),  # absent
    (lambda p: p.mkdir(), True),  # empty
    (lambda p: (p.mkdir(), (p / "settings.json").write_text('{"embedrec_results": "0.1.0"}')), True),
    (lambda p: (p.mkdir(), (p / "settings.json").write_text(
        '{"versions": {"embedrec": "0.1.0"}, "preset": {}}')), True),  # written before the marker
    (lambda p: (p.mkdir(), (p / "settings.json").write_text('{"theme": "dark"}')), False),
    (lambda p: (p.mkdir(), (p / "settings.json").write_text("[" * 10_000)), False),
    (lambda p: p.write_text("a file"), False),
    # an earlier compare --protocol folder: verdict.json beside protocol-<name>/ results
    (lambda p: _protocols_folder(p, ["a", "b"]), True),
    (lambda p: _protocols_folder(p, ["b"], foreign="notes.md"), False),
    (lambda p: _protocols_folder(p, ["b"], settings='{"theme": "dark"}'), False),
    (lambda p: (_protocols_folder(p, ["b"]), (p / "verdict.json").unlink()), False),
])
def test_check_results_out(tmp_path, setup, ok):
    target = tmp_path / "out"
    setup(target)
    if ok:
        assert io.check_results_out(target) == target
    else:
        with pytest.raises(io.OutputError):
            io.check_results_out(target)


# ---- item 5: a crash between the two renames of a save ------------------------------------------
def test_load_recovers_a_model_left_in_dot_old(bundle, tmp_path, data):
    folder = save_model(bundle, tmp_path / "m")
    expected = recommend(load_model(folder), data.user_map.raw(0), k=5)
    os.rename(folder, tmp_path / ".m.old")  # the first rename happened, the second did not
    assert recommend(load_model(folder), data.user_map.raw(0), k=5).equals(expected)
    assert folder.is_dir() and not (tmp_path / ".m.old").exists()


def test_replace_dir_puts_the_old_folder_back_when_the_second_rename_fails(tmp_path, monkeypatch):
    folder, tmp = tmp_path / "f", tmp_path / ".f-new"
    folder.mkdir()
    (folder / "a").write_text("old")
    tmp.mkdir()
    (tmp / "a").write_text("new")
    real, calls = os.replace, []

    def failing(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(src, dst)

    monkeypatch.setattr(io.os, "replace", failing)
    with pytest.raises(KeyboardInterrupt):
        io.replace_dir(tmp, folder)
    assert (folder / "a").read_text() == "old"
    monkeypatch.setattr(io.os, "replace", real)
    io.replace_dir(tmp, folder)
    assert (folder / "a").read_text() == "new" and not io.old_path(folder).exists()


def test_recover_dir_leaves_an_existing_folder_alone(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / ".f.old").mkdir()
    assert io.recover_dir(tmp_path / "f") is False
    assert io.recover_dir(tmp_path / "g") is False


# ---- item 6: temporaries of a killed process are swept ------------------------------------------
def test_save_sweeps_stale_temporaries_but_not_fresh_ones(bundle, tmp_path):
    stale, fresh = tmp_path / ".m-dead1234", tmp_path / ".m-live5678"
    for d in (stale, fresh):
        d.mkdir()
        (d / "weights.safetensors").write_bytes(b"half")
    past = io.PROCESS_START - 60
    os.utime(stale, (past, past))
    save_model(bundle, tmp_path / "m")
    assert not stale.exists()
    assert fresh.exists()  # may belong to a live process
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m-live5678", "m"]


def test_process_start_is_in_the_past():
    assert io.PROCESS_START <= time.time()


# ---- items 13, 14: manifest limits, permissions -------------------------------------------------
def test_a_deeply_nested_manifest_is_refused_in_one_line(bundle, tmp_path, capsys):
    folder = save_model(bundle, tmp_path / "m")
    (folder / "manifest.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ModelFileError, match="nested deeper than 64 levels"):
        load_model(folder)
    assert main(["recommend", "--model", str(folder), "--user", "1"]) == 1
    assert "manifest.json: JSON nested deeper" in _one_line_error(capsys)


def test_an_oversized_manifest_is_refused_before_parsing(bundle, tmp_path, monkeypatch):
    folder = save_model(bundle, tmp_path / "m")
    size = (folder / "manifest.json").stat().st_size
    monkeypatch.setattr(io, "MAX_MANIFEST_BYTES", size - 1)
    monkeypatch.setattr(io.read_json_limited, "__defaults__", (size - 1, io.MAX_JSON_DEPTH))
    monkeypatch.setattr(io.json, "loads", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(ModelFileError, match=f"over the limit of {size - 1:,}"):
        load_model(folder)


@pytest.mark.parametrize("config", [None, [], "biased", 3])
def test_a_config_of_the_wrong_type_is_refused(bundle, tmp_path, config):
    folder = save_model(bundle, tmp_path / "m")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["config"] = config
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError):
        load_model(folder)


def test_json_depth_ignores_brackets_in_strings():
    assert io.json_depth('{"a": "[[[[[[", "b": [1, [2]]}') == 3
    assert io.json_depth('"\\"[[["') == 0
    assert io.json_depth("[]") == 1


def test_model_files_get_the_usual_permissions(bundle, tmp_path, umask022):
    folder = save_model(bundle, tmp_path / "m")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == {"weights.safetensors": 0o644, "manifest.json": 0o644}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


# ---- io.atomic_write_* --------------------------------------------------------------------------
def test_atomic_write_gives_usual_permissions_and_replaces(tmp_path, umask022):
    path = tmp_path / "sub" / "f.txt"
    io.atomic_write_text(path, "one")
    io.atomic_write_text(path, "two")
    assert path.read_text() == "two" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ["f.txt"]


def test_an_interrupted_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    io.atomic_write_bytes(path, b"old")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(io.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_sha256_file(tmp_path):
    (tmp_path / "x").write_bytes(b"abc")
    assert io.sha256_file(tmp_path / "x") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_read_json_limited_names_the_file(tmp_path):
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe")
    with pytest.raises(EmbedrecError, match=r"bad\.json: not UTF-8"):
        io.read_json_limited(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(EmbedrecError, match=r"bad\.json: not valid JSON"):
        io.read_json_limited(tmp_path / "bad.json")


# ---- item 25: data values are never rich markup -------------------------------------------------
MARKUP_TITLES = ["[/oops]", "[red]Red movie[/red]", "[link=http://evil.test]click[/link]",
                 "[bold]Bold (1999)"]


def test_titles_with_markup_are_printed_verbatim(tmp_path, capsys):
    rows = ["userId,movieId,rating"] + [f"{u},{i},{(u * i) % 9 / 2 + 0.5}"
                                        for u in range(1, 13) for i in range(1, 5)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    movies = ["movieId,title,genres"] + [f'{i},"{t}",Drama' for i, t in enumerate(MARKUP_TITLES, 1)]
    (tmp_path / "m.csv").write_text("\n".join(movies) + "\n")
    model = tmp_path / "model"
    assert main(["train", "--model", "biased", "--epochs", "1", "--data", str(tmp_path / "r.csv"),
                 "--items", str(tmp_path / "m.csv"), "--out", str(model)]) == 0
    capsys.readouterr()
    assert main(["recommend", "--model", str(model), "--rate", "1=4", "-k", "3"]) == 0
    shown = capsys.readouterr().out
    assert sum(t in shown for t in MARKUP_TITLES) == 3  # every recommended title, verbatim
    assert "\x1b]8;" not in shown  # no hyperlink escape
    assert main(["similar", "--model", str(model), "--movie", "[/oops]", "-k", "3"]) == 0
    shown = capsys.readouterr().out
    assert "movies like '[/oops]'" in shown and sum(t in shown for t in MARKUP_TITLES) >= 3


def test_a_dataset_name_with_markup_is_printed_verbatim(tmp_path, capsys):
    path = tmp_path / "[red]x.csv"
    path.write_text("userId,movieId,rating\n1,1,4\n1,2,3\n2,1,5\n")
    assert main(["data", "info", "--data", str(path), "--top", "2"]) == 0
    assert "[red]x" in capsys.readouterr().out


# ---- item 23: a mirror that is not a URL --------------------------------------------------------
@pytest.mark.parametrize("mirror", ["not a url", "ftp://x/", "http://", "http://h:99999/"])
def test_a_bad_mirror_url_is_a_one_line_error(mirror, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("EMBEDREC_MIRROR", mirror)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("EMBEDREC_DATA", raising=False)
    assert main(["data", "fetch", "ml-100k"]) == 1
    assert "EMBEDREC_MIRROR" in _one_line_error(capsys)


# ---- data synth --out: the same rule (found while fuzzing the command line) ---------------------
def test_synth_never_overwrites_a_users_ratings(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "ratings.csv").write_text("userId,movieId,rating\n1,1,5\n")
    args = ["data", "synth", "--users", "5", "--items", "40", "--ratings", "100"]
    assert main([*args, "--out", str(mine)]) == 1
    assert "refusing to overwrite" in _one_line_error(capsys)
    assert (mine / "ratings.csv").read_text() == "userId,movieId,rating\n1,1,5\n"
    assert main([*args, "--out", str(tmp_path / "s")]) == 0
    assert main([*args, "--seed", "1", "--out", str(tmp_path / "s")]) == 0  # its own: rewritten
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "movies.csv", "ratings.csv", "synth.json"]


def test_a_unicode_digit_user_is_a_one_line_error(bundle, tmp_path, capsys):
    folder = save_model(bundle, tmp_path / "m")
    assert main(["recommend", "--model", str(folder), "--user", "¹"]) == 1
    assert "¹" in _one_line_error(capsys)
