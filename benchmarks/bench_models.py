"""Benchmark: every model on one learnable cohort, with fit time and held_out AUROC.

Runs each registered model through `fit_and_predict` (its default grid, seed 0) on the dataset's
train/tuning rows of a label table, predicting the held_out rows, and records the chosen setting,
tuning and held_out AUROC, wall time of the search and prediction, and the process's peak
memory. Two baselines see only age and sex (the tabular columns `age/years` and
`static/GENDER//*`): logistic regression and LightGBM. Features are built once per kind, fitted
on train.

Intended input: the synthetic dataset and its in-hospital mortality cohort, e.g.
    ehrbench cohort extract cohorts/mortality_in_hospital.yaml \
        --predicates cohorts/predicates/synthetic.yaml --data SYNTH --out mortality.parquet
    python benchmarks/bench_models.py --data SYNTH --labels mortality.parquet

Writes benchmarks/results/models.json and models.md (timings are from a shared machine: compare
them with each other, not across runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import platform
import resource
import time
from pathlib import Path

from ehrbench.features.sequence import build_sequences
from ehrbench.features.tabular import build_tabular
from ehrbench.io import write_text_atomic
from ehrbench.meds import label_values, open_dataset, read_labels, split_indices
from ehrbench.models.base import model_class
from ehrbench.models.training import fit_and_predict

OUT = Path(__file__).parent / "results"
MODELS = ["logreg", "lightgbm", "random_forest", "gru", "lstm", "transformer"]


def _age_sex_only(features):
    """The tabular features restricted to age and the GENDER static codes."""
    keep = [
        i
        for i, name in enumerate(features.feature_names)
        if name == "age/years" or name.startswith("static/GENDER//")
    ]
    return dataclasses.replace(
        features,
        matrix=features.matrix[:, keep].tocsr(),
        feature_names=[features.feature_names[i] for i in keep],
        vocabulary=None,
    )


def _run(label, name, features, labels, indices, seed):
    started = time.monotonic()
    run = fit_and_predict(name, features, labels, **indices, seed=seed)
    seconds = time.monotonic() - started
    fit = run.fit
    result = {
        "model": label,
        "chosen": {k: fit.params[k] for k in fit.grid_scores[0]["params"]},
        "grid_points": len(fit.grid_scores),
        "tuning_auroc": round(fit.tuning_score, 4),
        "held_out_auroc": round(run.held_out_score, 4),
        "search_seconds": round(seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result), flush=True)
    return result


def _markdown(meta, results):
    lines = [
        "# Models on one cohort (held_out AUROC)",
        "",
        f"Dataset `{meta['dataset']}`, labels `{meta['labels']}`: {meta['rows']} rows (train "
        f"{meta['train']}, tuning "
        f"{meta['tuning']}, held_out {meta['held_out']}), prevalence {meta['prevalence']:.3f}. "
        f"Seed 0, default grids. {meta['date']}, {meta['machine']}.",
        "",
        "| model | grid points | chosen | tuning AUROC | held_out AUROC | search s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        chosen = ", ".join(f"{k}={v}" for k, v in r["chosen"].items())
        lines.append(
            f"| {r['model']} | {r['grid_points']} | {chosen} | {r['tuning_auroc']:.4f} | "
            f"{r['held_out_auroc']:.4f} | {r['search_seconds']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every model and the age+sex baselines; write models.json and models.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    dataset = open_dataset(args.data, deep=False)
    labels = read_labels(args.labels)
    y = label_values(labels, args.labels)
    indices = split_indices(labels, dataset.subject_splits(), args.labels)
    names = args.models.split(",")
    kinds = {model_class(name).kind for name in names} | {"tabular"}
    features = {}
    if "tabular" in kinds:
        features["tabular"] = build_tabular(dataset, labels)
    if "sequence" in kinds:
        features["sequence"] = build_sequences(dataset, labels)
    results = [
        _run(name, name, features[model_class(name).kind], labels, indices, args.seed)
        for name in names
    ]
    age_sex = _age_sex_only(features["tabular"])
    for name in ("logreg", "lightgbm"):
        results.append(_run(f"{name} (age+sex only)", name, age_sex, labels, indices, args.seed))
    meta = {
        "labels": Path(args.labels).name,
        "dataset": Path(args.data).name,
        "rows": labels.height,
        **{split: int(idx.size) for split, idx in indices.items()},
        "prevalence": float(y.mean()),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }
    OUT.mkdir(exist_ok=True)
    write_text_atomic(json.dumps({"meta": meta, "results": results}, indent=2), OUT / "models.json")
    write_text_atomic(_markdown(meta, results), OUT / "models.md")


if __name__ == "__main__":
    main()
