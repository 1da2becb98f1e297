#!/usr/bin/env python3
"""study_replay_table.py: the replay table of docs/study.md from a study's cells.

Reads DIR/runs/<cell>/eval/replay.json (written by `memloss eval --checkpoint
RUN/checkpoints/best.safetensors --replay RUN/bank --json --output RUN/eval/replay.json`) for every
cell of the named arms and prints, per arm, mean ± sd over seeds (sample sd) of: accuracy of the final
(best) model on every stored x′, the fraction of entries the generating model resisted then, the
forgetting events (resisted then, not correct now) as a count and as a rate of the resisted entries,
and the samples with at least one event. Then the same per generation, averaged over seeds.

Usage: tools/study_replay_table.py DIR ARM [ARM ...]
"""
import json
import os
import statistics
import sys


def mean_sd(xs):
    if not xs:
        return "—"
    m = statistics.mean(xs)
    return f"{m:.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{m:.2f}"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    root, arms = sys.argv[1], sys.argv[2:]
    runs = os.path.join(root, "runs")
    rows, per_gen = [], {}
    for arm in arms:
        cells = sorted(c for c in os.listdir(runs) if c.startswith(arm + "_seed="))
        reports = []
        for c in cells:
            path = os.path.join(runs, c, "eval", "replay.json")
            if os.path.exists(path):
                with open(path) as f:
                    reports.append(json.load(f))
        acc, resisted, events, rate, forgotten = [], [], [], [], []
        for r in reports:
            entries = r["totalEntries"]
            res = sum(g["resistedThen"] for g in r["generations"])
            acc.append(100 * r["totalCorrect"] / entries)
            resisted.append(100 * res / entries)
            events.append(r["totalForgettingEvents"])
            rate.append(100 * r["totalForgettingEvents"] / max(res, 1))
            forgotten.append(r["samplesForgotten"])
            for g in r["generations"]:
                per_gen.setdefault(arm, {}).setdefault(g["generation"], []).append(g)
        rows.append((arm, len(reports), mean_sd(acc), mean_sd(resisted), mean_sd(events), mean_sd(rate), mean_sd(forgotten)))
    print("| arm | seeds | accuracy on stored x′ (%) | resisted then (%) | forgetting events | events / resisted (%) | samples forgotten |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")
    print()
    gens = sorted({g for a in per_gen.values() for g in a})
    print("| generation | " + " | ".join(f"{a}: acc now / resisted then / events" for a in arms) + " |")
    print("|---:|" + "---:|" * len(arms))
    for g in gens:
        cells = []
        for a in arms:
            gs = per_gen.get(a, {}).get(g, [])
            if not gs:
                cells.append("—")
                continue
            cells.append(f"{statistics.mean(100 * x['accuracy'] for x in gs):.1f} / "
                         f"{statistics.mean(100 * x['resistedFraction'] for x in gs):.1f} / "
                         f"{statistics.mean(x['forgettingEvents'] for x in gs):.1f}")
        print(f"| {g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
