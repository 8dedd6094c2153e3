"""Scalene's JSON profile -> the lines behind a stage's cost, grouped by module and function.

Scalene reports, per source line of the profiled files, the share of the profiled CPU time spent
there (``n_cpu_percent_python``, ``n_cpu_percent_c`` = native code called from the line, e.g. numba,
numpy or torch kernels, ``n_sys_percent``), MB allocated there (``n_malloc_mb``, sampled), the peak
footprint reached there (``n_peak_mb``) and the copy rate (``n_copy_mb_s``, MB/s over the profiled
time). A deep-dive profiles only the stage call, so 100 % is the stage's own time.

Scalene's line text escapes ``&``, ``<`` and ``>`` (as ``\\u0026`` ...); :func:`load_lines` restores them.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_UNESCAPE = {"\\u0026": "&", "\\u003c": "<", "\\u003e": ">"}


@dataclass(frozen=True)
class Line:
    """One profiled source line. Shares are percent of the profiled CPU time; MB = 2**20 bytes."""

    path: str  # the file as Scalene names it (absolute)
    module: str  # dotted module, e.g. cellpose.dynamics
    function: str  # enclosing function (qualified), or <module>
    lineno: int
    text: str  # the source line, stripped
    python: float  # % of CPU time in Python code on this line
    native: float  # % in native code called from it (numba, numpy, torch, C extensions)
    system: float  # % in system calls / waiting
    cores: float  # mean cores busy while this line ran (Scalene's core utilisation x CPUs)
    malloc_mb: float  # MB allocated on this line (Scalene's allocation samples)
    peak_mb: float  # peak footprint reached on this line, MB
    copy_mb: float  # MB copied (memcpy) on this line over the profiled time

    @property
    def cpu(self) -> float:
        """Total share of CPU time, percent."""
        return self.python + self.native + self.system

    @property
    def where(self) -> str:
        """``module:line``."""
        return f"{self.module}:{self.lineno}"


def module_name(path: str) -> str:
    """Dotted module of a source file: the package folders (those with ``__init__.py``) above it."""
    p = Path(path)
    parts = [p.stem]
    d = p.parent
    while (d / "__init__.py").is_file():
        parts.insert(0, d.name)
        d = d.parent
    return ".".join(parts)


@functools.cache
def _functions(path: str) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every function in ``path``, innermost last."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    out: list[tuple[int, int, str]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    out.append((child.lineno, child.end_lineno or child.lineno, name))
                walk(child, name + ".")
            else:
                walk(child, prefix)

    walk(tree, "")
    return out


def function_at(path: str, lineno: int) -> str:
    """The innermost function of ``path`` containing ``lineno`` (``<module>`` outside any)."""
    best = "<module>"
    for first, last, name in _functions(path):
        if first <= lineno <= last:
            best = name  # walk order: an inner function comes after its outer one
    return best


def load_lines(profile: dict[str, Any], cpus: int = 1) -> list[Line]:
    """Every line of ``profile`` (Scalene's JSON) with any CPU time, allocation or copy."""
    elapsed = float(profile.get("elapsed_time_sec") or 0.0)
    out = []
    for path, entry in profile.get("files", {}).items():
        for ln in entry.get("lines", []):
            py, c, sys_ = ln.get("n_cpu_percent_python", 0.0), ln.get("n_cpu_percent_c", 0.0), ln.get("n_sys_percent", 0.0)
            malloc, copy = ln.get("n_malloc_mb", 0.0), ln.get("n_copy_mb_s", 0.0) * elapsed
            if py + c + sys_ <= 0 and malloc <= 0 and copy <= 0:
                continue
            text = ln.get("line", "")
            for k, v in _UNESCAPE.items():
                text = text.replace(k, v)
            out.append(Line(path=path, module=module_name(path), function=function_at(path, ln["lineno"]),
                            lineno=int(ln["lineno"]), text=text.strip(), python=py, native=c, system=sys_,
                            cores=ln.get("n_core_utilization", 0.0) * cpus, malloc_mb=malloc,
                            peak_mb=ln.get("n_peak_mb", 0.0), copy_mb=copy))
    return out


def by_function(lines: list[Line]) -> list[tuple[str, float, float, float, float, float]]:
    """(``module.function``, CPU %, Python %, native %, system %, MB allocated), costliest first."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0] * 5)
    for ln in lines:
        a = acc[f"{ln.module}.{ln.function}"]
        for i, v in enumerate((ln.cpu, ln.python, ln.native, ln.system, ln.malloc_mb)):
            a[i] += v
    return sorted(((k, *v) for k, v in acc.items()), key=lambda r: (-r[1], -r[5]))  # type: ignore[misc]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def cpu_section(lines: list[Line], top: int = 15) -> list[str]:
    """Markdown: top lines by CPU share (Python / native / system), grouped by module and function,
    and the share of the stage's time they cover."""
    ranked = sorted((ln for ln in lines if ln.cpu > 0), key=lambda ln: -ln.cpu)
    if not ranked:
        return ["No CPU samples landed in the profiled files (the stage was too short to sample, or ran "
                "outside them)."]
    shown = ranked[:top]
    total = sum(ln.cpu for ln in ranked)
    out = [f"The {len(shown)} lines below cover **{sum(ln.cpu for ln in shown):.1f} %** of the stage's "
           f"profiled CPU time; all {len(ranked)} lines with samples cover {total:.1f} % "
           f"(the rest, {max(100 - total, 0):.1f} %, ran in files outside the profile).", "",
           _row(["line", "function", "source", "CPU %", "Python %", "native %", "system %", "cores"]),
           _row(["---"] * 3 + ["---:"] * 5)]
    for ln in shown:
        out.append(_row([f"`{ln.where}`", f"`{ln.function}`", f"`{_cell(ln.text)}`", f"{ln.cpu:.1f}",
                         f"{ln.python:.1f}", f"{ln.native:.1f}", f"{ln.system:.1f}", f"{ln.cores:.2f}"]))
    out += ["", "By function (every line with samples):", "",
            _row(["function", "CPU %", "Python %", "native %", "system %"]), _row(["---"] + ["---:"] * 4)]
    for name, cpu, py, c, s, _ in by_function(ranked)[:top]:
        out.append(_row([f"`{name}`", f"{cpu:.1f}", f"{py:.1f}", f"{c:.1f}", f"{s:.1f}"]))
    return out


def memory_section(lines: list[Line], top: int = 15) -> list[str]:
    """Markdown: top lines by MB allocated and by MB copied, with the function totals."""
    out: list[str] = []
    alloc = sorted((ln for ln in lines if ln.malloc_mb > 0), key=lambda ln: -ln.malloc_mb)
    if alloc:
        total = sum(ln.malloc_mb for ln in alloc)
        out += [f"Allocation: {total:.0f} MB sampled over the profiled calls; the {min(top, len(alloc))} lines below "
                f"allocate {sum(ln.malloc_mb for ln in alloc[:top]) / total * 100:.0f} % of it.", "",
                _row(["line", "function", "source", "allocated MB", "peak MB"]), _row(["---"] * 3 + ["---:"] * 2)]
        out += [_row([f"`{ln.where}`", f"`{ln.function}`", f"`{_cell(ln.text)}`", f"{ln.malloc_mb:.1f}",
                      f"{ln.peak_mb:.1f}"]) for ln in alloc[:top]]
        out += ["", "By function:", "", _row(["function", "allocated MB"]), _row(["---", "---:"])]
        out += [_row([f"`{r[0]}`", f"{r[5]:.1f}"]) for r in sorted(by_function(alloc), key=lambda r: -r[5])[:top]]
    else:
        out.append("No allocations were sampled in the profiled files.")
    copies = sorted((ln for ln in lines if ln.copy_mb > 0), key=lambda ln: -ln.copy_mb)
    if copies:
        out += ["", f"Copy volume: {sum(ln.copy_mb for ln in copies):.0f} MB copied (memcpy) in the profiled calls.", "",
                _row(["line", "function", "source", "copied MB"]), _row(["---"] * 3 + ["---:"])]
        out += [_row([f"`{ln.where}`", f"`{ln.function}`", f"`{_cell(ln.text)}`", f"{ln.copy_mb:.1f}"])
                for ln in copies[:top]]
    return out
