"""Issue 10's "keep it so": hypothesis fuzzing of the `embedrec` command.

Inputs: random CLI argument combinations, random bytes and random CSV shapes as ratings files,
random bytes as model files, and mutated manifests and weights of a real model folder (with the
sha256 recomputed, so that the checks behind the checksum are what is tested).

The property, for every case: the exit code is 0, 1 or 2; nothing raises out of ``main`` (no
traceback); a failure prints exactly one ``error:`` line on stderr; and no file outside the
command's own output (and the documented encoded-data cache next to a ratings file) is created,
changed or removed. Runs are derandomized, so the same cases run every time.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

from embedrec.cli import main
from embedrec.persistence import save_model
from embedrec.presets import get_preset
from embedrec.experiment import train_bundle
from tests.conftest import make_ratings

pytestmark = pytest.mark.slow
FUZZ = settings(deadline=None, database=None, derandomize=True, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
ALLOWED = {0, 1, 2}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(root.rglob("*"))}


def _check(code: int, err: str, before: dict, after: dict, out: str | None = None) -> None:
    assert code in ALLOWED, (code, err)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    if code != 0:
        assert len(errors) == 1, err
        other = [line for line in err.splitlines()
                 if line.strip() and not line.startswith(("error:", "WARNING", "INFO"))]
        assert not other, err
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    outside = {k for k in changed
               if not (out and (k == out or k.startswith(out + "/") or k.startswith(f".{out}")))
               and ".embedrec-cache" not in k}
    assert not outside, outside


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A folder with a small ratings file, a model, a results folder and some user files."""
    root = tmp_path_factory.mktemp("fuzz")
    data = make_ratings(n_users=25, n_items=20, seed=9)
    rows = ["userId,movieId,rating,timestamp"] + [
        f"{data.user_map.raw(u)},{data.item_map.raw(i)},{r:g},{1000 + n}"
        for n, (u, i, r) in enumerate(zip(data.users, data.items, data.ratings))]
    (root / "ratings.csv").write_text("\n".join(rows) + "\n")
    (root / "movies.csv").write_text("movieId,title,genres\n10,Ten (1990),Drama\n20,[red]x,A\n")
    (root / "notes.txt").write_text("the user's own file")
    (root / "foreign").mkdir()
    (root / "foreign" / "manifest.json").write_text('{"manifest_version": 3}')
    bundle = train_bundle(data, "biased", get_preset("default").with_overrides(epochs=1), seed=0)
    save_model(bundle, root / "model")
    return root


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch, tmp_path):
    monkeypatch.delenv("EMBEDREC_DATA", raising=False)
    monkeypatch.setenv("EMBEDREC_MIRROR", "http://127.0.0.1:9/")  # nothing listens there
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


# ---- random CLI argument combinations -----------------------------------------------------------
PATHS = st.sampled_from(["ratings.csv", "movies.csv", "model", "foreign", "notes.txt", "missing",
                         "", ".", "..", "model/manifest.json", "out", "out2", "-", "[red]x"])
NUMBERS = st.sampled_from(["1", "0", "-1", "2", "abc", "1e9", "nan", "", "99999999999999999999"])
WORDS = st.sampled_from(["biased", "dot", "mlp", "mean", "bias", "pop", "svd", "", "1", "10",
                         "Ten (1990)", "[/oops]", "default", "reference", "random", "time",
                         "kfold", "popular", "fast", "exact", "nope", "ml-100k"])
OPTIONS = {  # option -> strategy for its value (None: a flag)
    "--data": PATHS, "--items": PATHS, "--out": PATHS, "--model": st.one_of(PATHS, WORDS),
    "--models": WORDS, "--epochs": NUMBERS, "--seeds": NUMBERS, "--seed": NUMBERS, "-k": NUMBERS,
    "--preset": WORDS, "--split": WORDS, "--engine": WORDS, "--user": st.one_of(NUMBERS, WORDS),
    "--rate": st.sampled_from(["10=4", "Ten (1990)=5", "x", "=", "10=abc", "10=99"]),
    "--movie": st.one_of(WORDS, NUMBERS), "--fallback": WORDS, "--dataset": WORDS,
    "--batch-size": NUMBERS, "--lr": NUMBERS, "--valid-fraction": NUMBERS, "--top": NUMBERS,
    "--json": None, "--no-download": None, "--no-report": None, "--all-users": None,
}
COMMANDS = [["train"], ["compare"], ["recommend"], ["similar"], ["data", "info"],
            ["data", "list"], ["data", "synth"], ["report"], ["nope"], []]


@st.composite
def cli_args(draw):
    command = list(draw(st.sampled_from(COMMANDS)))
    args = command + (["--no-download"] if command[:1] in (["compare"], ["train"]) or
                      command == ["data", "info"] else [])
    for option in draw(st.lists(st.sampled_from(sorted(OPTIONS)), max_size=6, unique=True)):
        value = OPTIONS[option]
        args += [option] if value is None else [option, draw(value)]
    if command[:1] in (["compare"], ["train"]):  # keep training short when it starts
        args += ["--epochs", "1", "--seeds" if command == ["compare"] else "--seed", "1"]
        if command == ["compare"] and "--models" not in args:
            args += ["--models", "bias"]
    if command == ["data", "synth"]:
        args += draw(st.sampled_from([[], ["--users", "5", "--items", "40", "--ratings", "100"]]))
    if draw(st.booleans()):
        args += [draw(PATHS)]  # a stray positional
    return args


@settings(FUZZ, max_examples=100)
@given(args=cli_args())
def test_random_command_lines(sandbox, args, capsys, monkeypatch):
    monkeypatch.chdir(sandbox)
    for leftover in ("out", "out2"):  # each case starts without earlier outputs
        _remove(sandbox / leftover)
    before = _snapshot(sandbox)
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    out = args[args.index("--out") + 1] if "--out" in args[:-1] else None
    if out in ("out", "out2", "model"):
        _check(code, captured.err, before, _snapshot(sandbox), out)
        if out == "model" and (sandbox / "model").is_dir():
            assert (sandbox / "model" / "manifest.json").is_file()
    else:
        _check(code, captured.err, before, _snapshot(sandbox))


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# ---- random bytes and random CSV shapes as a ratings file ---------------------------------------
@settings(FUZZ, max_examples=80)
@given(content=st.binary(max_size=400),
       suffix=st.sampled_from([".csv", ".tsv", ".txt", ".parquet"]))
def test_random_bytes_as_a_ratings_file(tmp_path_factory, content, suffix, capsys):
    root = tmp_path_factory.mktemp("bytes")
    path = root / f"r{suffix}"
    path.write_bytes(content)
    before = _snapshot(root)
    capsys.readouterr()
    code = main(["data", "info", "--data", str(path), "--no-download"])
    _check(code, capsys.readouterr().err, before, _snapshot(root))


HEADER_NAMES = ["userId", "movieId", "rating", "timestamp", "user", "item", "user_id", "item_id",
                "title", "x", "", "\x1b[2J"]
HEADERS = st.lists(st.sampled_from(HEADER_NAMES), min_size=1, max_size=5, unique=True)
VALUES = st.one_of(st.integers(-2**70, 2**70).map(str),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.sampled_from(["", "nan", "1e308", "-0", "4.5", "3", '"q"', "a,b", "1e30",
                                    "NULL", " 5 ", "５", "0x10"]),
                   st.text(max_size=6))


@st.composite
def csv_text(draw, known: bool = False):
    """A CSV of random shape: rows up to the header's width. ``known``: the first data row one
    field longer than the header (pandas then takes the first column as an index, with a
    ParserWarning), a class the readers' rewrite owns."""
    header = draw(HEADERS)
    n_cols = len(header)
    rows = draw(st.lists(st.lists(VALUES, min_size=max(0, n_cols - 1), max_size=n_cols),
                         max_size=12))
    if known:
        rows.insert(0, [draw(VALUES) for _ in range(n_cols + 1)])
    sep = draw(st.sampled_from([",", "\t", ";"]))
    return "\n".join([sep.join(header)] + [sep.join(r) for r in rows]) + draw(
        st.sampled_from(["\n", "", "\r\n"]))


@settings(FUZZ, max_examples=80)
@given(text=csv_text(), command=st.sampled_from(["info", "info", "info", "compare"]))
def test_random_csv_shapes_and_values(tmp_path_factory, text, command, capsys):
    _csv_case(tmp_path_factory, text, command, capsys)


@settings(FUZZ, max_examples=30)
@given(text=csv_text(known=True))
def test_known_csv_shapes_fail_cleanly(tmp_path_factory, text, capsys):
    _csv_case(tmp_path_factory, text, "info", capsys)


def _csv_case(tmp_path_factory, text, command, capsys):
    root = tmp_path_factory.mktemp("csv")
    path = root / "ratings.csv"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = _snapshot(root)
    capsys.readouterr()
    args = (["data", "info", "--data", str(path), "--no-download", "--top", "3"]
            if command == "info" else
            ["compare", "--data", str(path), "--models", "bias,pop", "--seeds", "1",
             "--no-download"])
    code = main(args)
    _check(code, capsys.readouterr().err, before, _snapshot(root))


# ---- model folders: random bytes, mutated manifests and weights ---------------------------------
@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    data = make_ratings(n_users=15, n_items=12, seed=4)
    root = tmp_path_factory.mktemp("models")
    files = {}
    for name in ("biased", "mlp", "bias", "pop"):
        bundle = train_bundle(data, name, get_preset("default").with_overrides(epochs=1), seed=0)
        folder = save_model(bundle, root / name)
        files[name] = ((folder / "manifest.json").read_bytes(),
                       load_file(str(folder / "weights.safetensors")))
    return files, int(data.user_map.raw(0)), int(data.item_map.raw(0))


def _write_model(folder: Path, manifest: dict | bytes, arrays: dict | bytes,
                 rehash: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "weights.safetensors"
    if isinstance(arrays, bytes):
        weights.write_bytes(arrays)
    else:
        save_file(arrays, str(weights), metadata={"format": "embedrec"})
    if isinstance(manifest, dict):
        if rehash:
            manifest = dict(manifest, weights_sha256=hashlib.sha256(weights.read_bytes()).hexdigest())
        manifest = json.dumps(manifest, allow_nan=True).encode()
    (folder / "manifest.json").write_bytes(manifest)


def _use(folder: Path, user: int, item: int, capsys, root: Path, which: int | None = None) -> None:
    """Run recommend (known user, new user) and similar on ``folder`` (or just one of them)."""
    commands = [["recommend", "--model", str(folder), "--user", str(user), "-k", "3"],
                ["recommend", "--model", str(folder), "--rate", f"{item}=4", "-k", "3"],
                ["similar", "--model", str(folder), "--movie", str(item), "-k", "2"]]
    for args in commands if which is None else [commands[which]]:
        before = _snapshot(root)
        capsys.readouterr()
        code = main(args)
        _check(code, capsys.readouterr().err, before, _snapshot(root))


@settings(FUZZ, max_examples=40)
@given(which=st.sampled_from(["manifest", "weights", "both"]), junk=st.binary(max_size=300))
def test_random_bytes_as_model_files(tmp_path_factory, model_files, which, junk, capsys):
    files, user, item = model_files
    manifest, arrays = files["biased"]
    root = tmp_path_factory.mktemp("junk")
    _write_model(root / "m", junk if which != "weights" else json.loads(manifest),
                 junk if which != "manifest" else arrays, rehash=which == "weights")
    _use(root / "m", user, item, capsys, root)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.text(max_size=8)
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4),
    max_leaves=10)
# Every manifest key is fuzzed; bad values of the model layer (issue 10 items 10-12: a NaN/Inf weight, a bad
# rating_range, bad seen.indptr / items.counts) also have their own test below.
KNOWN_MANIFEST_KEYS: set[str] = set()


@st.composite
def manifest_mutation(draw, manifest: dict):
    keys = sorted(set(manifest) - KNOWN_MANIFEST_KEYS - {"weights_sha256"})
    key = draw(st.sampled_from(keys))
    mutated = copy.deepcopy(manifest)
    action = draw(st.sampled_from(["replace", "delete", "replace-inner"]))
    if action == "delete":
        del mutated[key]
    elif action == "replace-inner" and isinstance(mutated[key], dict) and mutated[key]:
        inner = draw(st.sampled_from(sorted(mutated[key])))
        mutated[key][inner] = draw(JSON_VALUES)
    elif action == "replace-inner" and isinstance(mutated[key], list) and mutated[key]:
        mutated[key][draw(st.integers(0, len(mutated[key]) - 1))] = draw(JSON_VALUES)
    else:
        mutated[key] = draw(JSON_VALUES)
    return mutated


@settings(FUZZ, max_examples=60)
@given(data=st.data(), name=st.sampled_from(["biased", "mlp", "bias", "pop"]),
       which=st.integers(0, 2))
def test_mutated_manifests(tmp_path_factory, model_files, data, name, which, capsys):
    files, user, item = model_files
    manifest, arrays = files[name]
    mutated = data.draw(manifest_mutation(json.loads(manifest)))
    root = tmp_path_factory.mktemp("mut")
    _write_model(root / "m", mutated, arrays)
    _use(root / "m", user, item, capsys, root, which=which)


KNOWN_ARRAYS = {"seen.indptr", "items.counts"}  # item 12
ACTIONS = ("drop", "truncate", "extend", "dtype", "reshape", "values", "rename")
DTYPES = (np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_)


def mutate_weights(arrays: dict, rng: np.random.Generator, allow_known: bool = False) -> dict:
    """One random structural or value change to one array (finite values only)."""
    keys = sorted(k for k in arrays if allow_known or k not in KNOWN_ARRAYS)
    key = keys[rng.integers(len(keys))]
    mutated = {k: np.array(v) for k, v in arrays.items()}  # own copies
    a = mutated[key]
    action = ACTIONS[rng.integers(len(ACTIONS))]
    if action == "drop":
        del mutated[key]
    elif action == "truncate":
        mutated[key] = np.ascontiguousarray(a.reshape(-1)[: max(0, a.size - rng.integers(1, 4))])
    elif action == "extend":
        mutated[key] = np.concatenate([a.reshape(-1), a.reshape(-1)[:2]])
    elif action == "dtype":
        mutated[key] = a.astype(DTYPES[rng.integers(len(DTYPES))])
    elif action == "reshape":
        mutated[key] = np.ascontiguousarray(a.reshape(-1)) if a.ndim > 1 else a.reshape(-1, 1)
    elif action == "values" and a.size:
        b = a.reshape(-1)
        # moderate values: huge finite weights overflow the sigmoid, a relative of NaN/Inf
        # (item 10), fuzzed in the known-bad test below
        b[rng.integers(b.size)] = (rng.uniform(-100, 100) if a.dtype.kind == "f"
                                   else rng.integers(-5, 10**6))
    else:
        mutated[f"x{key}"] = mutated.pop(key)
    return mutated


@settings(FUZZ, max_examples=60)
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(["biased", "mlp", "bias", "pop"]))
def test_mutated_weights(tmp_path_factory, model_files, seed, name, capsys):
    files, user, item = model_files
    manifest, arrays = files[name]
    rng = np.random.default_rng(seed)
    mutated = mutate_weights(arrays, rng)
    root = tmp_path_factory.mktemp("mutw")
    _write_model(root / "m", json.loads(manifest), mutated)
    _use(root / "m", user, item, capsys, root, which=int(rng.integers(3)))


# ---- issue 10 items 10-12: NaN/Inf or overflowing weights, bad rating_range, bad seen.indptr /
# items.counts are refused at load --------------------------------------------------------------
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_known_bad_values_are_refused(tmp_path_factory, model_files, data, capsys):
    files, user, item = model_files
    manifest, arrays = files["biased"]
    manifest = json.loads(manifest)
    kind = data.draw(st.sampled_from(["nan", "range", "indptr", "counts"]))
    arrays = dict(arrays)
    if kind == "nan":
        key = data.draw(st.sampled_from(sorted(k for k in arrays if arrays[k].dtype.kind == "f")))
        b = arrays[key].copy().reshape(-1)
        b[0] = data.draw(st.sampled_from([math.nan, math.inf, -math.inf, 1e6, -1e30]))
        arrays[key] = b.reshape(arrays[key].shape)
    elif kind == "range":
        manifest["rating_range"] = data.draw(st.sampled_from([[5, 0.5], [math.nan, 5], [3, 3]]))
    elif kind == "indptr":
        arrays["seen.indptr"] = arrays["seen.indptr"][::-1].copy()
    else:
        arrays["items.counts"] = -arrays["items.counts"]
    root = tmp_path_factory.mktemp("known")
    _write_model(root / "m", manifest, arrays)
    capsys.readouterr()
    code = main(["recommend", "--model", str(root / "m"), "--user", str(user), "-k", "3"])
    assert code == 1 and "error:" in capsys.readouterr().err  # refused at load
