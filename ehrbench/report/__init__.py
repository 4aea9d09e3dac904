"""The benchmark report: Markdown and one self-contained HTML page from a results folder."""
