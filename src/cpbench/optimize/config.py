"""An asv config beside the project's for measuring other Cellpose commits: our patch branches, or a
user's own fork or local checkout.

:func:`write_config` copies ``asv.conf.json`` (comments kept) with another ``repo``, ``branches`` and
``results_dir``; ``env_dir`` and ``build_command`` stay, so the environment the project's own runs built
(5 GB: torch among it) is reused and only Cellpose is rebuilt per commit. Written beside
``asv.conf.json``, its relative paths and ``{conf_dir}`` mean what they mean there. Then::

    asv --config asv.optimize.json continuous v3.1.1.3 opt/v3.1.1.3/follow-flows

The results go to a folder of their own (default :data:`RESULTS_DIR`), apart from ``.asv/results*``,
which ``make example`` copies into the committed example: a patched commit is not a release.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from cpbench.errors import UserError
from cpbench.measure.sweep import derived_config

#: where measurements of patched or forked commits go (not ``.asv/results*``: those are the example's)
RESULTS_DIR = ".asv/optimize-results"
#: the config file cpbench optimize writes by default, beside asv.conf.json (git-ignored)
CONFIG = Path("asv.optimize.json")


def missing_branches(repo: Path, branches: Sequence[str]) -> list[str]:
    """The names in ``branches`` that are not branches (``refs/heads/``) of the git repository ``repo``."""
    out = subprocess.run(["git", "-C", str(repo), "for-each-ref", "--format=%(refname:short)", "refs/heads/"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise UserError(f"{repo} is not a git repository; give --repo a Cellpose checkout (a clone of your fork)")
    have = set(out.stdout.split())
    return [b for b in branches if b not in have]


def write_config(out: Path, repo: Path | str, branches: Sequence[str], results_dir: str = RESULTS_DIR,
                 conf: Path = Path("asv.conf.json")) -> Path:
    """Write ``out``: ``conf`` with ``repo`` (a local Cellpose checkout, used in place by asv),
    ``branches`` (each must exist there) and ``results_dir``. ``out`` must lie beside ``conf``
    (``{conf_dir}`` and the relative paths are the project's). One-line UserError otherwise."""
    if out.resolve().parent != conf.resolve().parent:
        raise UserError(f"{out}: write the config beside {conf} (its relative paths and {{conf_dir}} are that "
                        f"folder's), e.g. {conf.resolve().parent / out.name}")
    if not branches:
        raise UserError("name at least one branch (--branch) for asv to walk")
    path = Path(repo)
    if not (path / ".git").exists():
        raise UserError(f"{repo} is not a git checkout; clone your fork (git clone URL {repo}) and give that folder")
    missing = missing_branches(path, branches)
    if missing:
        raise UserError(f"{repo} has no branch {', '.join(missing)}; create it there (git -C {repo} branch NAME) "
                        "or name another with --branch")
    return derived_config(conf, out, {"repo": str(repo), "branches": list(branches), "results_dir": results_dir})
