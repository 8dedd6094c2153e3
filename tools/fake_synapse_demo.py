"""Show ``cpbench fetch`` end to end against the local fake Synapse (tests/fetch/fake_synapse.py).

Runs the real CLI (a subprocess per command, real synapseclient) and prints a transcript: dry run,
download, nothing-to-do, an interrupted download (Ctrl-C) and its resumption, the parallel
multi-part path, and each error message. The Synapse ids are the fake server's, not real ones;
the files are a few MB of deterministic bytes standing in for the challenge images.

    python tools/fake_synapse_demo.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fetch"))

from fake_synapse import DEFAULT_TOKEN, FakeFile, FakeSynapse, payload  # noqa: E402

MiB = 2**20
CLI_CODE = (
    "import sys; from cpbench import cli; m = 'cpbench.fetch.cli'; "
    "cli.COMMAND_MODULES += () if m in cli.COMMAND_MODULES else (m,); sys.exit(cli.main(sys.argv[1:]))"
)


def files(**faults: dict) -> list[FakeFile]:
    specs = [("exemplar-001.ome.tif", 3_000_000, "syn90000001", "1001"),
             ("LUNG-1-LN_40X.ome.tif", 12 * MiB, "syn90000002", "1002"),
             ("WD-76845-097.ome.tif", 10 * MiB + 7, "syn90000003", "1003")]
    out = []
    for i, (name, size, syn_id, fh) in enumerate(specs):
        f = FakeFile(name, payload(size, seed=i + 1), syn_id, fh)
        for k, v in faults.get(name, {}).items():
            setattr(f, k, v)
        out.append(f)
    return out


def clean(text: str) -> str:
    """Progress bars redraw with carriage returns; keep what a terminal would show at the end."""
    lines = []
    for line in text.replace("\x1b[A", "").splitlines():
        parts = [p for p in line.split("\r") if p.strip()]
        if parts:
            lines.append(parts[-1].rstrip())
    return "\n".join(lines)


def show(title: str, args: list[str], env: dict[str, str], *, interrupt_when=None) -> None:
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"\n### {title}\n$ cpbench fetch {shown}")
    proc = subprocess.Popen([sys.executable, "-c", CLI_CODE, "fetch", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if interrupt_when is not None:
        for _ in range(600):
            if interrupt_when() or proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        print("[Ctrl-C pressed while the transfer was running]")
    out, _ = proc.communicate(timeout=120)
    print(clean(out))
    print(f"[exit status {proc.returncode}]")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cpbench-demo-") as tmp_s:
        tmp = Path(tmp_s)
        dest = tmp / "data"
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("SYNAPSE_")}
        env = {**base_env, "SYNAPSE_AUTH_TOKEN": DEFAULT_TOKEN}

        def common(cfg: Path, d: Path = dest) -> list[str]:
            return ["--dest", str(d), "--synapse-config", str(cfg)]

        print(f"fake Synapse on 127.0.0.1; destination {dest}; SYNAPSE_AUTH_TOKEN is set (never shown)")
        stall = files(**{"LUNG-1-LN_40X.ome.tif": {"stall_after": 5 * MiB}})
        with FakeSynapse(stall) as fake:
            cfg = fake.write_config(tmp / "synapseConfig", cache_dir=tmp / "synapse-cache")
            show("dry run", ["all", "--dry-run", *common(cfg)], env)
            show("download", ["exemplar-001", *common(cfg)], env)
            show("again: already present and verified", ["exemplar-001", *common(cfg)], env)
            part = dest / "partial-downloads" / "LUNG-1-LN_40X.ome.tif.synapse_download_1002"
            show("interrupted download (Ctrl-C while the transfer runs)", ["LUNG-1-LN", *common(cfg)], env,
                 interrupt_when=lambda: part.is_file() and part.stat().st_size >= 4 * MiB)
            show("dry run shows the partial download", ["all", "--dry-run", *common(cfg)], env)
            fake.release.set()
            show("the same command resumes it", ["LUNG-1-LN", *common(cfg)], env)
            show("multi-part path (files over 8 MiB)", ["WD-76845-097", "--parallel", *common(cfg)], env)
            print(f"\n$ cat {dest / 'manifest.json'}  (first entry)")
            print("\n".join((dest / "manifest.json").read_text().splitlines()[:14]))

        print("\n## error messages")
        show("unknown name", ["exemplar-002", *common(tmp / "none")], env)
        with FakeSynapse(files()) as fake:
            cfg = fake.write_config(tmp / "cfg-bad", cache_dir=tmp / "synapse-cache")
            show("bad token (SYNAPSE_AUTH_TOKEN=wrong-token-...)", ["exemplar-001", *common(cfg, tmp / "d2")],
                 {**base_env, "SYNAPSE_AUTH_TOKEN": "wrong-token-0123456789"})
            show("no token, data needs a login", ["exemplar-001", *common(cfg, tmp / "d2")], base_env)
        with FakeSynapse(files(), no_access=True) as fake:
            cfg = fake.write_config(tmp / "cfg-noaccess", cache_dir=tmp / "synapse-cache")
            show("token valid, but no access", ["exemplar-001", *common(cfg, tmp / "d2")], env)
        with FakeSynapse(files()[:2]) as fake:
            cfg = fake.write_config(tmp / "cfg-missing", cache_dir=tmp / "synapse-cache")
            show("file missing from the folder", ["all", *common(cfg, tmp / "d2")], env)
        with FakeSynapse(files(**{"LUNG-1-LN_40X.ome.tif": {"corrupt": True}})) as fake:
            cfg = fake.write_config(tmp / "cfg-md5", cache_dir=tmp / "synapse-cache")
            show("MD5 mismatch", ["LUNG-1-LN", *common(cfg, tmp / "d2")], env)
        with FakeSynapse(files(**{"WD-76845-097.ome.tif": {"size": 10**15}})) as fake:
            cfg = fake.write_config(tmp / "cfg-disk", cache_dir=tmp / "synapse-cache")
            show("not enough disk (Synapse reports 1 PB)", ["WD-76845-097", *common(cfg, tmp / "d2")], env)
            (tmp / "a-file").write_text("x")
            show("destination not writable", ["exemplar-001", *common(cfg, tmp / "a-file" / "data")], env)
        cfg = tmp / "cfg-down"
        cfg.write_text("[endpoints]\nrepoEndpoint = http://127.0.0.1:9/repo/v1\nauthEndpoint = http://127.0.0.1:9/auth/v1\n"
                       "fileHandleEndpoint = http://127.0.0.1:9/file/v1\nportalEndpoint = http://127.0.0.1:9/\n")
        show("network unreachable (nothing listens on port 9)", ["exemplar-001", *common(cfg, tmp / "d2")], env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
