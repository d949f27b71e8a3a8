"""`embedrec compare --protocol a|b|both`: the two evaluation protocols side by side."""

from __future__ import annotations

from pathlib import Path

from embedrec.cli.common import progress_bar, split_models, load_data, out


def compare_protocols(preset, *, dataset, data, items, models, seeds: int, protocol: str,
                      holdout: str, fraction: float, out_dir: Path | None, report: bool,
                      download: bool) -> None:
    from embedrec.cli.compare import print_summary
    from embedrec.protocols import (
        describe, parse_protocols, protocol_preset, run_protocols, verdict, verdict_lines,
        write_protocols,
    )

    chosen = parse_protocols(protocol)
    ratings = load_data(dataset, data, download=download, items=items)
    with progress_bar() as bar:
        tasks: dict[str, int] = {}

        def step(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(label, total=total)
            bar.update(tasks[label], completed=done)

        results = run_protocols(ratings, preset=preset, models=split_models(models) or None,
                                seeds=seeds, protocols=chosen, holdout=holdout,
                                fraction=fraction, progress=step)
    for name, comparison in results.items():
        used = protocol_preset(preset, name, ratings, holdout=holdout, fraction=fraction)
        out.print(f"\n[bold]protocol {name}[/]: {describe(name, used, holdout, fraction)}; "
                  f"{comparison.settings['protocol']['loss']} loss on "
                  f"{comparison.settings['protocol']['positives']} for ranking losses")
        print_summary(comparison)
    out.print("")
    for line in verdict_lines(verdict(results)):
        out.print(line)
    if out_dir is not None:
        folders = write_protocols(results, out_dir)
        if report:
            from embedrec.reports import build_report

            for folder in folders:
                build_report(folder)
        out.print(f"wrote {out_dir}/: verdict.json, "
                  + ", ".join(f"{f.name}/" for f in folders))
