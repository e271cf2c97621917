"""The report kit every tuneforge report is built with (eval, safety, demo, multitask, reflect):
one self-contained HTML page (no scripts, no network), its CSS, escaped text, tables, and charts
inlined as SVG. Hand-written: a page of headings, tables and figures needs no template engine."""

from __future__ import annotations

import html
import io

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}figure{margin:1em 0}.answers td{white-space:pre-wrap;
max-width:320px}code{background:#f5f5f5;padding:1px 3px}"""

escape = html.escape


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def svg(fig) -> str:
    """A matplotlib figure as inline SVG (the figure is closed)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def table(header: list[str], rows: list[list[str]]) -> str:
    return (
        "<table><tr>"
        + "".join(f"<th>{escape(h)}</th>" for h in header)
        + "</tr>"
        + "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        + "</table>"
    )


def section(title: str, header: list[str], rows: list[list[str]]) -> str:
    return f"<h2>{escape(title)}</h2>{table(header, rows)}"


def figure(fig, caption: str) -> str:
    return f"<figure class='chart'>{svg(fig)}<figcaption>{escape(caption)}</figcaption></figure>"


def paragraphs(lines: list[str]) -> list[str]:
    return [f"<p>{escape(line.replace('`', ''))}</p>" for line in lines]


def page(title: str, parts: list[str], heading: str | None = None) -> str:
    """The whole HTML document: `parts` are already-rendered HTML fragments."""
    return "\n".join(
        [
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body>",
            f"<h1>{escape(heading or title)}</h1>",
            *parts,
            "</body></html>",
        ]
    )


def legend_beside(ax, fontsize: int = 8) -> None:
    """The legend to the right of the axes, where it can cover no bar or point."""
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
