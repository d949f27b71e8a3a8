"""The ablation table of a results folder: a model as configured and once with each of its inputs
switched in turn (``compare --ablation MODEL``), next to the run's other models.

Built from the records and the summary (never typed by hand): the report shows it as HTML, and
``ablation.md`` holds the same table as Markdown (what the README quotes). Which runs are
ablations follows the records alone: a run whose ``settings`` are not empty is a variant of its
``spec``; the run labelled with that spec and no settings is the model as configured.
"""

from __future__ import annotations

import html

COLUMNS = (("RMSE", "rmse", 4), ("RMSE cold", "rmse_cold", 4),
           ("cold, fallback only", "rmse_cold_fallback", 4), ("RMSE warm", "rmse_warm", 4),
           ("train s", "train_seconds", 2))


def inputs_of(record: dict) -> str:
    """The inputs a run had on: ids plus every ``use_*`` setting that was true ("–" for a
    model without such settings)."""
    config = record.get("config") or {}
    flags = [k for k, v in config.items() if k.startswith("use_") and isinstance(v, bool)]
    if not flags:
        return "–"
    return ", ".join(["ids"] + [k[4:] for k in flags if config[k]])


def change_of(settings: dict) -> str:
    """What a variant switched: ``{"use_genres": False}`` -> "genres off"."""
    return ", ".join(f"{k[4:] if k.startswith('use_') else k} "
                     f"{('on' if v else 'off') if isinstance(v, bool) else f'= {v}'}"
                     for k, v in settings.items())


def ablation_rows(results: list[dict], summary: list[dict], settings: dict) -> list[dict]:
    """One row per run label, the other models first, then each ablated model as configured
    followed by its variants; empty when the folder holds no ablation."""
    variants = [r for r in results if r.get("settings")]
    if not variants:
        return []
    ablated = list(dict.fromkeys(r["spec"] for r in variants))
    by_label = {row["model"]: row for row in summary}
    first = {}
    for rec in results:
        first.setdefault(rec["model"], rec)
    order = ([label for label, rec in first.items() if rec.get("spec", label) not in ablated]
             + [label for spec in ablated for label, rec in first.items()
                if rec.get("spec", label) == spec])
    reference = (settings.get("models") or [None])[0]
    ref_seconds = (by_label.get(reference) or {}).get("train_seconds")
    rows = []
    for label in order:
        rec, row = first[label], by_label[label]
        spec = rec.get("spec", label)
        base = by_label.get(spec) if spec in ablated else None
        delta = (row["rmse"] - base["rmse"]
                 if base is not None and label != spec and row.get("rmse") is not None
                 and base.get("rmse") is not None else None)
        ratio = (row["train_seconds"] / ref_seconds
                 if ref_seconds and row.get("train_seconds") is not None else None)
        rows.append({"model": label, "spec": spec, "ablated": spec in ablated,
                     "variant": bool(rec.get("settings")),
                     "inputs": inputs_of(rec), "change": change_of(rec.get("settings") or {}),
                     "delta_rmse": delta, "time_ratio": ratio, "reference": reference,
                     "n_seeds": row["n_seeds"]}
                    | {key: row.get(key) for _, key, _ in COLUMNS}
                    | {f"{key}_std": row.get(f"{key}_std") for _, key, _ in COLUMNS})
    return rows


def _cells(row: dict) -> list[str]:
    cells = [row["inputs"]]
    for _, key, digits in COLUMNS:
        value = row.get(key)
        cells.append("–" if value is None else
                     f"{value:.{digits}f} ± {row.get(f'{key}_std') or 0.0:.{digits}f}")
        if key == "rmse":
            cells.append("–" if row["delta_rmse"] is None else f"{row['delta_rmse']:+.4f}")
    cells.append("–" if row["time_ratio"] is None else f"{row['time_ratio']:.2f}")
    return cells


def _head(rows: list[dict]) -> list[str]:
    reference = rows[0]["reference"] if rows else None
    names = ["model", "inputs"]
    for name, key, _ in COLUMNS:
        names.append(name)
        if key == "rmse":
            names.append("Δ RMSE vs as configured")
    names.append(f"train time / {reference}'s")
    return names


def ablation_markdown(rows: list[dict]) -> str:
    """The table as Markdown (mean ± std over the seeds)."""
    if not rows:
        return ""
    lines = ["| " + " | ".join(_head(rows)) + " |", "|" + "---|" * len(_head(rows))]
    for row in rows:
        label = f"**{row['model']}**" if row["ablated"] and not row["variant"] else row["model"]
        lines.append("| " + " | ".join([label] + _cells(row)) + " |")
    return "\n".join(lines) + "\n"


def ablation_html(rows: list[dict]) -> str:
    """The report's section: the table and how to read it."""
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _head(rows))
    body = []
    for row in rows:
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in _cells(row))
        body.append(f"<tr><th class=m>{html.escape(row['model'])}</th>{cells}</tr>")
    n = max(r["n_seeds"] for r in rows)
    return (f"<h2>Ablation</h2><p>Each ablated model as configured, then with each of its inputs "
            f"switched in turn (<code>-genres</code>: switched off; <code>+time</code>: switched "
            f"on), next to the other models of the run; mean ± std over {n} seed(s). Cold rows "
            f"are test rows whose user or movie has no training rating; \"cold, fallback only\" "
            f"is the bias fallback alone on the same rows. Δ RMSE: the variant's mean RMSE minus "
            f"the model's as configured (positive: the variant predicts worse). "
            f"Training time is wall time on this machine, as a ratio of the mean to the run's "
            f"first model's.</p><table><tr>{head}</tr>{''.join(body)}</table>")
