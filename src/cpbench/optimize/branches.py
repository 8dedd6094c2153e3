"""Our optimizations of Cellpose as branches of the offline history, so that stock asv measures them.

Each optimization is one patch file in :data:`PATCH_DIR` (``git format-patch`` output: a mail header whose
subject and body say what changed and why, then the unified diff), named ``<name>.v<release>.patch`` for
the release it targets. :func:`build_branches` applies every patch with ``git am`` on top of its release's
tag in the history and points ``opt/v<release>/<name>`` at the result, so that::

    asv continuous v4.2.1.1 opt/v4.2.1.1/flow-qc

measures it against its release with the project's own config. The commit is reproducible: author and
date come from the patch's header, the committer is fixed and dated as the author (``git am
--committer-date-is-author-date``), so the same patch on the same release gives the same hash on every
machine, and asv's results of a branch stay comparable from one build of the history to the next.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cpbench.errors import UserError

PATCH_DIR = Path(__file__).parent / "patches"
BRANCH_PREFIX = "opt"
#: who commits the patched trees (the author is the patch's own)
COMMITTER = ("cpbench optimize", "cpbench@localhost")
_NAME = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]*)\.v(?P<release>\d[\w.]*)\.patch$")


@dataclass(frozen=True)
class Patch:
    """A patch file: the optimization's name, the release it targets, its subject line."""

    path: Path
    name: str
    release: str
    subject: str

    @property
    def branch(self) -> str:
        return f"{BRANCH_PREFIX}/v{self.release}/{self.name}"


def read_patch(path: Path) -> Patch:
    """A patch file's name, target release and subject; a one-line UserError when it is not one of ours."""
    m = _NAME.match(path.name)
    if not m:
        raise UserError(f"{path.name}: a patch is named <name>.v<release>.patch (e.g. flow-qc.v4.2.1.1.patch)")
    text = path.read_text(errors="replace")
    subject = re.search(r"^Subject: (?:\[PATCH[^\]]*\] )?(.+(?:\n[ \t].+)*)", text, re.M)  # folded lines too
    if not subject or "\ndiff --git " not in text:
        raise UserError(f"{path}: not a git format-patch file (no Subject: header or no diff); make it with "
                        "git format-patch")
    return Patch(path, m["name"], m["release"], " ".join(subject.group(1).split()))


def patches(folder: Path = PATCH_DIR) -> list[Patch]:
    """Every patch in ``folder``, by name."""
    return [read_patch(p) for p in sorted(folder.glob("*.patch"))]


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    if res.returncode != 0:
        why = (res.stderr.strip().splitlines() or res.stdout.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"git {' '.join(args[:2])} failed in {repo}: {why}")
    return res.stdout.strip()


def build_branch(repo: Path, patch: Patch) -> tuple[str, str]:
    """Apply ``patch`` on its release's tag in the history ``repo`` (in a temporary worktree: the
    repository's own checkout is untouched) and point its branch at the commit; returns (branch, commit).
    A one-line UserError when the release is not in the history or the patch does not apply."""
    tag = f"v{patch.release}"
    try:
        base = _git(repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
    except UserError:
        raise UserError(f"{patch.path.name} targets Cellpose {patch.release}, which the history {repo} does not hold; "
                        f"build it: cpbench cellpose-history --out {repo}") from None
    env = {"GIT_COMMITTER_NAME": COMMITTER[0], "GIT_COMMITTER_EMAIL": COMMITTER[1]}
    with tempfile.TemporaryDirectory(prefix=".cpbench-opt-") as tmp:
        work = Path(tmp) / "tree"
        _git(repo, "worktree", "add", "--quiet", "--detach", str(work), base)
        try:
            try:
                _git(work, "am", "--quiet", "--committer-date-is-author-date", "--keep-cr", str(patch.path.resolve()),
                     env=env)
            except UserError as exc:
                raise UserError(f"{patch.path.name} does not apply to {tag}: {exc}") from None
            commit = _git(work, "rev-parse", "HEAD")
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(work)], capture_output=True)
            subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)
    _git(repo, "update-ref", f"refs/heads/{patch.branch}", commit)
    return patch.branch, commit


def build_branches(repo: Path, folder: Path = PATCH_DIR) -> list[tuple[Patch, str]]:
    """Every patch of ``folder`` as its branch in ``repo``; returns (patch, commit) pairs."""
    if not (repo / ".git").is_dir():
        raise UserError(f"no Cellpose history at {repo}; build it: cpbench cellpose-history --out {repo}")
    found = patches(folder)
    if not found:
        raise UserError(f"no patches in {folder} (<name>.v<release>.patch)")
    return [(p, build_branch(repo, p)[1]) for p in found]
