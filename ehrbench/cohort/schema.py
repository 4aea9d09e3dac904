"""The JSON Schema of the cohort language, shipped as `cohort.schema.json` for editors.

Point a YAML language server at it (e.g. `# yaml-language-server: $schema=cohort.schema.json`
at the top of a cohort file) to get completion and validation while writing. The schema covers
the shape of a config; `load_cohort` remains the authority for checks a schema cannot express.
"""

from __future__ import annotations

import json
from importlib import resources

SCHEMA_FILE = "cohort.schema.json"


def cohort_json_schema() -> dict:
    """The cohort-language JSON Schema (draft-07) as a dict, read from the packaged file."""
    text = resources.files("ehrbench.cohort").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    return json.loads(text)
