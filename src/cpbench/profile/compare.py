"""Two deep-dives side by side: which lines' share of the stage time or memory changed most.

Lines are matched by module and source text (not line number or function: between two Cellpose
releases statements move and functions are renamed, e.g. 3.0's ``steps2D_interp`` became 3.1's
``steps_interp``); lines left over are paired with the most similar left-over line of the same module
(``difflib`` ratio >= :data:`EDITED_RATIO`) and marked *edited*: a comparison of two releases lines up
what stayed, shows what was rewritten and names what is new or gone. Shares are percent of each run's own stage time; the stage times themselves
(plain runs, seconds per call) say how the whole moved, so a line's absolute time is share x stage time.
"""

from __future__ import annotations

import difflib
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from cpbench.errors import UserError

Key = tuple[str, str]
#: least similarity (difflib ratio) of two left-over lines of one module that are reported as one edited line
EDITED_RATIO = 0.75


def load_run(folder: Path) -> dict[str, Any]:
    """A deep-dive folder's ``summary.json``; UserError when ``folder`` is not one."""
    path = folder / "summary.json"
    if not path.is_file():
        raise UserError(f"{folder} is not a deep-dive folder (no summary.json); give a folder cpbench profile wrote")
    return json.loads(path.read_text())


def _by_key(run: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    acc: dict[Key, dict[str, Any]] = defaultdict(lambda: {"cpu": 0.0, "malloc_mb": 0.0, "where": [], "function": ""})
    for ln in run["lines"]:
        a = acc[(ln["module"], ln["text"])]
        a["cpu"] += ln["cpu"]
        a["malloc_mb"] += ln["malloc_mb"]
        a["where"].append(ln["where"])
        a["function"] = a["function"] or ln["function"]
    return acc


def pair_lines(ka: dict[Key, Any], kb: dict[Key, Any]) -> list[tuple[Key | None, Key | None, str]]:
    """(key in A, key in B, how): ``same`` text, ``edited`` (most similar left-over line of the module),
    ``gone`` (A only) or ``new`` (B only)."""
    pairs: list[tuple[Key | None, Key | None, str]] = [(k, k, "same") for k in ka if k in kb]
    left_a = [k for k in ka if k not in kb]
    left_b = [k for k in kb if k not in ka]
    scored = sorted(((difflib.SequenceMatcher(None, x[1], y[1]).ratio(), x, y) for x in left_a for y in left_b
                     if x[0] == y[0]), key=lambda t: -t[0])
    used_a: set[Key] = set()
    used_b: set[Key] = set()
    for ratio, x, y in scored:
        if ratio >= EDITED_RATIO and x not in used_a and y not in used_b:
            pairs.append((x, y, "edited"))
            used_a.add(x)
            used_b.add(y)
    pairs += [(x, None, "gone") for x in left_a if x not in used_a]
    pairs += [(None, y, "new") for y in left_b if y not in used_b]
    return pairs


def _stage_s(run: dict[str, Any]) -> float:
    return statistics.median(run["run"]["plain"]["call_s"])  # as the summary states it


def compare(a: dict[str, Any], b: dict[str, Any], top: int = 15) -> list[dict[str, Any]]:
    """Lines of either run, with ``cpu_a``/``cpu_b`` (% of stage time), ``s_a``/``s_b`` (seconds per
    call: share x plain stage time), ``mb_a``/``mb_b`` (MB allocated) and where they are in each;
    the ``top`` largest changes of time, then of memory (each line once)."""
    ka, kb = _by_key(a), _by_key(b)
    sa, sb = _stage_s(a), _stage_s(b)
    rows = []
    for key_a, key_b, how in pair_lines(ka, kb):
        x, y = ka.get(key_a) if key_a else None, kb.get(key_b) if key_b else None
        key = key_b or key_a
        assert key is not None
        text = key[1] if how != "edited" else f"{key_a[1]}  =>  {key_b[1]}"  # type: ignore[index]
        rows.append({"module": key[0], "function": (y or x or {}).get("function", ""), "text": text, "how": how,
                     "where_a": ", ".join(x["where"]) if x else "", "where_b": ", ".join(y["where"]) if y else "",
                     "cpu_a": x["cpu"] if x else 0.0, "cpu_b": y["cpu"] if y else 0.0,
                     "s_a": (x["cpu"] if x else 0.0) / 100 * sa, "s_b": (y["cpu"] if y else 0.0) / 100 * sb,
                     "mb_a": x["malloc_mb"] if x else 0.0, "mb_b": y["malloc_mb"] if y else 0.0})
    by_time = sorted(rows, key=lambda r: -abs(r["s_b"] - r["s_a"]))[:top]
    seen = {id(r) for r in by_time}
    by_mem = [r for r in sorted(rows, key=lambda r: -abs(r["mb_b"] - r["mb_a"])) if id(r) not in seen
              and abs(r["mb_b"] - r["mb_a"]) > 0][:top]
    return by_time + by_mem


def _who(run: dict[str, Any]) -> str:
    r = run["run"]
    return f"`{r['target']}`, Cellpose {r['plain']['versions']['cellpose']}"


def write_comparison(a_dir: Path, b_dir: Path, out: Path, top: int = 15) -> Path:
    """Write ``compare.md`` for runs ``a_dir`` (A) and ``b_dir`` (B) into ``out``; returns its path."""
    a, b = load_run(a_dir), load_run(b_dir)
    if a["run"]["bench"] != b["run"]["bench"]:
        raise UserError(f"the runs profile different stages ({a['run']['bench']} and {b['run']['bench']}); "
                        "compare two runs of one benchmark")
    sa, sb = _stage_s(a), _stage_s(b)
    diff = {k: (a["run"]["params"].get(k), v) for k, v in b["run"]["params"].items() if a["run"]["params"].get(k) != v}
    va, vb = a["run"]["plain"]["versions"]["cellpose"], b["run"]["plain"]["versions"]["cellpose"]
    what = [f"{k} {x} -> {y}" for k, (x, y) in diff.items()] + ([f"Cellpose {va} -> {vb}"] if va != vb else [])
    md = [f"# Deep-dive comparison: {', '.join(what) or 'the same benchmark twice'}", "",
          f"- A: {_who(a)} — `{a_dir}`", f"- B: {_who(b)} — `{b_dir}`",
          f"- stage time (plain runs, median per call): A {sa:.3g} s, B {sb:.3g} s (**B/A {sb / sa:.2f}x**)", "",
          "Seconds per call of a line = its share of the stage's CPU time x the stage time. Lines are matched by "
          "module and source text (same); left-over lines of a module are paired with the most similar one "
          "(edited: A's text => B's); a line only one run has is new or gone.", "",
          "| line (A) | line (B) | match | function (B) | source | A s | B s | change s | A % | B % | A MB | B MB |",
          "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in compare(a, b, top):
        md.append(f"| {r['where_a'] or 'absent'} | {r['where_b'] or 'absent'} | {r['how']} | `{r['function']}` | "
                  f"`{r['text'].replace('|', chr(92) + '|')}` | {r['s_a']:.3g} | {r['s_b']:.3g} | "
                  f"{r['s_b'] - r['s_a']:+.3g} | {r['cpu_a']:.1f} | {r['cpu_b']:.1f} | {r['mb_a']:.0f} | {r['mb_b']:.0f} |")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "compare.md"
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text("\n".join(md) + "\n")
    tmp.replace(path)
    return path
