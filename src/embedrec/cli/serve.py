"""`embedrec serve` and `embedrec report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from embedrec.cli.common import app, err, out
from embedrec.errors import EmbedrecError


@app.command()
def serve(
    model_dir: Annotated[Path, typer.Option("--model", help="Model folder from `embedrec train`.")],
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless you say so).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    cors_origin: Annotated[list[str], typer.Option(help="Allow this browser origin (repeat).")] = [],
    docs: Annotated[bool, typer.Option("--docs", help="Serve interactive API docs at /docs "
                                       "(needs the fastapi-offline package; never a CDN).")] = False,
) -> None:
    """Serve a model over HTTP: a JSON API (schema at /openapi.json) and a web page at /."""
    import socket

    from embedrec.persistence import load_model
    from embedrec.serve import create_app
    import uvicorn

    from embedrec.serve.server import server_config

    load_model(model_dir)  # fail here, with a one-line error, rather than inside the server
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise EmbedrecError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    app_ = create_app(model_dir, cors_origins=tuple(cors_origin), docs=docs)
    where = "API docs at /docs" if docs else "API schema at /openapi.json"
    err.print(f"serving {model_dir} on http://{host}:{port}/ ({where})", markup=False,
              highlight=False)
    uvicorn.Server(server_config(app_, host=host, port=port)).run()


@app.command("report")
def report_cmd(folder: Annotated[Path, typer.Argument(help="A folder written by compare --out.")]
               ) -> None:
    """Rebuild report.html (and figures/) from a results folder, without retraining."""
    from embedrec.reports import build_report

    out.print(f"wrote {build_report(folder)}", markup=False, highlight=False)
