"""A tiny document model rendered twice: as Markdown (images beside it) and as one HTML page.

The HTML page is self-contained: its images are embedded as base64 PNG data and its style is
inline, so it can be mailed or archived as a single file.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1250px; color: #222; line-height: 1.45; padding: 0 16px; }
h1 { font-size: 26px; margin-bottom: 4px; }
h2 { font-size: 20px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
h3 { font-size: 16px; margin-top: 24px; }
p.note { color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f4f6; }
td:first-child, th:first-child { text-align: left; }
td.text { text-align: left; white-space: normal; max-width: 640px; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; display: block; margin: 6px 0 14px; }
details { margin: 6px 0 10px; }
summary { cursor: pointer; font-weight: 600; }
nav a { margin-right: 14px; font-size: 14px; }
"""


@dataclass(frozen=True)
class Cell:
    """A table cell; `bold` marks the best value of a row, `text` a left-aligned prose cell."""

    value: str
    bold: bool = False
    text: bool = False


@dataclass(frozen=True)
class Heading:
    """A section heading; `anchor` is its id in the HTML page."""

    text: str
    level: int = 2
    anchor: str | None = None


@dataclass(frozen=True)
class Paragraph:
    """Prose; a `note` is an explanatory caption in smaller type."""

    text: str
    note: bool = False


@dataclass(frozen=True)
class Table:
    """A table of cells (strings or `Cell`)."""

    headers: list[str] | None  # None: a key-value table without a header row
    rows: list[list[Cell | str]]


@dataclass(frozen=True)
class Image:
    """A PNG figure: a file beside the Markdown, embedded data in the HTML."""

    name: str  # file name under figures/ for the Markdown version
    png: bytes
    alt: str


@dataclass(frozen=True)
class Details:
    """Blocks the HTML page can fold away under a one-line summary."""

    summary: str
    blocks: list = field(default_factory=list)
    open: bool = False  # shown unfolded in the HTML page


@dataclass(frozen=True)
class Links:
    """A row of links to the page's sections (HTML only)."""

    targets: list[tuple[str, str]]  # (anchor, label)


Block = Heading | Paragraph | Table | Image | Details | Links


def _cell(value: Cell | str) -> Cell:
    return value if isinstance(value, Cell) else Cell(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list[Block]) -> str:
    """The document as Markdown; images point to `figures/<name>`."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Paragraph):
            out.append(f"{'_' if block.note else ''}{block.text}{'_' if block.note else ''}\n")
        elif isinstance(block, Table):
            out.append(_md_table(block))
        elif isinstance(block, Image):
            out.append(f"![{block.alt}](figures/{block.name})\n")
        elif isinstance(block, Details):
            out.append(f"**{block.summary}**\n")
            out.append(to_markdown(block.blocks))
    return "\n".join(out)


def _md_table(table: Table) -> str:
    # Markdown tables need a header row; a key-value table gets a blank one.
    headers = table.headers or [""] * len(table.rows[0])
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |"]
    rest = "---:" if table.headers else ":---"  # numbers right, key-value text left
    lines.append("|" + "|".join([":---"] + [rest] * (len(headers) - 1)) + "|")
    for row in table.rows:
        cells = []
        for raw in row:
            cell = _cell(raw)
            text = _md_escape(cell.value)
            cells.append(f"**{text}**" if cell.bold and text else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_html(title: str, blocks: list[Block]) -> str:
    """The document as one self-contained HTML page."""
    body = "\n".join(_html_block(block) for block in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        anchor = f' id="{html.escape(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        cls = ' class="note"' if block.note else ""
        return f"<p{cls}>{html.escape(block.text)}</p>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        return f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">'
    if isinstance(block, Details):
        inner = "\n".join(_html_block(b) for b in block.blocks)
        state = " open" if block.open else ""
        summary = html.escape(block.summary)
        return f"<details{state}><summary>{summary}</summary>\n{inner}\n</details>"
    links = " ".join(
        f'<a href="#{html.escape(anchor)}">{html.escape(label)}</a>'
        for anchor, label in block.targets
    )
    return f"<nav>{links}</nav>"


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers or [])
    rows = []
    for row in table.rows:
        cells = []
        for raw in row:
            cell = _cell(raw)
            text = html.escape(cell.value)
            text = f"<b>{text}</b>" if cell.bold else text
            cls = ' class="text"' if cell.text else ""
            cells.append(f"<td{cls}>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head_row = f"<tr>{head}</tr>\n" if head else ""
    return "<table>\n" + head_row + "\n".join(rows) + "\n</table>"
