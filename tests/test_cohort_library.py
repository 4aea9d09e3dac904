"""The cohort library: files, headers, loading with every predicates file, `ehrbench cohorts`."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
import yaml
from meds_builders import events_frame, write_meds_folder

from ehrbench.cli import main
from ehrbench.cohort.config import load_cohort
from ehrbench.cohort.library import (
    DatasetNotes,
    cohort_path,
    cohort_paths,
    describe,
    library_dir,
    list_cohorts,
    parse_header,
    predicates_for_dataset,
    predicates_paths,
    resolve_predicates,
)
from ehrbench.cohort.library_commands import short
from ehrbench.errors import EhrbenchError

ISSUE_COHORTS = {
    "mortality_in_hospital",
    "mortality_icu",
    "long_los",
    "readmission_30d",
    "icu_transfer",
    "lab_hyperkalemia",
    "lab_hyponatremia",
    "lab_hypoglycemia",
    "lab_thrombocytopenia",
    "lab_anemia",
    "new_hypertension",
    "new_hyperlipidemia",
    "new_acute_mi",
}
HEADER_FIELDS = ("Prediction time", "Population", "Exclusions", "Label")


def test_library_holds_the_issue_cohorts_and_the_predicates_files():
    names = {path.stem for path in cohort_paths()}
    assert len(names) >= 12
    assert names >= ISSUE_COHORTS
    assert set(predicates_paths()) == {"synthetic", "mimic_iv", "eicu"}
    assert library_dir().resolve() == (Path(__file__).parents[1] / "cohorts").resolve()


@pytest.mark.parametrize("path", cohort_paths(), ids=lambda p: p.stem)
def test_every_cohort_has_a_plain_words_header(path):
    cohort = describe(path)
    assert cohort.title and cohort.description
    for field in HEADER_FIELDS:
        assert len(cohort.fields.get(field, "")) > 10, f"{path.name}: header lacks {field}"


@pytest.mark.parametrize("predicates", sorted(predicates_paths().values()), ids=lambda p: p.stem)
@pytest.mark.parametrize("path", cohort_paths(), ids=lambda p: p.stem)
def test_every_cohort_loads_with_every_predicates_file(path, predicates):
    """...except those the predicates file declares not expressible, which name the `???`."""
    not_expressible = yaml.safe_load(predicates.read_text()).get("metadata", {})
    if path.stem in not_expressible.get("not_expressible", {}):
        with pytest.raises(EhrbenchError, match=r"unfilled \?\?\? placeholder"):
            load_cohort(path, predicates)
        return
    cohort = load_cohort(path, predicates)
    assert cohort.label_window is not None and cohort.index_window is not None
    assert cohort.warnings == ()


def test_a_cohort_without_its_predicates_file_names_the_unfilled_predicate():
    with pytest.raises(EhrbenchError, match="admission"):
        load_cohort(library_dir() / "mortality_in_hospital.yaml")


def test_parse_header_reads_title_fields_and_continuations():
    text = (
        "# Something, predicted later.\n"
        "# Prediction time: 24 h after\n"
        "#   admission.\n"
        "# Label: 1 if bad.\n"
        "# uses an extension (see README): ignored.\n"
        "#   still ignored\n"
        "description: x\n"
        "# Population: after the header, never read\n"
    )
    title, fields = parse_header(text)
    assert title == "Something, predicted later."
    assert fields["Prediction time"] == "24 h after admission."
    assert fields["Label"] == "1 if bad."
    assert "Population" not in fields
    assert "still ignored" not in " ".join(fields.values())


def test_listing_falls_back_to_description_and_title(tmp_path):
    (tmp_path / "bare.yaml").write_text("# Bare cohort.\ndescription: A bare one\ntrigger: x\n")
    (cohort,) = list_cohorts(tmp_path)
    assert (cohort.name, cohort.prediction_time, cohort.label) == (
        "bare",
        "A bare one",
        "Bare cohort.",
    )


def test_short_keeps_the_first_clause():
    assert short("24 h after admission (all data up to then).") == "24 h after admission"
    assert short("a; b") == "a"
    assert short("1 if x. Then y.") == "1 if x"
    assert short("ends at 5.5 mmol/L") == "ends at 5.5 mmol/L"


def test_cohort_path_by_name_and_its_error():
    assert cohort_path("long_los") == library_dir() / "long_los.yaml"
    with pytest.raises(EhrbenchError, match=r"no cohort 'long_stay'.*did you mean 'long_los'\?"):
        cohort_path("long_stay")


def test_resolve_predicates_by_name_or_path_and_its_error(tmp_path):
    assert resolve_predicates("mimic_iv") == predicates_paths()["mimic_iv"]
    own = tmp_path / "mine.yaml"
    own.write_text("predicates: {}\n")
    assert resolve_predicates(own) == own
    with pytest.raises(EhrbenchError, match=r"'mimic' is neither a file.*mimic_iv, synthetic"):
        resolve_predicates("mimic")


def test_predicates_for_dataset_matches_the_dataset_name():
    assert predicates_for_dataset("MIMIC-IV-demo").stem == "mimic_iv"
    assert predicates_for_dataset("ehrbench synthetic").stem == "synthetic"
    assert predicates_for_dataset("eICU-CRD-demo").stem == "eicu"
    with pytest.raises(EhrbenchError, match=r"'HiRID'.*0 of the library's predicates files"):
        predicates_for_dataset("HiRID")


def test_missing_library_folder_is_a_clear_error(tmp_path):
    with pytest.raises(EhrbenchError, match=r"nowhere does not exist.*--library DIR"):
        library_dir(tmp_path / "nowhere")


# --- the command line -------------------------------------------------------------------------


def test_cohorts_lists_one_line_per_cohort(capsys):
    assert main(["cohorts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["cohort", "prediction", "time"]
    assert [line.split()[0] for line in lines[1:]] == [p.stem for p in cohort_paths()]
    mortality = next(line for line in lines if line.startswith("mortality_in_hospital"))
    assert "24 h after the start of a hospital admission" in mortality
    assert mortality.rstrip().endswith("1 if the subject dies during the stay")


def test_cohorts_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["cohorts", "--help"])
    assert (
        "ehrbench cohorts --data data/mimic_meds --predicates mimic_iv" in capsys.readouterr().out
    )


def test_cohorts_predicates_without_data_is_an_error(capsys):
    assert main(["cohorts", "--predicates", "mimic_iv"]) == 2
    assert "--predicates is used with --data only" in capsys.readouterr().err


def test_cohorts_on_an_empty_library_is_an_error(tmp_path, capsys):
    assert main(["cohorts", "--library", str(tmp_path)]) == 2
    assert "holds no cohort YAML file" in capsys.readouterr().err


def test_a_library_cohort_file_that_is_not_utf8_is_named(tmp_path, capsys):
    (tmp_path / "latin.yaml").write_bytes("description: caf\xe9\n".encode("latin-1"))
    assert main(["cohorts", "--library", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "latin.yaml is not UTF-8 text" in err and "internal error" not in err


@pytest.fixture
def small_library(tmp_path) -> Path:
    """A library with one real cohort (in-hospital mortality) and the real predicates files."""
    root = tmp_path / "library"
    shutil.copytree(library_dir() / "predicates", root / "predicates")
    shutil.copy(library_dir() / "mortality_in_hospital.yaml", root)
    return root


def _tiny_dataset(root: Path, name: str) -> Path:
    """Three admissions: a death at 48 h, a discharge at 72 h, a discharge at 12 h (excluded)."""
    t0 = dt.datetime(2150, 1, 1, 8)
    hours = dt.timedelta(hours=1)
    rows = [
        (1, t0, "HOSPITAL_ADMISSION//EMERGENCY", None),
        (1, t0 + 48 * hours, "HOSPITAL_DISCHARGE//DIED", None),
        (1, t0 + 48 * hours, "MEDS_DEATH", None),
        (2, t0, "HOSPITAL_ADMISSION//URGENT", None),
        (2, t0 + 72 * hours, "HOSPITAL_DISCHARGE//HOME", None),
        (3, t0, "HOSPITAL_ADMISSION//ELECTIVE", None),
        (3, t0 + 12 * hours, "HOSPITAL_DISCHARGE//HOME", None),
    ]
    return write_meds_folder(root, events_frame(rows), dataset_json={"dataset_name": name})


def test_cohorts_with_data_counts_rows_and_prevalence(tmp_path, small_library, capsys):
    data = _tiny_dataset(tmp_path / "meds", "ehrbench-synthetic")
    assert main(["cohorts", "--data", str(data), "--library", str(small_library)]) == 0
    captured = capsys.readouterr()
    assert "predicates/synthetic.yaml" in captured.err
    line = captured.out.splitlines()[1]
    assert line.split()[:4] == ["mortality_in_hospital", "2", "1", "0.500"]


def test_cohorts_markdown_table(tmp_path, small_library, capsys):
    data = _tiny_dataset(tmp_path / "meds", "x")
    args = ["cohorts", "--data", str(data), "--library", str(small_library)]
    assert main([*args, "--predicates", "mimic_iv", "--markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| cohort | prediction time | label | rows | positives | prevalence |"
    assert lines[2].startswith("| `mortality_in_hospital` | 24 h after the start")
    assert lines[2].endswith("| 2 | 1 | 0.500 |")


def test_cohorts_with_data_of_unknown_name_asks_for_predicates(tmp_path, small_library, capsys):
    data = _tiny_dataset(tmp_path / "meds", "HiRID-demo")
    assert main(["cohorts", "--data", str(data), "--library", str(small_library)]) == 2
    assert "Pass --predicates NAME or a path" in capsys.readouterr().err


def test_cohorts_reports_a_cohort_that_fails_and_exits_1(tmp_path, small_library, capsys):
    (small_library / "broken.yaml").write_text(
        "# Broken.\npredicates:\n  admission: ???\ntrigger: admision\n"
    )
    data = _tiny_dataset(tmp_path / "meds", "synthetic")
    assert main(["cohorts", "--data", str(data), "--library", str(small_library)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].split()[:2] == ["broken", "error"]
    assert "error: broken: In " in captured.err and "admision" in captured.err


def test_docs_table_describes_every_cohort_as_its_header_does():
    """The README's cohort library table lists every cohort with its header text."""
    doc = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|", doc, flags=re.MULTILINE)
    expected = [(c.name, short(c.prediction_time), short(c.label)) for c in list_cohorts()]
    assert rows == expected


@pytest.mark.parametrize(
    ("text", "notes"),
    [
        ("predicates: [\n", None),
        ("predicates: {}\nmetadata: 5\n", DatasetNotes({}, {})),
        ("predicates: {}\nmetadata: {not_expressible: [a]}\n", DatasetNotes({}, {})),
    ],
)
def test_dataset_notes_of_a_malformed_predicates_file(tmp_path, text, notes):
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    if notes is None:
        with pytest.raises(EhrbenchError, match=r"p.yaml \(line 2\): not valid YAML"):
            DatasetNotes.read(path)
    else:
        assert DatasetNotes.read(path) == notes
