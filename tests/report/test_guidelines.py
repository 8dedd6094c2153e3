"""cpbench report's guidelines on crafted asv results with planted costs (written with asv's own
results API): fitted models, generated statements, figures and what is missing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from crafted import (
    E2E_P,
    E2E_T,
    MASK_T,
    NET_M,
    NET_T,
    PX,
    RAM,
    SIZES,
    _grid,
    _lin,
    _write,
)

from cpbench.report import costmodel


def _crafted(results: Path, get_masks_factor: float = 1.0, commit: str = "a" * 40, date: int = 1_700_000_000_000,
             sizes: list[str] = SIZES, skip: str | None = None) -> None:
    """``skip``: a size at which the network and end-to-end timings were not measured (the process peak was)."""
    net = (["dataset", "size", "device", "model", "bsize", "batch_size", "tile_overlap", "augment"],
           [["synthetic"], sizes, ["cpu", "cuda"], ["reference"], ["default"], ["8", "32"], ["0.1"], ["False"]])

    def net_t(p):
        if p["device"] == "cuda" or p["size"] == skip:
            return None
        return _lin(NET_T, PX[p["size"]]) * (0.8 if p["batch_size"] == "32" else 1.0)

    def net_m(p):
        if p["device"] == "cuda":
            return None
        return _lin(NET_M, PX[p["size"]]) * (1.5 if p["batch_size"] == "32" else 1.0)

    e2e = (["dataset", "size", "device", "model", "diameter"], [["synthetic"], sizes, ["cpu"], ["reference"], ["13.0"]])
    masks = (["dataset", "size", "flows", "device"], [["synthetic"], sizes, ["network"], ["cpu"]])
    _write(results, commit, date, {
        "bench_network.Network.time_stage": _grid(*net, net_t),
        "bench_network.Network.track_stage_peak_bytes": _grid(*net, net_m),
        "bench_eval.EndToEnd.time_stage": _grid(*e2e, lambda p: None if p["size"] == skip else _lin(E2E_T, PX[p["size"]])),
        "bench_eval.EndToEnd.peakmem_stage": _grid(*e2e, lambda p: _lin(E2E_P, PX[p["size"]])),
        "bench_masks.GetMasks.time_stage": _grid(*masks, lambda p: _lin(MASK_T, PX[p["size"]]) * get_masks_factor),
        "bench_masks.GetMasks.track_stage_peak_bytes": _grid(*masks, lambda p: None),  # failed: nothing recorded
    })


def test_cost_model_recovers_planted_values() -> None:
    pts = [(PX[s], _lin(NET_T, PX[s])) for s in SIZES]
    fit = costmodel.fit_cost(pts)
    assert fit is not None and fit.n == 5
    assert fit.fixed == pytest.approx(NET_T[0], rel=1e-6) and fit.per_megapixel == pytest.approx(2.0, rel=1e-6)
    assert fit.linear_error == pytest.approx(0.0, abs=1e-9)
    power = costmodel.fit_cost([(p, 3e-7 * p**1.3) for p, _ in pts])
    assert power.exponent == pytest.approx(1.3, rel=1e-6) and power.power_error == pytest.approx(0.0, abs=1e-9)
    # a large fixed part (a network's weights and buffers) is a floor, not an exponent below 1
    mem = costmodel.fit_cost([(p, 534e6 + 103.0 * p) for p, _ in pts], "bytes")
    assert mem.exponent == pytest.approx(1.0, rel=1e-3) and mem.floor == pytest.approx(534e6, rel=1e-3)
    assert costmodel.project(mem, 708.9e6).low == pytest.approx(534e6 + 103.0 * 708.9e6, rel=1e-3)
    # +-5% noise: relative residuals keep the small sizes' fixed cost; an unweighted fit gives it a wrong sign
    noisy = costmodel.fit_cost([(p, (0.03 + 0.7e-6 * p) * (1.05 if i % 2 else 0.95)) for i, (p, _) in enumerate(pts)])
    assert noisy.fixed == pytest.approx(0.03, rel=0.2) and noisy.per_megapixel == pytest.approx(0.7, rel=0.05)
    assert noisy.linear_error < 0.06
    proj = costmodel.project(fit, 100 * PX["full"])
    assert proj.extrapolation == pytest.approx(100.0) and proj.low <= proj.value <= proj.high
    assert costmodel.fit_cost(pts[:1]) is None
    assert costmodel.pixels_at(fit, 10.5) == pytest.approx(5e6)


def test_guidelines_state_the_planted_numbers(tmp_path: Path) -> None:
    from cpbench.cli import main

    results, out = tmp_path / "results", tmp_path / "reports"
    _crafted(results)
    _crafted(results, get_masks_factor=2.0, commit="b" * 40, date=1_710_000_000_000)
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    md = (out / "guidelines.md").read_text()
    # scaling table: planted s/MP, fixed s and bytes per pixel of the network
    row = next(line for line in md.splitlines() if line.startswith("| 5 network |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) == pytest.approx(NET_T[1] * 1e6, rel=1e-3)
    assert float(cells[2]) == pytest.approx(NET_T[0], rel=1e-3)
    assert float(cells[7]) == pytest.approx(NET_M[1], rel=1e-3)
    assert cells[4] == f"{costmodel.fit_cost([(PX[s], _lin(NET_T, PX[s])) for s in SIZES]).exponent:.2f}"
    # will it fit: the RAM limit from the planted end-to-end process peak
    limit = (RAM - E2E_P[0]) / E2E_P[1]
    assert f"~{limit / 1e6:.0f} MP (a {np.sqrt(limit):.0f} px square)" in md
    lung, wd = 10101 * 9666, 27120 * 26139
    assert f"~{_lin(E2E_T, lung) / 3600:.2g} h" in md and f"~{_lin(E2E_P, lung) / 1e9:.3g} GB" in md
    assert "extrapolated 12.4x beyond the largest size measured" in md  # LUNG-1-LN: 98 MP / 7.87 MP
    # WD-76845-097 is 90x the largest size measured: no number, anywhere
    assert f"{_lin(E2E_T, wd) / 3600:.2g} h" not in md and f"{_lin(E2E_P, wd) / 1e9:.3g} GB" not in md
    assert "WD-76845-097 (708.9 MP): 90x the largest image measured, beyond the 20x" in md
    # parameter effect and history change, as planted; single samples: "one sample", not "change"
    assert "batch_size=32 multiplies 5 network time by 0.80 and its stage peak by 1.50 (the whole frame, cpu; one sample" in md
    assert re.search(r"8 get_masks time at 1024 px: aaaaaaaa -> bbbbbbbb: [\d.e-]+ s -> [\d.e-]+ s \(2\.00x; one sample", md)
    # what could not be shown is said
    assert "no stage measured on both CPU and CUDA" in md
    html = (out / "guidelines.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "<img" in html and 'src="http' not in html


def test_figures_have_labelled_axes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cpbench.report import figures
    from cpbench.report.build import write_guidelines
    from cpbench.report.results import load_rows

    saved = []
    real = figures._save

    def keep(fig, out):
        saved.append((out.name, [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]))
        return real(fig, out)

    monkeypatch.setattr(figures, "_save", keep)
    results = tmp_path / "results"
    _crafted(results)
    _crafted(results, get_masks_factor=2.0, commit="b" * 40, date=1_710_000_000_000)
    write_guidelines(load_rows(results), [results], tmp_path / "out")
    assert {n for n, _ in saved} >= {"scaling_cpu.png", "breakdown_cpu.png", "sensitivity.png", "history.png",
                                     "will_it_fit.png"}
    for name, axes in saved:
        for x, y in axes:
            assert x and y and re.search(r",\s*\w|\(", x + " " + y), f"{name}: axes without units: {x!r}, {y!r}"
        from PIL import Image

        img = np.asarray(Image.open(tmp_path / "out" / name).convert("L"), dtype=float)
        assert img.shape[0] > 200 and img.std() > 5, f"{name} looks blank"


def test_missing_data_is_said_and_the_rest_renders(tmp_path: Path) -> None:
    from cpbench.cli import main

    results, out = tmp_path / "results", tmp_path / "reports"
    _crafted(results, sizes=["1024"])  # one size, one commit, failed memory of get_masks
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    md = (out / "guidelines.md").read_text()
    assert "one size only, no model" in md
    assert "fewer than two commits measured" in md
    assert "end-to-end eval measured at fewer than two sizes" in md
    assert "Where the time goes" in md and "5 network takes" in md


SCALING_STAGE = '''
import time
import numpy as np
from cpbench.measure import suite as _b

class GetMasks(_b.Stage):
    """Planted as get_masks: 50 ms + 1 s per megapixel, and 48 bytes per pixel held (touched; filling them
    takes ~0.03 s per megapixel, small beside the planted slope)."""
    params = (["synthetic"], ["256", "512", "1024"])
    param_names = ["dataset", "size"]

    def setup_cache(self):
        return "planted"

    def prepare(self, dataset, size):
        self.px = int(size) ** 2

    def run(self):
        a = np.ones(48 * self.px, np.uint8)
        time.sleep(0.05 + 1.0e-6 * self.px)
        return int(a[::4096].sum())
'''


@pytest.mark.slow
def test_a_size_without_some_stages_says_so(tmp_path: Path) -> None:
    """Where the network was not timed, the breakdown names it as missing rather than crowning another stage
    silently; the process peak measured there still counts."""
    from cpbench.cli import main

    _crafted(tmp_path / "results", skip="full")
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "guidelines.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("- At the whole frame"))
    assert line.startswith("- At the whole frame (7.87 MP) 8 get_masks takes 100%")
    assert line.endswith("; without 5 network: not measured at this size.")
    row = next(x for x in md.splitlines() if x.startswith("| full |"))
    assert row.endswith(f"| {_lin(E2E_P, PX['full']) / 1e6:.0f} |")  # the process peak without a timing
    assert "and 5 for the process peak" in md


@pytest.mark.slow
@pytest.mark.serial  # fits a planted time per megapixel: run alone
def test_guidelines_from_a_real_asv_run(tmp_path: Path, asv_tools: Any) -> None:
    """A planted stage measured by the real asv at three sizes: the fitted model finds what was planted."""
    from cpbench.cli import main

    proj = asv_tools.project(tmp_path / "proj", {"bench_masks": SCALING_STAGE})
    asv_tools.run(proj)
    out = tmp_path / "reports"
    assert main(["report", "--results", str(proj / "results"), "--out", str(out)]) == 0
    md = (out / "guidelines.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| 8 get_masks |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[3]) == pytest.approx(1.0, rel=0.2)  # s per MP
    assert float(cells[2]) == pytest.approx(0.05, abs=0.03)  # fixed s
    assert float(cells[7]) == pytest.approx(48, rel=0.1)  # bytes per pixel (512 and 1024: 256 is below the probe)
    assert "fewer than two commits measured" in md and (out / "guidelines.html").stat().st_size > 20_000
