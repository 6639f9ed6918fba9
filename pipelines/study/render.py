"""Rendering the report's blocks: Markdown with figures linked relative to the report's
directory, and one self-contained HTML file with the PNGs embedded (base64).

A block is a tuple: ``("h", level, text)``, ``("p", text)``, ``("table", header,
rows)``, ``("img", path, caption)``, ``("pre", text)`` or ``("md", markdown)``.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

__all__ = ["Block", "render_markdown", "render_html"]

Block = tuple


# ---------------------------------------------------------------- rendering

def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_markdown(blocks: list[Block], img_prefix: str = "../") -> str:
    """Markdown; figure paths (relative to the output directory) get ``img_prefix``."""
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "table":
            out.append(_md_table(b[1], b[2]))
        elif kind == "img":
            out.append(f"![{b[2]}]({img_prefix}{b[1]})\n\n*{b[2]}*")
        elif kind == "pre":
            out.append("```\n" + b[1] + "\n```")
        elif kind == "md":
            out.append(b[1].strip())
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    t = html.escape(text, quote=False)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    t = re.sub(r"(?<![*\w])\*([^*]+)\*(?!\w)", r"<em>\1</em>", t)
    return t


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{_inline(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _md_to_html(md: str) -> str:
    """Tables and paragraphs of a Markdown snippet (enough for the modules' tables)."""
    out, table, para, items = [], [], [], []

    def flush():
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()
        if table:
            rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in table
                    if not re.fullmatch(r"\|?[\s:|-]+\|?", ln.strip())]
            if rows:
                out.append(_html_table(rows[0], rows[1:]))
            table.clear()
        if para:
            out.append("<p>" + _inline(" ".join(para)) + "</p>")
            para.clear()

    for ln in md.splitlines():
        item = re.match(r"\s*[-*]\s+(.*)", ln)
        if ln.strip().startswith("|"):
            if para or items:
                flush()
            table.append(ln)
        elif item:
            if para or table:
                flush()
            items.append(item.group(1))
        elif not ln.strip():
            flush()
        else:
            if table:
                flush()
            heading = re.match(r"(#+)\s+(.*)", ln)
            if heading:
                flush()
                lvl = min(len(heading.group(1)), 6)
                out.append(f"<h{lvl}>{_inline(heading.group(2))}</h{lvl}>")
            else:
                para.append(ln.strip())
    flush()
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
line-height:1.45;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}
th{background:#f3f3f3} img{max-width:100%;border:1px solid #eee}
figure{margin:1.2em 0} figcaption{font-size:.85em;color:#555}
pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:.8em;max-height:30em}
code{background:#f3f3f3;padding:0 .2em}
"""


def render_html(blocks: list[Block], root: Path, title: str) -> str:
    """One self-contained HTML page; figures are embedded as base64 PNGs."""
    out = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
           f"</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "table":
            out.append(_html_table(b[1], b[2]))
        elif kind == "img":
            data = base64.b64encode((root / b[1]).read_bytes()).decode()
            out.append(f"<figure><img src='data:image/png;base64,{data}' "
                       f"alt='{html.escape(b[2])}'><figcaption>{html.escape(b[2])}"
                       "</figcaption></figure>")
        elif kind == "pre":
            out.append(f"<pre>{html.escape(b[1])}</pre>")
        elif kind == "md":
            out.append(_md_to_html(b[1]))
    out.append("</body></html>")
    return "\n".join(out)
