"""The ranked guidelines and the five answers on crafted asv results with planted effects: what ranks
first, what is not a guideline, what is not called a change, what three quick sizes may not say, and
that a missing answer names the command that would give it."""

from __future__ import annotations

import re
from pathlib import Path

from crafted import _grid, _lin, _write

from cpbench.cli import main

LAW = ["256", "512", "1024", "2048", "4096"]  # 5 sizes over 256x: a scaling law
QUICK = ["256", "512", "1024"]  # the quick grid: 16x, 3 sizes: no law
E2E = (1.0, 20e-6)  # seconds = fixed + s/px * px
SHARES = {"bench_masks.FollowFlows": 0.6, "bench_network.Network": 0.3}  # of end-to-end eval's time
CONVERT_S = 1e-4  # a sub-millisecond stage
SPREAD = [0.85, 1.15, 0.9, 1.1, 1.0, 0.95, 1.05]  # recorded samples of a noisy benchmark (+-15 %)


def _px(size: str) -> int:
    return int(size) ** 2


def _world(results: Path, sizes: list[str], commit: str = "a" * 40, date: int = 1_700_000_000_000,
           convert: float = 1.0, get_masks: float = 1.0, get_masks_samples: bool = True,
           niter: bool = True) -> None:
    """Eval, follow_flows (60 % of eval; niter=100 halves it), network (30 %), convert (0.1 ms; times
    ``convert``) and get_masks (1 % of eval, times ``get_masks``: recorded samples, or one)."""
    def e2e(size: str) -> float:
        return _lin(E2E, _px(size))

    stage = (["dataset", "size", "device"], [["synthetic"], sizes, ["cpu"]])
    flows = (["dataset", "size", "niter", "device"], [["synthetic"], sizes, ["100", "200"] if niter else ["200"], ["cpu"]])
    eval_ = (["dataset", "size", "device", "model", "diameter"], [["synthetic"], sizes, ["cpu"], ["reference"], ["13.0"]])

    def masks(p: dict) -> float | list[float]:
        v = 0.01 * e2e(p["size"]) * get_masks
        return [v * s for s in SPREAD] if get_masks_samples else v

    _write(results, commit, date, {
        "bench_eval.EndToEnd.time_stage": _grid(*eval_, lambda p: e2e(p["size"])),
        "bench_eval.EndToEnd.peakmem_stage": _grid(*eval_, lambda p: 300e6 + 100.0 * _px(p["size"])),
        "bench_masks.FollowFlows.time_stage": _grid(*flows, lambda p: SHARES["bench_masks.FollowFlows"] * e2e(p["size"])
                                                    * (0.5 if p["niter"] == "100" else 1.0)),
        "bench_network.Network.time_stage": _grid(*stage, lambda p: SHARES["bench_network.Network"] * e2e(p["size"])),
        "bench_preprocess.Convert.time_stage": _grid(*stage, lambda p: CONVERT_S * convert),
        "bench_masks.GetMasks.time_stage": _grid(*stage, masks),
    })


def _report(tmp_path: Path, sizes: list[str], **second: object) -> str:
    """Two commits (a, then b with ``second``'s changes); returns guidelines.md."""
    results, out = tmp_path / "results", tmp_path / "out"
    _world(results, sizes)
    _world(results, sizes, commit="b" * 40, date=1_710_000_000_000, **second)  # type: ignore[arg-type]
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    return (out / "guidelines.md").read_text()


def _section(md: str, title: str) -> str:
    start = md.index(f"## {title}")
    end = md.find("\n## ", start + 1)
    return md[start:end if end > 0 else None]


def _ranked(md: str) -> list[str]:
    """The claims of the ranked guidelines, in order."""
    sec = _section(md, "Guidelines, ranked by their effect on a whole-slide run")
    return [m.group(1) for m in re.finditer(r"^\d+\. (.*)$", sec, flags=re.M)]


def test_the_largest_whole_slide_effect_ranks_first(tmp_path: Path) -> None:
    md = _report(tmp_path, LAW)
    ranked = _ranked(md)
    assert ranked[0].startswith("7 follow_flows (post-processing) takes 60% of whole-image eval's time"), ranked
    # then, 30 % of the run each: what halving it saves, and the network
    assert {c.split(" ", 3)[0] for c in ranked[1:3]} == {"niter=100", "5"}, ranked
    assert any(c.startswith("niter=100 multiplies 7 follow_flows time by 0.50") for c in ranked[1:3])
    assert any(c.startswith("5 network (the model) takes 30%") for c in ranked[1:3])
    first = _section(md, "Guidelines, ranked")
    # whole-slide effects, per challenge image: exemplar-001 within the 16.8 MP measured, LUNG-1-LN (98 MP) labelled
    # an extrapolation, WD-76845-097 (709 MP) beyond 20x: no number
    assert "exemplar-001: 1.6 min (60.0% of the run);" in first
    assert "LUNG-1-LN: 20 min (60.0% of the run) (extrapolated 5.82x beyond the largest size measured)" in first
    assert "WD-76845-097: " in first and re.search(r"WD-76845-097: (\S+ )?(h|min|s) ", first) is None
    assert "WD-76845-097: not projected: 42.3x beyond the largest size measured" in first
    # how to segment: WD-76845-097 in blocks whose own size lies within the sizes measured, so its wall time is a
    # sum over blocks (none beyond 4x), while its whole-image projection (42x) gives no number
    howto = _section(md, "How to segment each challenge image (cpu)")
    assert "- exemplar-001: whole image; wall time ~" in howto
    wd = next(x for x in howto.splitlines() if x.startswith("- WD-76845-097: "))
    assert wd.startswith("- WD-76845-097: blockwise (cpbench segment), 16 blocks, blocks of 8192 px")
    assert re.search(r"wall time ~[\d.]+ h \([\d.]+-[\d.]+ h\)\.$", wd), wd
    # the answers open the document, with the law and the bottleneck
    answers = _section(md, "Answers to the challenge's questions")
    assert md.index("## Answers") < md.index("## Guidelines, ranked")
    assert "(1) Bottleneck (cpu): at 4096 px, post-processing takes" in answers
    assert "(2) Scaling (cpu): whole-image eval's time grows as pixels^1.00" in answers


def test_a_10x_change_of_a_sub_millisecond_stage_is_not_a_guideline(tmp_path: Path) -> None:
    md = _report(tmp_path, LAW, convert=10.0)
    assert not any("2 convert" in claim for claim in _ranked(md))
    below = _section(md, "Findings below 1% of a run (not guidelines)")
    assert "2 convert time at 1024 px: aaaaaaaa -> bbbbbbbb: 0.0001 s -> 0.001 s (10.00x" in below


def test_a_change_inside_the_noise_is_not_called_a_change(tmp_path: Path) -> None:
    # +12 % with 7 recorded samples of +-15 % on each side: asv's statistics do not flag it
    md = _report(tmp_path, LAW, get_masks=1.12)
    history = _section(md, "Across Cellpose commits and releases")
    line = next(x for x in history.splitlines() if x.startswith("- 8 get_masks time"))
    assert "(1.12x; within noise: asv statistics on 7 and 7 samples)" in line
    assert not any("8 get_masks time" in claim for claim in _ranked(md))
    assert "1 within noise" in history
    # one sample on the new side, +15 %: inside the detection limit measured from the 7 samples
    md = _report(tmp_path / "one", LAW, get_masks=1.15, get_masks_samples=False)
    line = next(x for x in _section(md, "Across Cellpose").splitlines() if x.startswith("- 8 get_masks time"))
    assert re.search(r"\(1\.15x; within noise: one sample inside the detection limit \+\d+%\)", line), line
    # and a planted 3x with one sample is beyond it: a change
    md = _report(tmp_path / "big", LAW, get_masks=3.0, get_masks_samples=False)
    line = next(x for x in _section(md, "Across Cellpose").splitlines() if x.startswith("- 8 get_masks time"))
    assert re.search(r"\(3\.00x; change: one sample beyond the detection limit \+\d+%\)", line), line
    assert any(claim.startswith("8 get_masks time at 1024 px") for claim in _ranked(md))


def test_three_quick_sizes_give_no_law_and_no_projected_number(tmp_path: Path) -> None:
    md = _report(tmp_path, QUICK)
    answers = _section(md, "Answers to the challenge's questions")
    assert "no scaling law from these results (3 sizes over 16x in pixels (a law needs 4 sizes over 16x))" in answers
    assert "pixels^" not in answers and "grows faster than the image" not in md
    ranked = _section(md, "Guidelines, ranked")
    assert "exemplar-001" not in ranked and "LUNG-1-LN" not in ranked and "WD-76845-097" not in ranked
    assert re.search(r" h \(|~[\d.]+ h|GB \(", ranked) is None  # no whole-slide hours or GB
    assert "at 1024 px (measured)" in ranked
    howto = _section(md, "How to segment each challenge image (cpu)")
    assert "Not stated from these results: whole-image or blockwise, and the block size" in howto
    assert "cpbench sweep scaling" in howto and "| WD-76845-097 |" not in howto
    fit = _section(md, "Will it fit?")
    assert "No whole-slide projection from these results" in fit and "| WD-76845-097 |" not in fit


def test_missing_answers_name_the_command(tmp_path: Path) -> None:
    md = _report(tmp_path, QUICK)
    answers = _section(md, "Answers to the challenge's questions")
    assert "(3) Dense cells: not measured in these results" in answers
    missing = answers.split("Missing here:")[1]
    assert "question 2 (a scaling law and whole-slide projections): cpbench sweep scaling (6 sizes" in missing
    # niter swept on one stage only: the fast-settings study would put every setting beside its accuracy
    assert "question 4 (all settings side by side with their accuracy): cpbench sweep fast" in missing
    assert "question 5 (input channels): cpbench sweep channels" in missing
    assert "cpbench sweep scaling" in _section(md, "Will it fit?")


FRACTIONS = {"synthetic-bare": 0.001, "synthetic-sparse": 0.05, "synthetic": 0.2, "synthetic-packed": 0.5}


def test_density_answer_and_cost_per_cell_pixel(tmp_path: Path) -> None:
    """follow_flows planted as 0.01 s + 0.1 s/MP + 4 s per MP of cell pixels at four densities and three sizes:
    the answer and the section give the ratios against typical, and the fit recovers the planted slopes."""
    results, out = tmp_path / "results", tmp_path / "out"
    _world(results, LAW)
    names = ["dataset", "size"]
    dens = [list(FRACTIONS), QUICK]
    flows = (["dataset", "size", "niter", "device"], [list(FRACTIONS), QUICK, ["200"], ["cpu"]])

    def follow(p: dict) -> float:
        px = _px(p["size"])
        return 0.01 + 0.1e-6 * px + 4e-6 * px * FRACTIONS[p["dataset"]]

    _write(results, "a" * 40, 1_700_000_000_000, {
        "bench_masks.FollowFlows.time_stage": _grid(*flows, follow),
        "bench_masks.CellDensity.track_cell_fraction": _grid(names, dens, lambda p: FRACTIONS[p["dataset"]]),
        "bench_masks.CellDensity.track_nuclei_per_mp": _grid(names, dens, lambda p: 5000 * FRACTIONS[p["dataset"]]),
    })
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    md = (out / "guidelines.md").read_text()
    answers = _section(md, "Answers to the challenge's questions")
    typical, packed = follow({"size": "1024", "dataset": "synthetic"}), follow({"size": "1024", "dataset": "synthetic-packed"})
    assert (f"(3) Dense cells (cpu, 1024 px): packed (2500 nuclei per MP, 50% cell pixels) against typical "
            f"(1000 nuclei per MP, 20% cell pixels): 7 follow_flows x{packed / typical:.2f} (one sample)") in answers
    sec = _section(md, "Dense cells: cost against cell density (cpu)")
    assert "7 follow_flows: 0.01 s + 0.1 s per MP + 4 s per MP of cell pixels (12 inputs, fit error 0%)." in sec
    assert "| cell-pixel fraction | 1024 | 0.1% | 5.0% | 20.0% | 50.0% |" in sec


def test_blockwise_density_at_its_own_sizes(tmp_path: Path) -> None:
    """Blockwise segmentation measured by the density sweep (512-2048 px in 256 px blocks, planted x1.5 packed
    against typical) beside follow_flows at 256-1024 px: the answer names its size and blocks, the table has
    its row at its own largest size, and it is a ranked finding of its own (a whole run: its own ratio)."""
    results, out = tmp_path / "results", tmp_path / "out"
    _world(results, LAW)
    sizes = ["512", "1024", "2048"]
    flows = (["dataset", "size", "niter", "device"], [list(FRACTIONS), QUICK, ["200"], ["cpu"]])
    block = (["dataset", "size", "block"], [list(FRACTIONS), sizes, ["256", "2048"]])
    cells = (["dataset", "size"], [list(FRACTIONS), ["256", *sizes]])

    def blockwise(p: dict) -> float | None:
        if p["block"] != "256":
            return None  # not measured
        return 20e-6 * _px(p["size"]) * (1.5 if p["dataset"] == "synthetic-packed" else 1.0)

    _write(results, "a" * 40, 1_700_000_000_000, {
        "bench_masks.FollowFlows.time_stage": _grid(*flows, lambda p: 1e-6 * _px(p["size"]) * (1 + FRACTIONS[p["dataset"]])),
        "bench_segment.Blockwise.time_stage": _grid(*block, blockwise),
        "bench_masks.CellDensity.track_cell_fraction": _grid(*cells, lambda p: FRACTIONS[p["dataset"]]),
        "bench_masks.CellDensity.track_nuclei_per_mp": _grid(*cells, lambda p: 5000 * FRACTIONS[p["dataset"]]),
    })
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    md = (out / "guidelines.md").read_text()
    answers = _section(md, "Answers to the challenge's questions")
    assert "(3) Dense cells (cpu, 1024 px):" in answers
    assert "blockwise (cpbench segment) at 2048 px in 256 px blocks x1.50 (one sample)" in answers
    sec = _section(md, "Dense cells: cost against cell density (cpu)")
    assert "| blockwise (cpbench segment) | 2048 | 83.9 | 83.9 | 83.9 | 126 |" in sec
    assert ("Densely packed cells make blockwise segmentation (256 px blocks) 1.50x as long as the typical density "
            "at 2048 px (one sample).") in _ranked(md)


def test_model_answer_from_the_models_sweep(tmp_path: Path) -> None:
    """Random weights against the reference model (recorded samples): the network's time planted equal, eval's
    x1.4 (the flows it follows). The answer gives both with their verdicts and says the network did not change;
    the model is not a parameter guideline."""
    results, out = tmp_path / "results", tmp_path / "out"
    _world(results, LAW)
    net = (["dataset", "size", "device", "model"], [["synthetic"], QUICK, ["cpu"], ["reference", "random"]])
    ev = (["dataset", "size", "device", "model", "diameter"],
          [["synthetic"], QUICK, ["cpu"], ["reference", "random"], ["13.0"]])

    def samples(v: float) -> list[float]:
        return [v * s for s in SPREAD]

    _write(results, "a" * 40, 1_700_000_000_000, {
        "bench_network.Network.time_stage": _grid(*net, lambda p: samples(10e-6 * _px(p["size"]))),
        "bench_eval.EndToEnd.time_stage": _grid(*ev, lambda p: samples(
            20e-6 * _px(p["size"]) * (1.4 if p["model"] == "random" else 1.0))),
    })
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    md = (out / "guidelines.md").read_text()
    answers = _section(md, "Answers to the challenge's questions")
    assert "(5) Models: model=random (random weights in the installed Cellpose's default architecture" in answers
    assert "5 network x1.00 at 1024 px (within noise)" in answers
    assert "end to end (eval) x1.40 at 1024 px (change)" in answers
    assert "The network's time did not change with the weights (same architecture)" in answers
    assert "Not measured: nuclei, cpsam" in answers and "question 5 (models)" not in answers
    assert not any("model=random" in claim for claim in _ranked(md))
