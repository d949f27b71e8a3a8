"""Issue 10 item 1 and the fault-injection checks: real `embedrec` processes interrupted with
SIGINT and SIGTERM (exit 130 / 143, one last line, nothing half-written), and killed with
SIGKILL at random (seeded) points of a save, a results write, a cache build and a download (the
earlier artifacts stay intact, nothing partial is read back, the next run sweeps temporaries).

Every wait is bounded; every child is killed at the end.
"""

from __future__ import annotations

import hashlib
import http.server
import io as _io
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from embedrec.data.synth import SynthConfig, write_synthetic

pytestmark = pytest.mark.slow
PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, **extra) -> dict:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONUNBUFFERED="1",
               COLUMNS="200")
    env.pop("EMBEDREC_DATA", None)
    env.pop("EMBEDREC_MIRROR", None)
    return env | extra


_CHILDREN: list[subprocess.Popen] = []


def _start(args: list[str], env: dict, cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _CHILDREN.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _reap_children():
    """Whatever a test does, its children are killed and their pipes closed at the end."""
    yield
    while _CHILDREN:
        proc = _CHILDREN.pop()
        if proc.poll() is None:
            proc.kill()
        try:
            proc.communicate(timeout=30)
        except (ValueError, OSError):  # pipes already closed by an earlier communicate
            pass
        proc.wait(timeout=30)


def _wait_for_line(proc: subprocess.Popen, stream, needle: str, timeout: float = 120) -> str:
    """Read ``stream`` until a line holds ``needle`` (bounded); returns what was read."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.5)
        if ready:
            line = stream.readline()
            if not line:
                break
            seen.append(line)
            if needle in line:
                return "".join(seen)
        elif proc.poll() is not None:
            break
    raise AssertionError(f"never saw {needle!r}; got {''.join(seen)!r}")


def _finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    try:
        _, rest = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, rest


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return write_synthetic(SynthConfig(n_users=150, n_items=200, n_ratings=8_000, seed=1),
                           tmp_path_factory.mktemp("synth") / "data")


@pytest.fixture(scope="module")
def endless(tmp_path_factory) -> Path:
    """A preset whose training cannot end on its own within the test: 500 epochs and no early
    stopping (the default preset stops after about 8 epochs of this data, a fraction of a second
    after "epoch 1:" is logged, which raced the signal on a slow machine)."""
    path = tmp_path_factory.mktemp("preset") / "endless.json"
    path.write_text(json.dumps({"train": {"epochs": 500, "batch_size": 32, "patience": None}}))
    return path


# ---- item 1: Ctrl-C and SIGTERM -----------------------------------------------------------------
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")])
def test_interrupted_training_exits_130_or_143_and_saves_nothing(synth, endless, tmp_path, sig,
                                                                code, word):
    out = tmp_path / "models" / "x"
    proc = _start([PY, "-m", "embedrec", "-v", "train", "--model", "mlp", "--preset-file",
                   str(endless), "--data", str(synth), "--out", str(out)], _env(tmp_path), tmp_path)
    _wait_for_line(proc, proc.stderr, "epoch 2:")
    proc.send_signal(sig)
    rc, rest = _finish(proc)
    assert rc == code
    last = rest.strip().splitlines()[-1]
    assert last == word and "Traceback" not in rest
    assert not out.exists()
    assert not (tmp_path / "models").exists() or list((tmp_path / "models").iterdir()) == []


def test_interrupted_compare_keeps_the_earlier_results(synth, endless, tmp_path):
    out = tmp_path / "res"
    env = _env(tmp_path)
    first = subprocess.run([PY, "-m", "embedrec", "compare", "--data", str(synth), "--models",
                            "bias", "--seeds", "1", "--no-report", "--out", str(out)],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = _start([PY, "-m", "embedrec", "-v", "compare", "--data", str(synth), "--models",
                   "mlp", "--preset-file", str(endless), "--seeds", "1", "--out", str(out)],
                  env, tmp_path)
    _wait_for_line(proc, proc.stderr, "epoch 2:")
    proc.send_signal(signal.SIGINT)
    rc, rest = _finish(proc)
    assert rc == 130 and rest.strip().splitlines()[-1] == "interrupted"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# ---- a loopback mirror that serves slowly -------------------------------------------------------
def _tiny_zip() -> bytes:
    buf = _io.BytesIO()
    rng = np.random.default_rng(0)
    lines = "".join(f"{u}\t{i}\t{r}\t{874965758 + n}\n" for n, (u, i, r) in enumerate(
        zip(rng.integers(1, 50, 3000), rng.integers(1, 80, 3000), rng.integers(1, 6, 3000))))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("ml-100k/u.data", lines)
        zf.writestr("ml-100k/u.item", "1|Toy Story (1995)|01-Jan-1995||x|" + "0|" * 18 + "0\n")
    return buf.getvalue()


class SlowMirror:
    """Serves ml-100k.zip in 2 KB pieces, 150 ms apart (about four seconds in all)."""

    def __init__(self, payload: bytes):
        payload_ = payload

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                if self.path != "/ml-100k.zip":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload_)))
                self.end_headers()
                try:
                    for start in range(0, len(payload_), 2048):
                        self.wfile.write(payload_[start:start + 2048])
                        self.wfile.flush()
                        time.sleep(0.15)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slow_mirror(monkeypatch):
    payload = _tiny_zip()
    with SlowMirror(payload) as mirror:
        yield mirror, hashlib.md5(payload).hexdigest()


def _fetch_cmd(md5: str) -> list[str]:
    # the registry's ml-100k md5 is the real release's: let the child check ours instead
    code = ("import dataclasses, sys; from embedrec.data import registry; "
            f"registry.RELEASES['ml-100k'] = dataclasses.replace(registry.RELEASES['ml-100k'], md5={md5!r}); "
            "from embedrec.cli import run; sys.argv = ['embedrec', 'data', 'fetch', 'ml-100k']; run()")
    return [PY, "-c", code]


def _wait_for(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition never held")


def test_a_terminated_download_leaves_no_part_file(slow_mirror, tmp_path):
    mirror, md5 = slow_mirror
    env = _env(tmp_path, EMBEDREC_MIRROR=mirror.url)
    cache = tmp_path / "xdg" / "embedrec"
    proc = _start(_fetch_cmd(md5), env, tmp_path)
    # the download reads in large blocks, so the .part file may stay empty until its end:
    # its existence says the download is under way
    _wait_for(lambda: cache.is_dir() and any(cache.glob("*.part")))
    proc.send_signal(signal.SIGTERM)
    rc, rest = _finish(proc)
    assert rc == 143 and rest.strip().splitlines()[-1] == "terminated"
    assert list(cache.iterdir()) == []


def test_killed_downloads_are_swept_and_never_half_unpacked(slow_mirror, tmp_path):
    mirror, md5 = slow_mirror
    env = _env(tmp_path, EMBEDREC_MIRROR=mirror.url)
    cache = tmp_path / "xdg" / "embedrec"
    rng = np.random.default_rng(10)
    for _ in range(2):
        proc = _start(_fetch_cmd(md5), env, tmp_path)
        _wait_for(lambda: cache.is_dir() and any(cache.glob("*.part")))
        time.sleep(rng.uniform(0.0, 0.5))
        proc.kill()
        proc.communicate(timeout=30)
        assert not (cache / "ml-100k").exists()  # nothing half-unpacked is ever in place
    assert list(cache.glob("*.part"))  # SIGKILL: no chance to clean up
    done = subprocess.run(_fetch_cmd(md5), env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k"]  # the next run swept them
    assert (cache / "ml-100k" / "u.data").stat().st_size > 0


# ---- SIGKILL at random points: save, results, cache ---------------------------------------------
SAVE_LOOP = """
import sys
from embedrec.persistence import load_model, save_model
a, b = load_model(sys.argv[1]), load_model(sys.argv[2])
print("ready", flush=True)
n = 0
while True:
    save_model(a if n % 2 == 0 else b, sys.argv[3])
    n += 1
"""

RESULTS_LOOP = """
import sys, json
from embedrec.compare import Comparison, write_results
def make(tag):
    return Comparison(records=[{"model": tag, "seed": s, "rmse": 1.0} for s in range(200)],
                      settings={"tag": tag, "seeds": list(range(200))},
                      extras={"analysis": {"tag": tag, "x": list(range(5000))}, "data": {"tag": tag}})
a, b = make("a"), make("b")
print("ready", flush=True)
n = 0
while True:
    write_results(a if n % 2 == 0 else b, sys.argv[1])
    n += 1
"""

CACHE_LOOP = """
import sys
import numpy as np
from pathlib import Path
from embedrec.data import cache
source = Path(sys.argv[1])
n = 200_000
arrays = {"users": np.arange(n, dtype=np.int32), "items": np.arange(n, dtype=np.int32) % 7,
          "ratings": np.full(n, 3.5, dtype=np.float32), "timestamps": np.arange(n, dtype=np.int64),
          "user_ids": np.arange(n, dtype=np.int64), "item_ids": np.arange(7, dtype=np.int64)}
print("ready", flush=True)
while True:
    assert cache.store(source, "0" * 32, {"o": 1}, arrays, {}) is not None
"""


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    from embedrec.persistence import save_model
    from embedrec.presets import get_preset
    from embedrec.experiment import train_bundle
    from tests.conftest import make_ratings

    root = tmp_path_factory.mktemp("two")
    data = make_ratings(n_users=300, n_items=400, density=0.2, seed=5)
    preset = get_preset("default").with_overrides(epochs=1)
    return [save_model(train_bundle(data, "biased", preset, seed=s), root / f"m{s}")
            for s in (0, 1)]


def _kill_at_random(script: list[str], env: dict, cwd: Path, rng, check, rounds: int = 4,
                    sig=signal.SIGKILL) -> None:
    for _ in range(rounds):
        proc = _start([PY, "-c", *script], env, cwd)
        _wait_for_line(proc, proc.stdout, "ready")
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(sig)
        proc.communicate(timeout=30)
        check()


def test_saves_killed_at_random_points_leave_a_whole_model(two_models, tmp_path):
    from embedrec.persistence import load_model

    a, b = two_models
    target = tmp_path / "out" / "model"
    shas = {json.loads((m / "manifest.json").read_text())["weights_sha256"] for m in two_models}
    env = _env(tmp_path)
    rng = np.random.default_rng(1)

    def check():
        if target.exists() or (tmp_path / "out" / ".model.old").exists():
            bundle = load_model(target)  # verified: checksum, shapes (recovers .model.old)
            assert bundle.manifest["weights_sha256"] in shas

    _kill_at_random([SAVE_LOOP, str(a), str(b), str(target)], env, tmp_path, rng, check,
                    rounds=2)
    _kill_at_random([SAVE_LOOP, str(a), str(b), str(target)], env, tmp_path, rng, check,
                    rounds=1, sig=signal.SIGINT)
    # a normal save afterwards sweeps what the killed ones left
    done = subprocess.run([PY, "-c", "import sys; from embedrec.persistence import load_model, "
                           "save_model; save_model(load_model(sys.argv[1]), sys.argv[2])",
                           str(a), str(target)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["model"]


def test_results_killed_at_random_points_are_never_partial(tmp_path):
    out = tmp_path / "res"
    env = _env(tmp_path)
    rng = np.random.default_rng(2)

    def check():
        for path in out.glob("*.json"):
            json.loads(path.read_text())  # every file whole
        if (out / "results.csv").exists():
            assert (out / "results.csv").read_text().count("\n") == 201
        leftovers = [p for p in out.iterdir() if p.name.startswith(".")] if out.exists() else []
        assert all(p.name.endswith(".tmp") for p in leftovers)

    _kill_at_random([RESULTS_LOOP, str(out)], env, tmp_path, rng, check, rounds=2)


def test_cache_builds_killed_at_random_points_are_never_read_half(tmp_path):
    from embedrec.data import cache

    source = tmp_path / "ratings.csv"
    source.write_text("x")
    env = _env(tmp_path)
    rng = np.random.default_rng(3)

    def check():
        got = cache.load(source, "0" * 32, {"o": 1})
        if got is not None:
            arrays = got["arrays"]
            assert set(arrays) == {"users", "items", "ratings", "timestamps", "user_ids",
                                   "item_ids"}
            assert np.array_equal(arrays["timestamps"], np.arange(200_000))

    _kill_at_random([CACHE_LOOP, str(source)], env, tmp_path, rng, check, rounds=2)
