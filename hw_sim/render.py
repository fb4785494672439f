"""Documents for people, shared by every report: blocks rendered as Markdown and as HTML.

A report's content is a list of :data:`Block` (headings, paragraphs, tables, figures),
defined once and rendered twice: Markdown links the PNG files written beside it, HTML
inlines them. :func:`write_documents` writes the JSON for machines beside both.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorsp.plumbing.fileio import atomic_write, write_json


@dataclass(frozen=True)
class Heading:
    """A section title; ``level`` 1 is the document's title."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """Text with the few Markdown marks the renderers know (`code`, **bold**)."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table: one header row, rows of cells (rendered with ``str``)."""

    header: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True)
class Figure:
    """A PNG image written as ``filename`` beside the Markdown, inlined in the HTML."""

    filename: str
    png: bytes
    caption: str


Block = Heading | Paragraph | Table | Figure


def write_documents(data: dict, blocks: list[Block], out_dir: str | Path, stem: str) -> list[Path]:
    """Write ``data`` as ``STEM.json`` and ``blocks`` as ``STEM.md``, ``STEM.html`` and PNGs, each atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_json(out_dir / f"{stem}.json", data)]
    for block in blocks:
        if isinstance(block, Figure):
            written.append(atomic_write(out_dir / block.filename, lambda tmp, b=block: tmp.write_bytes(b.png)))
    written.append(atomic_write(out_dir / f"{stem}.md", lambda tmp: tmp.write_text(render_markdown(blocks))))
    written.append(atomic_write(out_dir / f"{stem}.html", lambda tmp: tmp.write_text(render_html(blocks))))
    return written


def fmt_num(x: Any) -> str:
    """A figure for a table: integers with thousands separators, others to 4 significant digits."""
    if x is None:
        return "n/a"
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e9):
        return f"{int(x):,}"
    return f"{x:.4g}"


def fmt_pct(x: float) -> str:
    """A share in [0, 1] as a percentage with two decimals."""
    return f"{100 * x:.2f}%"


def render_markdown(blocks: list[Block]) -> str:
    """``blocks`` as Markdown; figures are links to their PNG files."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {b.text}\n")
        elif isinstance(b, Paragraph):
            out.append(b.text + "\n")
        elif isinstance(b, Table):
            out.append("| " + " | ".join(b.header) + " |")
            out.append("|" + "---|" * len(b.header))
            out += ["| " + " | ".join(str(c) for c in row) + " |" for row in b.rows]
            out.append("")
        else:
            out.append(f"![{b.caption}]({b.filename})\n\n*{b.caption}*\n")
    return "\n".join(out)


def render_html(blocks: list[Block]) -> str:
    """``blocks`` as one self-contained HTML page; figures are inlined."""
    def text(s: str) -> str:  # the few Markdown marks the content uses
        s = html.escape(s)
        parts = s.split("`")
        s = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
        parts = s.split("**")
        return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))

    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{text(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            body.append(f"<p>{text(b.text)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{text(h)}</th>" for h in b.header)
            rows = "".join("<tr>" + "".join(f"<td>{text(str(c))}</td>" for c in row) + "</tr>" for row in b.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            data = base64.b64encode(b.png).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{text(b.caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .5em;"
             "text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}")
    title = next((b.text for b in blocks if isinstance(b, Heading) and b.level == 1), "lorsp report")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
