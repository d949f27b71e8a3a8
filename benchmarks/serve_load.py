"""Load benchmark of `embedrec serve` on loopback: throughput, p50/p99 latency and errors.

    EMBEDREC_DATA=../shared/data .venv/bin/python benchmarks/serve_load.py [--seconds 10]

Trains a biased model on ml-latest-small (preset default), starts `embedrec serve` on
127.0.0.1 in its own process, and drives it with wrk (Debian's package; `make bench` installs
it) for a bounded time with a few connections:
- known users: GET /users/{id}/recommendations?k=10 over all 610 users in turn;
- new users: POST /recommendations with 10 ratings of popular movies (fold-in, no retraining).
Only loopback addresses are used; every run stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

RESULTS = Path(__file__).parent / "results"
KNOWN = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/users/" .. (counter % 610 + 1) .. "/recommendations?k=10")
end
"""
NEW = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '%s'
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_wrk(text: str) -> dict:
    def seconds(value: str, unit: str) -> float:
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]

    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", text, re.M))
    out = {f"p{k}_ms": 1e3 * seconds(*re.match(r"([\d.]+)(\w+)", v).groups()) for k, v in lat.items()}
    out["requests_per_s"] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    out["requests"] = int(re.search(r"(\d+) requests in", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["errors"] = (int(errors.group(1)) if errors else 0) + (
        sum(map(int, socket_errors.groups())) if socket_errors else 0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (make bench does it)")
    import embedrec

    data = embedrec.load_movielens("ml-latest-small")
    tmp = Path(tempfile.mkdtemp(prefix="embedrec-load-"))
    model = embedrec.save_model(embedrec.train_bundle(data, "biased", embedrec.get_preset("default")),
                                tmp / "model")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "embedrec", "serve", "--model", str(model),
                               "--port", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
        popular = httpx.get(f"{url}/movies", params={"limit": 10}).json()
        body = json.dumps({"ratings": [{"movie_id": m["movie_id"], "rating": r} for m, r in
                                       zip(popular, (5, 4, 4.5, 2, 3, 5, 1, 3.5, 4, 2.5))], "k": 10})
        report = {"seconds": args.seconds, "connections": args.connections}
        for name, script, path in (("known_user", KNOWN, "/"),
                                   ("new_user", NEW % body, "/recommendations")):
            lua = tmp / f"{name}.lua"
            lua.write_text(script)
            subprocess.run(["wrk", "-t1", f"-c{args.connections}", "-d2s", "-s", str(lua),
                            url + path], check=True, capture_output=True)  # warm-up
            run = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s",
                                  "--latency", "-s", str(lua), url + path], check=True,
                                 capture_output=True, text=True)
            report[name] = parse_wrk(run.stdout)
            r = report[name]
            print(f"{name:10s} {r['requests_per_s']:8.0f} req/s  p50 {r['p50_ms']:.1f} ms  "
                  f"p99 {r['p99_ms']:.1f} ms  errors {r['errors']}  ({r['requests']:,} requests)",
                  flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_load.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
