"""Which Cellpose model a benchmark runs: explicit resolution by name, never a silent download.

Names (:data:`MODEL_NAMES`), or the path of a weights file:

``reference``
    cpbench's shipped weights (``cpbench/models/data/reference_nuclei.pth``, float16, 13 MB): a CPnet with
    the architecture of Cellpose's builtin ``nuclei`` model (nbase [2, 32, 64, 128, 256], 3
    outputs, diam_mean 17 px) trained on synthetic nuclei by ``tools/train_reference_model.py``.
    Available everywhere, identical on every machine, loaded by Cellpose's own
    ``CellposeModel(pretrained_model=PATH)``. Cellpose 3.x only (the 4.x model class is SAM-based).
``nuclei``
    Cellpose 3.x builtin weights ``nucleitorch_0``, looked up in ``$CELLPOSE_LOCAL_MODELS_PATH``
    and Cellpose's model directory (``cellpose.models.MODEL_DIR``, default
    ``~/.cellpose/models``); if absent there, Cellpose downloads them (needs the internet).
``random``
    the installed Cellpose's default architecture with random weights (3.x: the ``nuclei``
    CPnet; 4.x: Cellpose-SAM): architecture-only timing, finds no nuclei.
``cpsam``
    Cellpose 4.x builtin Cellpose-SAM weights (file ``cpsam`` in the model directory, or
    downloaded by Cellpose).

A model that cannot be provided raises :class:`cpbench.errors.UserError` with one line naming what
was looked for (full paths) and how to provide it.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpbench.errors import UserError

#: the names :func:`resolve` knows, besides file paths
MODEL_NAMES: tuple[str, ...] = ("reference", "nuclei", "random", "cpsam")
#: diameter (px) that nuclei are rescaled to for the CPnet nuclei architecture
NUCLEI_DIAM_MEAN = 17.0
#: nuclei CPnet: input channels + feature maps per level, number of outputs (dY, dX, cellprob)
NUCLEI_NBASE: tuple[int, ...] = (2, 32, 64, 128, 256)
NUCLEI_NOUT = 3
ENV_MODEL_DIR = "CELLPOSE_LOCAL_MODELS_PATH"
DOWNLOAD_TIMEOUT_S = 60.0

_DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: what :func:`load` will build.

    kind: ``reference`` | ``nuclei`` | ``random`` | ``cpsam`` | ``file``.
    path: weights file (None for ``random``).
    diam_mean: px that objects are rescaled to (None: read from the file when loaded).
    source: one line saying where the weights come from.
    """

    name: str
    kind: str
    path: Path | None
    diam_mean: float | None
    source: str


def reference_weights_path() -> Path:
    """The shipped reference weights (float16 CPnet state dict)."""
    return _DATA / "reference_nuclei.pth"


def reference_card() -> dict[str, Any]:
    """The reference model card (recipe, hyper-parameters, run time, evaluation) as a dict."""
    return json.loads((_DATA / "reference_nuclei.json").read_text())


def _installed() -> str:
    from cpbench.stages import cellpose_version

    return ".".join(map(str, cellpose_version()))


def cellpose_model_dirs() -> list[Path]:
    """Where builtin weights are looked for, in order: ``$CELLPOSE_LOCAL_MODELS_PATH`` as set now,
    then the directory Cellpose itself uses (``cellpose.models.MODEL_DIR``; Cellpose reads the
    environment variable once, when ``cellpose.models`` is first imported)."""
    from cellpose import models as cp_models

    dirs = []
    env = os.environ.get(ENV_MODEL_DIR)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(Path(cp_models.MODEL_DIR).expanduser())
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def _find_or_download(name: str, filename: str, download: bool) -> Path:
    """Path of a builtin weights file: found in a model directory, or downloaded by Cellpose."""
    dirs = cellpose_model_dirs()
    for d in dirs:
        if (d / filename).is_file():
            return d / filename
    looked = ", ".join(str(d / filename) for d in dirs)
    how = (f"copy Cellpose's '{filename}' weights file into {dirs[-1]}, or set {ENV_MODEL_DIR} to a "
           f"directory that holds it, or use --model reference")
    if not download:
        raise UserError(f"model '{name}' not found (looked for {looked}); {how}")
    from cellpose import models as cp_models

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        path = Path(cp_models.model_path(name))  # Cellpose's own lookup + download into MODEL_DIR
    except Exception as exc:  # URLError, HTTPError, OSError, timeouts: all mean "not provided"
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"model '{name}' not found (looked for {looked}) and Cellpose could not download it "
                        f"({reason}); {how}") from None
    finally:
        socket.setdefaulttimeout(old)
    if not path.is_file():
        raise UserError(f"model '{name}' not found (looked for {looked}, download gave nothing at {path}); {how}")
    return path


def resolve(name_or_path: str | os.PathLike[str], download: bool = True) -> ModelSpec:
    """Resolve a model name (:data:`MODEL_NAMES`) or a weights file path to a :class:`ModelSpec`.

    ``download``: for ``nuclei`` / ``cpsam`` not found locally, let Cellpose download them
    (False: fail at once). Raises :class:`UserError` when the model cannot be provided.
    """
    from cpbench import stages

    name = os.fspath(name_or_path)
    builtin = stages.builtin_weights()
    if name == "reference":
        if not stages.runs_cpnet_weights():
            raise UserError("model 'reference' is a Cellpose 3.x CPnet and cannot run under cellpose "
                            f"{_installed()}; install cellpose 3.1 (pip install 'cellpose>=3.1,<4') or use --model cpsam")
        path = reference_weights_path()
        if not path.is_file():
            raise UserError(f"model 'reference' not found (looked for {path}); reinstall cpbench, or recreate "
                            "the weights with python tools/train_reference_model.py")
        return ModelSpec(name, "reference", path, NUCLEI_DIAM_MEAN,
                         "cpbench reference weights (CPnet nuclei architecture trained on synthetic nuclei)")
    if name == "nuclei":
        if name not in builtin:
            raise UserError(f"model 'nuclei' is a Cellpose 3.x builtin and does not exist in cellpose {_installed()}; "
                            "use --model cpsam, or install cellpose 3.1 (pip install 'cellpose>=3.1,<4')")
        path = _find_or_download("nuclei", builtin[name], download)
        return ModelSpec(name, "nuclei", path, NUCLEI_DIAM_MEAN, f"Cellpose builtin 'nuclei' weights ({path})")
    if name == "cpsam":
        if name not in builtin:
            raise UserError(f"model 'cpsam' (Cellpose-SAM) needs cellpose >= 4 (installed: {_installed()}); "
                            "install it with pip install 'cellpose>=4' (it brings its own torch), "
                            "or use --model reference|nuclei|random")
        path = _find_or_download("cpsam", builtin[name], download)
        return ModelSpec(name, "cpsam", path, 30.0, f"Cellpose builtin 'cpsam' weights ({path})")
    if name == "random":
        return ModelSpec(name, "random", None, stages.default_diam_mean(), stages.random_architecture())
    path = Path(name).expanduser()
    if path.is_file():
        return ModelSpec(name, "file", path.resolve(), None, f"weights file {path.resolve()}")
    if path.exists():
        raise UserError(f"model path {path.resolve()} is not a file; give the path of a Cellpose weights file")
    raise UserError(f"unknown model {name!r}: not one of {', '.join(MODEL_NAMES)} and no file "
                    f"{path.resolve()}; give one of those names or the path of a Cellpose weights file")


def load(name_or_path: str | os.PathLike[str] | ModelSpec, device: Any = "cpu", download: bool = True,
         seed: int = 0) -> Any:
    """A ``cellpose.models.CellposeModel`` for a model name, path or :class:`ModelSpec`.

    ``device``: torch device or its name ("cpu", "cuda", "cuda:1", "mps"). ``seed`` seeds the
    random weights of ``random``. Weights are loaded by Cellpose's own
    ``CellposeModel(pretrained_model=PATH)``.
    """
    import torch

    from cpbench import stages

    spec = name_or_path if isinstance(name_or_path, ModelSpec) else resolve(name_or_path, download=download)
    dev = torch.device(device)
    if spec.kind == "random":
        return stages.random_model(dev, seed=seed)
    assert spec.path is not None
    if spec.kind in ("reference", "nuclei"):
        return stages.load_weights(str(spec.path), dev, nuclei_cpnet=True, diam_mean=NUCLEI_DIAM_MEAN)
    try:
        return stages.load_weights(str(spec.path), dev)
    except (RuntimeError, KeyError, ValueError, OSError) as exc:  # not a weights file of this Cellpose
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"cannot load {spec.path} as cellpose {_installed()} weights ({reason}); "
                        "give a weights file saved by this Cellpose version") from None


def describe(model: Any) -> dict[str, Any]:
    """Architecture facts of a loaded ``CellposeModel``: class, nbase, nout, diam_mean,
    diam_labels, parameter count."""
    net = getattr(model, "net", model)
    return {
        "net": type(net).__module__ + "." + type(net).__name__,
        "nbase": list(getattr(net, "nbase", []) or []),
        "nout": getattr(net, "nout", None),
        "diam_mean": float(getattr(model, "diam_mean", float("nan"))),
        "diam_labels": float(getattr(model, "diam_labels", float("nan"))),
        "n_parameters": int(sum(p.numel() for p in net.parameters())),
    }
