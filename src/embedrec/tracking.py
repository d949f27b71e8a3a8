"""Experiment tracking with MLflow (optional: ``pip install embedrec[mlflow]``).

``compare --mlflow [URI]`` logs one parent run (the settings) with a nested run per model and
seed: its parameters, per-epoch training and validation loss, final metrics; the results files
(``results.json``, ``stats.json``, ``report.html``) are the parent's artifacts. ``tune --mlflow``
logs a run per model: the budget, every trial's value (step = trial number), the best settings,
and ``best.json``/``tuning.json``. ``URI`` ``local`` (the default) is ``./mlruns``, a local file
store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import warnings
from pathlib import Path

from embedrec.errors import EmbedrecError

log = logging.getLogger(__name__)
LOCAL = "local"


def check_available():
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise EmbedrecError("--mlflow needs MLflow: pip install 'embedrec[mlflow]'") from None


def tracking_uri(uri: str | None) -> str:
    """``local`` or empty: a file store in ./mlruns; a path: a file store there; else as is
    (e.g. ``sqlite:///mlflow.db`` or ``http://host:5000``).

    Recent MLflow versions refuse file stores unless ``MLFLOW_ALLOW_FILE_STORE`` is true; for a
    file store embedrec sets it (unless it is already set), since a local folder is the default
    the command promises."""
    if not uri or uri == LOCAL:
        uri = Path("mlruns").resolve().as_uri()
    elif "://" not in uri and not uri.startswith("file:"):
        uri = Path(uri).resolve().as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _key(name: str) -> str:
    """An MLflow-safe key: ``*`` (every model) becomes ``all``, other odd characters ``_``."""
    return re.sub(r"[^0-9A-Za-z_\-. :/]", "_", name.replace("*", "all"))


def _flat(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[_key(prefix)] = "None" if value is None else str(value)[:500]
    return out


def _metrics(values: dict) -> dict:
    return {_key(k): float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _artifacts(mlflow, folder, names) -> None:
    if folder is None:
        return
    for name in names:
        path = Path(folder) / name
        if path.is_file():
            mlflow.log_artifact(str(path))


def log_comparison(comparison, uri: str | None, out_dir=None,
                   experiment: str = "embedrec-compare") -> str:
    """Log a ``Comparison`` to MLflow; return the parent run's id."""
    check_available()
    import mlflow

    with _quiet():
        mlflow.set_tracking_uri(tracking_uri(uri))
        mlflow.set_experiment(experiment)
        settings = comparison.settings
        with mlflow.start_run(run_name=f"compare {settings['dataset']}") as parent:
            mlflow.log_params(_flat("", {k: settings[k] for k in (
                "dataset", "split", "split_seed", "k", "seeds", "models") if k in settings}, {}))
            mlflow.log_params(_flat("preset", settings["preset"], {}))
            for row in comparison.summary():
                mlflow.log_metrics(_metrics({f"{row['model']}.{k}": v for k, v in row.items()}))
            for pair in (comparison.extras.get("stats") or {}).get("pairs", []):
                name = f"{pair['metric']}.{pair['a']}-{pair['b']}"
                mlflow.log_metrics(_metrics({f"{name}.p_holm": pair["p_holm"],
                                             f"{name}.difference": pair["difference"]}))
            for rec in comparison.records:
                with mlflow.start_run(run_name=f"{rec['model']} seed {rec['seed']} fold "
                                               f"{rec['fold']}", nested=True):
                    mlflow.log_params({"model": rec["model"], "seed": rec["seed"],
                                       "fold": rec["fold"]})
                    mlflow.log_params(_flat("config", rec.get("config") or {}, {}))
                    for epoch in rec.get("history") or []:
                        mlflow.log_metrics(_metrics({k: v for k, v in epoch.items()
                                                     if k != "epoch"}), step=int(epoch["epoch"]))
                    mlflow.log_metrics(_metrics({k: v for k, v in rec.items()
                                                 if k not in ("seed", "fold", "history")}))
            _artifacts(mlflow, out_dir, ("results.json", "summary.json", "stats.json",
                                         "settings.json", "report.html"))
            run_id = parent.info.run_id
    log.info("logged the comparison to MLflow run %s", run_id)
    return run_id


def log_tuning(report: dict, uri: str | None, out_dir=None,
               experiment: str = "embedrec-tune") -> list[str]:
    """Log a tuning report (``tuning.json``) to MLflow, a run per model; return the run ids."""
    check_available()
    import mlflow

    ids = []
    with _quiet():
        mlflow.set_tracking_uri(tracking_uri(uri))
        mlflow.set_experiment(experiment)
        for name, res in report["models"].items():
            with mlflow.start_run(run_name=f"tune {name}") as run:
                mlflow.log_params({"model": name, "trials": report["budget"]["trials"],
                                   "timeout": report["budget"]["timeout"],
                                   "dataset": report["dataset"], "seed": report["seed"],
                                   "objective": res.get("objective", "validation MSE")})
                best = res["best_model_settings"] | res["best_train_settings"]
                mlflow.log_params(_flat("best", best, {}))
                for trial in res["trials"]:
                    if trial["value"] is not None:
                        mlflow.log_metric("trial_value", trial["value"], step=trial["number"])
                mlflow.log_metrics(_metrics({"best_value": res["best_value"],
                                             "n_complete": res["n_complete"],
                                             "n_pruned": res["n_pruned"],
                                             "seconds": res["seconds"]}))
                mlflow.log_metrics(_metrics({f"importance.{k}": v
                                             for k, v in res["importances"].items()}))
                _artifacts(mlflow, out_dir, ("best.json", "tuning.json"))
                mlflow.set_tag("tuning", json.dumps(best)[:5000])
                ids.append(run.info.run_id)
    return ids
