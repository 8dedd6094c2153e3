"""The project's own asv.conf.json over a two-release Cellpose history (3.1.1.2, 3.1.1.3, their real
source distributions from the registry): stock `asv run` builds each release in one environment
with the version from its tag, installs the dependency set once, and never reinstalls torch.
Slow: the first commit creates the environment (about 5 GB, 1.5 minutes here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cpbench.history.build import build_history

ROOT = Path(__file__).resolve().parents[2]
RELEASES = ("3.1.1.2", "3.1.1.3")


def _site_packages(env_dir: Path) -> Path:
    [env] = [p for p in env_dir.iterdir() if (p / "bin" / "python").exists()]
    return next((env / "lib").glob("python3*/site-packages"))


@pytest.mark.slow
def test_asv_builds_each_release_and_installs_torch_once(tmp_path: Path) -> None:
    history = build_history(tmp_path / "cellpose", f">={RELEASES[0]},<={RELEASES[1]}")
    assert [r.version for r in history] == list(RELEASES)
    conf_text = re.sub(r"^\s*//.*$", "", (ROOT / "asv.conf.json").read_text(), flags=re.M)
    conf_text = conf_text.replace("{conf_dir}", str(ROOT))  # asv's conf_dir is the config file's folder
    conf = json.loads(conf_text)
    conf.update(repo=str(tmp_path / "cellpose"), env_dir=str(tmp_path / "env"), benchmark_dir=str(ROOT / "benchmarks"),
                results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"))
    (tmp_path / "asv.json").write_text(json.dumps(conf))
    asv = [sys.executable, "-m", "asv", "--config", str(tmp_path / "asv.json")]
    subprocess.run([*asv, "machine", "--yes", "--machine", "envbox"], cwd=ROOT, check=True, capture_output=True)

    installed = {}
    for release in RELEASES:
        res = subprocess.run([*asv, "run", "--quick", "--machine", "envbox", "--bench", "bench_reference.track_torch",
                              f"v{release}^!"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
        assert res.returncode == 0 and "failed" not in res.stdout, res.stdout[-3000:] + res.stderr[-3000:]
        site = _site_packages(tmp_path / "env")
        [cellpose] = site.glob("cellpose-*.dist-info")
        [torch] = site.glob("torch-*.dist-info")
        installed[release] = (cellpose.name, torch.stat().st_mtime_ns, torch.stat().st_ino)
    assert installed[RELEASES[0]][0] == f"cellpose-{RELEASES[0]}.dist-info"  # setuptools_scm read the tag
    assert installed[RELEASES[1]][0] == f"cellpose-{RELEASES[1]}.dist-info"  # the next commit replaced it
    assert installed[RELEASES[0]][1:] == installed[RELEASES[1]][1:]  # torch: not reinstalled for the 2nd commit

    results = list((tmp_path / "results" / "envbox").glob("*-virtualenv-*.json"))
    assert {json.loads(p.read_text())["commit_hash"] for p in results} == {r.commit for r in history}
    for p in results:
        res = json.loads(p.read_text())["results"]
        assert res["bench_reference.track_torch_version"][0] == [2.13]  # which torch measured them
