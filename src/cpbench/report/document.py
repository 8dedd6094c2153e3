"""The guidelines document: sections of statements, a table and a figure, written as Markdown
(``guidelines.md``, figures beside it) and as one self-contained HTML file (``guidelines.html``,
figures inline as base64 PNG: opens with no network and no other file)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from cpbench.io.files import write_text


@dataclass
class Section:
    """A part of the document: what the numbers say, the numbers, the figure, and what is missing."""

    title: str
    statements: list[str] = field(default_factory=list)
    table: list[list[str]] | None = None  # header row first
    figure: Path | None = None
    missing: list[str] = field(default_factory=list)
    lead: str | None = None  # the statement the summary quotes (default: the first)
    items: list[list[str]] = field(default_factory=list)  # numbered findings: a claim, then its fields

    def headline(self) -> str | None:
        return self.lead or (self.statements[0] if self.statements else None)


def _md_table(table: list[list[str]]) -> str:
    head, *body = table
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def to_markdown(title: str, preamble: list[str], sections: list[Section]) -> str:
    """The document as Markdown; figures are linked by file name (they lie beside it)."""
    out = [f"# {title}", "", *preamble, ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        out += [f"- {st}" for st in s.statements]
        if s.statements:
            out.append("")
        for i, (claim, *fields) in enumerate(s.items, 1):
            out += [f"{i}. {claim}"] + [f"   - {f}" for f in fields]
        if s.items:
            out.append("")
        if s.figure is not None:
            out += [f"![{s.title}]({s.figure.name})", ""]
        if s.table:
            out += [_md_table(s.table), ""]
        if s.missing:
            out += ["Missing here:", ""] + [f"- {m}" for m in s.missing] + [""]
    return "\n".join(out)


_STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}
.missing{color:#8a4b00}"""


def to_html(title: str, preamble: list[str], sections: list[Section]) -> str:
    """The document as one HTML page with every figure inline (data: URIs)."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
           f"<style>{_STYLE}</style></head><body>", f"<h1>{e(title)}</h1>"]
    out += [f"<p>{e(p)}</p>" for p in preamble]
    for s in sections:
        out.append(f"<h2>{e(s.title)}</h2>")
        if s.statements:
            out.append("<ul>" + "".join(f"<li>{e(st)}</li>" for st in s.statements) + "</ul>")
        if s.items:
            out.append("<ol>" + "".join(f"<li>{e(claim)}<ul>" + "".join(f"<li>{e(f)}</li>" for f in fields)
                                        + "</ul></li>" for claim, *fields in s.items) + "</ol>")
        if s.figure is not None and s.figure.is_file():
            data = base64.b64encode(s.figure.read_bytes()).decode()
            out.append(f'<img alt="{e(s.title)}" src="data:image/png;base64,{data}">')
        if s.table:
            head, *body = s.table
            out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in body]
            out.append("</table>")
        if s.missing:
            out.append('<p class="missing">Missing here:</p><ul class="missing">'
                       + "".join(f"<li>{e(m)}</li>" for m in s.missing) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def write_document(out_dir: Path, title: str, preamble: list[str], sections: list[Section]) -> tuple[Path, Path]:
    """Write ``guidelines.md`` and ``guidelines.html`` into ``out_dir`` (atomically); returns both paths."""
    md = write_text(out_dir / "guidelines.md", to_markdown(title, preamble, sections))
    page = write_text(out_dir / "guidelines.html", to_html(title, preamble, sections))
    return md, page
