"""Model resolution (cpbench.models), the shipped reference weights, and evaluation (cpbench.models.evaluate)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cpbench import models, stages
from cpbench.errors import UserError
from cpbench.models import cli as model_cli
from cpbench.models import evaluate

cellpose3 = pytest.mark.skipif(stages.cellpose_version()[0] != 3, reason="the CPnet nuclei architecture is cellpose 3.x")

#: a held-out scene: seed far from the training seeds (10,000+), small enough for a fast test
HELD_OUT = dict(size=256, density=90.0, seed=999)


def _fresh_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=300)


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    return evaluate.synthetic_image(HELD_OUT["size"], HELD_OUT["density"], HELD_OUT["seed"])


@pytest.fixture(scope="module")
def reference_model():  # type: ignore[no-untyped-def]
    return models.load("reference")


# ----- the shipped weights -------------------------------------------------------------------


def test_weights_file_is_shipped_small_and_matches_card() -> None:
    path = models.reference_weights_path()
    assert path.is_file(), path
    assert path.stat().st_size <= 30e6
    card = models.reference_card()
    assert card["weights"]["file"] == path.name
    assert card["weights"]["bytes"] == path.stat().st_size
    assert card["weights"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # the card documents the recipe, the run time and held-out numbers that meet the bar
    assert card["training"]["hyper_parameters"]["n_epochs"] > 0
    assert card["training"]["wall_time_s"]["train"] > 0
    at13 = [r for r in card["evaluation"]["rows"] if r["diameter"] == 13.0 and "scene" not in r]
    assert {r["density"] for r in at13} >= {30.0, 90.0, 150.0}
    assert min(r["ap50"] for r in at13) >= 0.90


@cellpose3
def test_reference_has_the_nuclei_architecture(reference_model) -> None:  # type: ignore[no-untyped-def]
    from cellpose import models as cp_models

    fresh = cp_models.CellposeModel(pretrained_model=False, diam_mean=17.0, nchan=2)  # nuclei architecture
    got, want = models.describe(reference_model), models.describe(fresh)
    assert got["net"] == "cellpose.resnet_torch.CPnet"
    assert got["nbase"] == [2, 32, 64, 128, 256] == list(models.NUCLEI_NBASE)
    assert got["nout"] == 3
    assert got["diam_mean"] == 17.0
    assert got["diam_labels"] == 17.0  # diameter=None means no rescaling, as with the builtin nuclei model
    assert got["n_parameters"] == want["n_parameters"]
    ref_sd, fresh_sd = reference_model.net.state_dict(), fresh.net.state_dict()
    assert ref_sd.keys() == fresh_sd.keys()
    assert all(ref_sd[k].shape == fresh_sd[k].shape for k in fresh_sd)
    # and the file holds every tensor of the network (nothing silently left at its random init)
    import torch

    stored = torch.load(models.reference_weights_path(), map_location="cpu", weights_only=True)
    assert stored.keys() == fresh_sd.keys()


@cellpose3
def test_weights_load_with_the_plain_cellpose_api_in_a_fresh_process() -> None:
    path = models.reference_weights_path()
    r = _fresh_python(f"""
        import json, torch
        from cellpose import models
        m = models.CellposeModel(pretrained_model={str(path)!r})
        sd = torch.load({str(path)!r}, map_location="cpu", weights_only=True)
        w = m.net.state_dict()["output.2.weight"]
        print(json.dumps(dict(diam_mean=float(m.diam_mean), dtype=str(w.dtype),
                              same=bool(torch.equal(w, sd["output.2.weight"].float())),
                              nbase=list(m.net.nbase), nout=m.net.nout)))
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == dict(diam_mean=17.0, dtype="torch.float32", same=True, nbase=[2, 32, 64, 128, 256], nout=3)


# ----- segmentation: the reference model finds nuclei, random weights do not ----------------


@cellpose3
def test_reference_model_finds_nuclei_on_a_held_out_image(reference_model, held_out) -> None:  # type: ignore[no-untyped-def]
    img, gt = held_out
    r = evaluate.evaluate(reference_model, [img], [gt], diameter=evaluate.SYNTH_DIAMETER)
    assert r["n_true"] > 150
    assert r["ap50"] >= 0.8, r
    assert 0.8 < r["n_pred"] / r["n_true"] < 1.2


@cellpose3
def test_random_weights_find_no_nuclei(held_out) -> None:  # type: ignore[no-untyped-def]
    img, gt = held_out
    r = evaluate.evaluate(models.load("random"), [img], [gt], diameter=evaluate.SYNTH_DIAMETER)
    assert r["ap50"] < 0.2, r


# ----- evaluation arithmetic -----------------------------------------------------------------


class _Oracle:
    """A stand-in CellposeModel whose eval returns fixed labels."""

    def __init__(self, masks: list[np.ndarray]) -> None:
        self.masks = list(masks)

    def eval(self, img, **kw):  # type: ignore[no-untyped-def]
        return self.masks.pop(0), None, None


def test_evaluate_pools_counts_over_images() -> None:
    gt1 = np.zeros((32, 32), np.uint32)
    gt1[2:8, 2:8], gt1[20:28, 20:28] = 7, 9  # ids need not be contiguous
    gt2 = np.zeros((32, 32), np.uint32)
    gt2[10:16, 10:16] = 1
    pred1 = gt1.copy()  # both right
    pred2 = np.zeros_like(gt2)  # one missed
    r = evaluate.evaluate(_Oracle([pred1, pred2]), [np.zeros((32, 32))] * 2, [gt1, gt2], diameter=None)
    assert r["n_true"] == 3 and r["n_pred"] == 2
    assert r["tp"] == [2, 2, 2] and r["fn"] == [1, 1, 1] and r["fp"] == [0, 0, 0]
    assert r["ap50"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["per_image_ap"] == [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]


def test_evaluate_empty_image_found_empty_is_perfect() -> None:
    empty = np.zeros((16, 16), np.uint32)
    r = evaluate.evaluate(_Oracle([empty]), [empty], [empty], diameter=None)
    assert r["ap50"] == 1.0 and r["n_true"] == 0 and r["n_pred"] == 0


# ----- resolution ----------------------------------------------------------------------------


def test_unknown_name_is_one_line_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_weights"
    with pytest.raises(UserError) as e:
        models.resolve(str(missing))
    msg = str(e.value)
    assert "\n" not in msg and str(missing) in msg and "reference" in msg


def test_a_weights_file_path_resolves_to_a_file_spec() -> None:
    spec = models.resolve(str(models.reference_weights_path()))
    assert spec.kind == "file" and spec.path == models.reference_weights_path().resolve()


@cellpose3
def test_cpsam_needs_cellpose_4() -> None:
    with pytest.raises(UserError, match=r"cellpose >= 4") as e:
        models.resolve("cpsam")
    assert "\n" not in str(e.value)


def test_names_that_belong_to_the_other_major_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cpbench.stages import api

    monkeypatch.setattr(api, "cellpose_version", lambda: (4, 2, 1, 1))
    for name in ("reference", "nuclei"):
        with pytest.raises(UserError, match=r"cellpose 3\.1"):
            models.resolve(name)
    # cpsam under 4.x: found in the Cellpose model directory, no download
    monkeypatch.setenv(models.ENV_MODEL_DIR, str(tmp_path))
    (tmp_path / "cpsam").write_bytes(b"")
    spec = models.resolve("cpsam", download=False)
    assert spec.kind == "cpsam" and spec.path == tmp_path / "cpsam"


@cellpose3
def test_missing_nuclei_names_what_was_looked_for_and_how_to_provide_it(tmp_path: Path) -> None:
    # fresh process: Cellpose reads CELLPOSE_LOCAL_MODELS_PATH when cellpose.models is imported.
    # The download URL points at a closed local port, so the test is the same with or without internet.
    r = _fresh_python("""
        from cellpose import models as cp
        cp._MODEL_URL = "http://127.0.0.1:9/models"
        from cpbench import models
        from cpbench.errors import UserError
        for download in (False, True):
            try:
                models.resolve("nuclei", download=download)
                print("RESOLVED")
            except UserError as e:
                print("ERR", e)
    """, env={models.ENV_MODEL_DIR: str(tmp_path)})
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("ERR ") for line in lines), r.stdout
    for line in lines:
        assert str(tmp_path / "nucleitorch_0") in line
        assert models.ENV_MODEL_DIR in line and "--model reference" in line
    assert "could not download" in lines[1]
    assert not (tmp_path / "nucleitorch_0").exists()


@cellpose3
def test_nuclei_found_in_the_local_model_directory_loads_with_cellpose(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # stand-in for Cellpose's nuclei weights: the reference weights under Cellpose's file name
    shutil.copy(models.reference_weights_path(), tmp_path / "nucleitorch_0")
    monkeypatch.setenv(models.ENV_MODEL_DIR, str(tmp_path))
    spec = models.resolve("nuclei", download=False)
    assert spec.kind == "nuclei" and spec.path == tmp_path / "nucleitorch_0"
    m = models.load(spec)
    assert m.pretrained_model == str(tmp_path / "nucleitorch_0")
    assert float(m.diam_mean) == 17.0 and models.describe(m)["nbase"] == [2, 32, 64, 128, 256]


@cellpose3
def test_random_is_the_nuclei_architecture() -> None:
    spec = models.resolve("random")
    assert spec.kind == "random" and spec.path is None and spec.diam_mean == 17.0
    d = models.describe(models.load(spec))
    assert d["nbase"] == [2, 32, 64, 128, 256] and d["nout"] == 3 and d["diam_mean"] == 17.0


# ----- CLI -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cpbench")
    model_cli.register(p.add_subparsers(dest="command"))
    return p


@pytest.mark.parametrize("argv, needle", [
    (["evaluate", "--model", "no-such-model"], "unknown model"),
    (["evaluate", "--diameter", "-3"], "--diameter"),
    (["evaluate", "--density", "abc"], "--density"),
    (["evaluate", "--density", "500"], "density must be"),
    (["evaluate", "--size", "8"], "--size"),
])
def test_cli_user_errors(argv: list[str], needle: str) -> None:
    args = _parser().parse_args(argv)
    with pytest.raises(UserError, match=needle) as e:
        args.func(args)
    assert "\n" not in str(e.value)


@cellpose3
def test_cli_evaluate_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["evaluate", "--model", "reference", "--size", "128", "--seeds", "998",
                                 "--density", "90", "--diameter", "13"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "AP@0.5" in out and "reference" in out
    row = [line for line in out.splitlines() if line.startswith("reference")][0].split()
    assert float(row[4]) >= 0.7  # AP@0.5 of a tiny held-out crop


def test_cli_models_lists_every_name(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["models", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["name"] for o in out] == list(models.MODEL_NAMES)
    assert out[0]["available"] is (stages.cellpose_version()[0] == 3)
