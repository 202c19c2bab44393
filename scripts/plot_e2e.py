"""Plot ``bench_e2e.py`` figures: time and peak memory against size, per stage.

    .venv/bin/python scripts/plot_e2e.py docs/bench/e2e.json --out docs/e2e-scaling.png

Reads the JSON list that ``bench_e2e.py --results`` appends to; when a size was run
more than once, the latest run counts. Needs matplotlib (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

STAGES = ("ingest", "train", "match", "resolve")


def latest_by_size(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_size: dict[int, dict[str, Any]] = {}
    for r in runs:
        by_size[int(r["records"])] = r  # later entries win
    return [by_size[k] for k in sorted(by_size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/e2e-scaling.png"))
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = latest_by_size(json.loads(args.results.read_text(encoding="utf-8")))
    if not runs:
        raise SystemExit(f"{args.results}: no runs")
    sizes = [r["records"] / 1e6 for r in runs]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=110)
    for stage in STAGES:
        ax_t.plot(sizes, [r["stages"][stage]["seconds"] for r in runs], marker="o", label=stage)
        ax_m.plot(
            sizes,
            [r["stages"][stage]["peak_rss"] / 2**30 for r in runs],
            marker="o",
            label=stage,
        )
    ax_t.plot(sizes, [r["total_seconds"] for r in runs], marker="s", color="black", label="total")
    ax_t.axhline(300, color="red", linestyle="--", linewidth=1, label="target 5 min @ 1M")
    ax_m.axhline(8, color="red", linestyle="--", linewidth=1, label="target 8 GiB")
    ax_t.set_title("Thời gian theo giai đoạn / Time per stage")
    ax_t.set_xlabel("bản ghi nguồn / source records (millions)")
    ax_t.set_ylabel("giây / seconds")
    ax_m.set_title("Bộ nhớ đỉnh / Peak RSS per stage")
    ax_m.set_xlabel("bản ghi nguồn / source records (millions)")
    ax_m.set_ylabel("GiB")
    for ax in (ax_t, ax_m):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    machine = runs[-1].get("machine", "")
    fig.suptitle(f"mdm end to end on Postgres — {machine.split(';')[0]}", fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out} ({len(runs)} sizes: {', '.join(f'{s:g}M' for s in sizes)})")


if __name__ == "__main__":
    main()
