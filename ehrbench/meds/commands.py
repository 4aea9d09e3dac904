"""Command-line verbs for MEDS datasets: info, validate, splits, meds-from-events,
import-mimic-demo, import-eicu-demo."""

from __future__ import annotations

import argparse
import json

from ehrbench.errors import EhrbenchError
from ehrbench.meds.convert import import_mimic_demo, meds_from_events
from ehrbench.meds.dataset import open_dataset
from ehrbench.meds.splits import DEFAULT_FRACTIONS, hash_splits, parse_fractions, split_sizes
from ehrbench.meds.summary import format_summary, summarize
from ehrbench.meds.validate import read_subject_splits
from ehrbench.meds.writer import write_subject_splits

_QUICK_HELP = "skip the sort-order and code-coverage checks (faster on very large datasets)"
_DEFAULT_FRACTIONS = ",".join(f"{f:g}" for f in DEFAULT_FRACTIONS)


def _sizes_text(splits) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in split_sizes(splits).items())


def _info(args: argparse.Namespace) -> int:
    if args.top < 0:
        raise EhrbenchError(
            f"--top {args.top} is negative: expected how many codes to list (0 or more)."
        )
    dataset = open_dataset(args.dir, deep=not args.quick)
    summary = summarize(dataset, top=args.top)
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print(format_summary(summary))
    return 0


def _validate(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.dir, deep=not args.quick)
    checks = "schema and invariant" if not args.quick else "schema (quick)"
    print(
        f"{dataset.root}: valid MEDS 0.4 dataset ({len(dataset.shards)} shards, {checks} checks)."
    )
    return 0


def _splits(args: argparse.Namespace) -> int:
    dataset = open_dataset(args.dir, deep=not args.quick)
    fractions = parse_fractions(args.fractions)
    computed = hash_splits(dataset.subject_ids().to_list(), fractions)
    path = dataset.splits_path
    if path.exists():
        existing = read_subject_splits(path).sort("subject_id")
        print(f"{path}: {_sizes_text(existing)}")
        if args.write:
            if not existing.equals(computed):
                raise EhrbenchError(
                    f"{path} already exists and differs from the hash split with fractions "
                    f"{args.fractions}: refusing to overwrite it. Delete it first if you really "
                    "mean to replace the dataset's splits."
                )
            print("the existing file equals the hash split; nothing written.")
        return 0
    print(f"stable hash split ({args.fractions}): {_sizes_text(computed)}")
    if args.write:
        write_subject_splits(computed, dataset.root)
        print(f"wrote {path}")
    else:
        print(f"not written; add --write to save it as {path}")
    return 0


def _print_conversion(out_dir: str, result: dict) -> None:
    splits = ", ".join(f"{k} {v:,}" for k, v in result["splits"].items())
    print(
        f"wrote {out_dir}: {result['subjects']:,} subjects, {result['rows']:,} rows, "
        f"{result['codes']:,} codes, {result['shards']} shard(s); splits {splits}"
    )


def _meds_from_events(args: argparse.Namespace) -> int:
    rename = {}
    for item in args.rename:
        old, sep, new = item.partition("=")
        if not sep or not old or not new:
            raise EhrbenchError(
                f"--rename {item!r} is invalid: expected OLD=NEW, e.g. value=numeric_value."
            )
        rename[old] = new
    result = meds_from_events(
        args.src,
        args.dir,
        shards=args.shards,
        name=args.name,
        version=args.dataset_version,
        license=args.license,
        license_files=args.license_from,
        drop=args.drop,
        rename=rename,
        fractions=parse_fractions(args.fractions),
    )
    _print_conversion(args.dir, result)
    return 0


def _import_mimic_demo(args: argparse.Namespace) -> int:
    _print_conversion(args.dir, import_mimic_demo(args.src, args.dir))
    return 0


def _import_eicu_demo(args: argparse.Namespace) -> int:
    # Imported here: the module is only needed by this verb.
    from ehrbench.meds.eicu import import_eicu_demo

    _print_conversion(args.dir, import_eicu_demo(args.src, args.dir))
    return 0


def _add(subparsers, name: str, help_text: str, example: str, handler) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def register(subparsers) -> None:
    """Add the MEDS verbs to the `ehrbench` command line."""
    p = _add(
        subparsers,
        "info",
        "Summarise a MEDS dataset: subjects, rows, shards, codes, time range, splits, top codes.",
        "ehrbench info data/mimic_demo",
        _info,
    )
    p.add_argument("dir", help="MEDS dataset folder")
    p.add_argument("--top", type=int, default=10, help="how many top codes to list (default 10)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quick", action="store_true", help=_QUICK_HELP)

    p = _add(
        subparsers,
        "validate",
        "Check a MEDS 0.4 folder against the meds schemas and the MEDS invariants.",
        "ehrbench validate data/mimic_demo",
        _validate,
    )
    p.add_argument("dir", help="MEDS dataset folder")
    p.add_argument("--quick", action="store_true", help=_QUICK_HELP)

    p = _add(
        subparsers,
        "splits",
        "Show a dataset's subject splits, or compute the stable hash split and (--write) save it.",
        "ehrbench splits data/mimic_demo --write --fractions 0.7,0.15,0.15",
        _splits,
    )
    p.add_argument("dir", help="MEDS dataset folder")
    p.add_argument(
        "--write",
        action="store_true",
        help="write metadata/subject_splits.parquet (never replaces a different existing one)",
    )
    p.add_argument(
        "--fractions",
        default=_DEFAULT_FRACTIONS,
        help=f"train,tuning,held_out fractions (default {_DEFAULT_FRACTIONS})",
    )
    p.add_argument("--quick", action="store_true", help=_QUICK_HELP)

    p = _add(
        subparsers,
        "meds-from-events",
        "Turn one parquet event table (subject_id, time, code, ...) into a MEDS 0.4 folder.",
        "ehrbench meds-from-events events.parquet out/my_meds --shards 4 --name MyData "
        "--license CC-BY-4.0 --license-from LICENSE.txt",
        _meds_from_events,
    )
    p.add_argument("src", help="parquet event table")
    p.add_argument("dir", help="new MEDS folder (must not exist or be empty)")
    p.add_argument("--shards", type=int, default=1, help="shards per split (default 1)")
    p.add_argument("--name", help="dataset_name in dataset.json (default: SRC's file stem)")
    p.add_argument("--dataset-version", help="dataset_version in dataset.json")
    p.add_argument("--license", help="license in dataset.json, e.g. ODbL-1.0")
    p.add_argument(
        "--license-from", nargs="+", default=[], metavar="FILE", help="files copied into DIR"
    )
    p.add_argument("--drop", action="append", default=[], metavar="COL", help="drop a column")
    p.add_argument(
        "--rename", action="append", default=[], metavar="OLD=NEW", help="rename a column"
    )
    p.add_argument(
        "--fractions",
        default=_DEFAULT_FRACTIONS,
        help=f"train,tuning,held_out fractions of the hash split (default {_DEFAULT_FRACTIONS})",
    )

    p = _add(
        subparsers,
        "import-mimic-demo",
        "Convert the MIMIC-IV demo event table (../shared/data/mimic_iv_demo_meds) to MEDS 0.4.",
        "ehrbench import-mimic-demo ../shared/data/mimic_iv_demo_meds data/mimic_demo",
        _import_mimic_demo,
    )
    p.add_argument("src", help="the demo folder or its mimic_iv_demo_meds_events.parquet")
    p.add_argument("dir", help="new MEDS folder (must not exist or be empty)")

    p = _add(
        subparsers,
        "import-eicu-demo",
        "Convert the eICU-CRD demo CSV tables (patient, lab, medication, ...) to MEDS 0.4, one "
        "subject per patient on a made-up calendar (see README, 'The eICU demo').",
        "ehrbench import-eicu-demo ../shared/data/eicu_demo_subset data/eicu_meds",
        _import_eicu_demo,
    )
    p.add_argument("src", help="the demo folder of CSV tables (patient.csv, lab.csv, ...)")
    p.add_argument("dir", help="new MEDS folder (must not exist or be empty)")
