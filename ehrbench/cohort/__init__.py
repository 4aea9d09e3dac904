"""The cohort language: load a cohort config, extract its labels from a MEDS dataset."""
