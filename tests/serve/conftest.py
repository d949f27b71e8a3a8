"""A real uvicorn server on loopback, serving a small model trained on synthetic data."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from embedrec.data import load_ratings_file
from embedrec.data.synth import SynthConfig, write_synthetic
from embedrec.persistence import save_model
from embedrec.presets import get_preset
from embedrec.experiment import train_bundle


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    folder = write_synthetic(SynthConfig(n_users=120, n_items=300, n_ratings=6_000, seed=7),
                             root / "data")
    data = load_ratings_file(folder)
    bundle = train_bundle(data, "biased", get_preset("default").with_overrides(epochs=5), seed=0)
    return save_model(bundle, root / "model")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(self, app):
        import uvicorn

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        from embedrec.serve.server import server_config

        # the settings `embedrec serve` runs with (limits, no banner)
        self.server = uvicorn.Server(server_config(app, host="127.0.0.1", port=self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live(model_dir):
    from embedrec.serve import create_app

    with LiveServer(create_app(model_dir)) as server:
        yield server


@pytest.fixture
def client(live):
    with httpx.Client(base_url=live.url, timeout=10) as c:
        yield c
