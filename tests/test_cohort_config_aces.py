"""Boundary and `has` parsing agree with ACES 0.7.3 itself on fixtures and generated configs.

Needs es-aces installed in its own virtual environment at benchmarks/.venv-aces (it is never a
dependency of ehrbench); skipped when that environment is absent. Slow: it starts ACES once.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from test_cohort_config_tree import cohort_configs

from ehrbench.cohort.config import load_cohort

REPO = Path(__file__).parents[1]
ACES_PYTHON = REPO / "benchmarks" / ".venv-aces" / "bin" / "python"
FIXTURES = Path(__file__).parent / "fixtures" / "cohorts"

# Runs inside the ACES environment: prints each window's parsed boundaries and has ranges.
ACES_SCRIPT = """
import json, logging, sys
logging.disable(logging.CRITICAL)
from aces.config import TaskExtractorConfig
from aces.utils import parse_timedelta

def side(parsed):
    offset = parse_timedelta(parsed["offset"]).total_seconds() if parsed["offset"] else 0.0
    return [parsed["referenced"], offset, parsed["event_bound"]]

out = {}
for path in sys.argv[1:]:
    config = TaskExtractorConfig.load(path)
    out[path] = {
        name: [side(w._parsed_start), side(w._parsed_end), [[k, *v] for k, v in w.has.items()]]
        for name, w in config.windows.items()
    }
print(json.dumps(out))
"""


def ours(path: Path) -> dict:
    """Our parse in ACES's vocabulary: reference text, offset seconds, `-PRED` for `<-`."""
    windows = {}
    for window in load_cohort(path).windows:
        sides = []
        for boundary in (window.start, window.end):
            reference = boundary.reference
            if reference.is_trigger:
                ref = "trigger"
            elif reference.window == window.name:
                ref = reference.side
            else:
                ref = f"{reference.window}.{reference.side}"
            event = {"next": boundary.predicate, "prev": f"-{boundary.predicate}"}
            sides.append([ref, boundary.offset.total_seconds(), event.get(boundary.kind)])
        has = [[c.predicate, c.min_count, c.max_count] for c in window.has]
        windows[window.name] = [*sides, has]
    return windows


@pytest.mark.slow
def test_parsing_matches_aces(tmp_path):
    if not ACES_PYTHON.exists():
        pytest.skip("benchmarks/.venv-aces not present: install es-aces==0.7.3 there to compare")
    generated = []

    @settings(max_examples=120, deadline=None, database=None, derandomize=True)
    @given(config=cohort_configs())
    def collect(config):
        # ACES refuses labels on special predicates (an ehrbench extension).
        if not any(w.get("label", "").startswith("_") for w in config.get("windows", {}).values()):
            generated.append(config)

    collect()
    paths = [p for p in FIXTURES.glob("*.yaml") if "agnostic" not in p.stem]
    for index, config in enumerate(generated):
        path = tmp_path / f"generated_{index}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        paths.append(path)
    result = subprocess.run(
        [str(ACES_PYTHON), "-c", ACES_SCRIPT, *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    for path in paths:
        assert ours(path) == theirs[str(path)], path.read_text()
