"""A patched Cellpose beside the installed one: the installed release's package copied into a folder and
one of our patches applied to the copy with ``git apply`` (from the patch file alone), so that putting
the folder first on ``PYTHONPATH`` runs the patched release in any process (a deep-dive, ``cpbench
segment``'s workers) while the installed one stays as it is."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from cpbench.errors import UserError
from cpbench.optimize.branches import Patch


def installed_cellpose() -> tuple[str, Path]:
    """(version, package folder) of the Cellpose this Python imports; UserError when there is none."""
    try:
        v = version("cellpose")
    except PackageNotFoundError:
        raise UserError("Cellpose is not installed in this Python; run under .venv/bin/python (or the venv "
                        "holding the release a patch targets)") from None
    spec = importlib.util.find_spec("cellpose")
    if spec is None or spec.origin is None:
        raise UserError("Cellpose's package folder cannot be found in this Python")
    return v, Path(spec.origin).parent


def require_release(patch: Patch) -> tuple[str, Path]:
    """:func:`installed_cellpose`, or a one-line UserError when it is not the release ``patch`` targets."""
    v, pkg = installed_cellpose()
    if v != patch.release:
        raise UserError(f"{patch.path.name} targets Cellpose {patch.release}, but this Python has {v}; run under "
                        f"a Python with cellpose=={patch.release} (e.g. .venv-cellpose4 for 4.x)")
    return v, pkg


def patched_copy(patch: Patch, dest: Path) -> Path:
    """``dest/cellpose``: the installed Cellpose with ``patch`` applied; returns ``dest`` (the folder to put
    first on ``PYTHONPATH``). One-line UserError when the installed release is not the one the patch
    targets or the patch does not apply to it."""
    v, pkg = require_release(patch)
    copy = dest / "cellpose"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run(["git", "apply", str(patch.path.resolve())], cwd=dest, capture_output=True, text=True)
    if res.returncode != 0:
        shutil.rmtree(copy)
        why = (res.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"{patch.path.name} does not apply to the installed Cellpose {v}: {why}")
    return dest
