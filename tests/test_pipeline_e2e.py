"""End to end: the real `dvc repro`, `dvc exp run -S`, the queue, metrics and plots diff.

The project (dvc.yaml, stages, src) is copied into a temporary git repo with tiny params and
tiny generated sources, and driven with the same commands a user types.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_train import _bg_depth_rmse

pytestmark = pytest.mark.slow

TINY = {
    "epochs": 2, "batch_size": 8,
    "compose": {"bg_size": 16, "fg_size": 8, "positions": 1, "shard_size": 8},
    "model": {"width": 4, "levels": 2},
    "train": {"threads": 1, "crop": 8,  # full-height strips, as the default run trains
              "scheduler": "none"},  # the lr stays what -S set: train.json's last lr shows that it reached the optimizer
    "evaluate": {"grid_samples": 2},
}


def _merge(base: dict, over: dict) -> dict:
    return {k: _merge(base[k], over[k]) if isinstance(over.get(k), dict) else over.get(k, base[k]) for k in base}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("e2e") / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    for name in ("stages", "src", "dataset"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__", "composed", "*.json", "*.egg-info"))
    params = _merge(yaml.safe_load((ROOT / "params.yaml").read_text()), TINY)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(repo, "git", "init", "-q", "-b", "main")
    sh(repo, "git", "config", "user.email", "test@fgbg")
    sh(repo, "git", "config", "user.name", "fgbg test")
    sh(repo, "dvc", "init", "-q")
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")  # the project's: analytics off, cache links
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")  # the project's plot templates
    sh(repo, sys.executable, "-m", "fgbg.cli", "synth", "data", "--bg", "4", "--fg", "4")
    sh(repo, "dvc", "add", "-q", "data")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "tiny project")
    return repo


def tool_env() -> dict:
    """This environment with the venv's tools first on PATH, and no DVC experiment name inherited."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DVC_EXP_NAME", None)
    return env


def sh(cwd: Path, *cmd: str, timeout: int = 600) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=tool_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


def porcelain(repo: Path) -> list[str]:
    return sh(repo, "git", "status", "--porcelain", "-uall").splitlines()


def expected_link(repo: Path) -> str:
    """The link DVC makes from its cache: the first of the config's cache.type that this filesystem
    supports (hardlinks and symlinks always are here; reflinks on btrfs, xfs, APFS only)."""
    for kind in re.findall(r"[a-z]+", sh(repo, "dvc", "config", "cache.type")):  # a,b or ['a', 'b']
        if kind != "reflink" or reflinks_work(repo.parent):
            return kind
    return "copy"


def reflinks_work(folder: Path) -> bool:
    probe = folder / "reflink_probe"
    probe.write_bytes(b"probe")
    return subprocess.run(["cp", "--reflink=always", probe, f"{probe}.clone"], capture_output=True).returncode == 0


def cache_link(repo: Path, path: Path, cache: Path | None = None) -> str:
    """How `path` in the workspace is tied to its object in the DVC cache (at `cache`, else asked of DVC)."""
    digest = hashlib.md5(path.read_bytes()).hexdigest()
    cache = cache or Path(sh(repo, "dvc", "cache", "dir").strip())
    cached = cache / "files" / "md5" / digest[:2] / digest[2:]
    assert cached.is_file(), f"{path}: no object {cached} in the cache"
    if path.is_symlink():
        return "symlink" if path.resolve() == cached.resolve() else "a symlink elsewhere"
    if os.path.samefile(path, cached):
        return "hardlink"
    frag = shutil.which("filefrag") and subprocess.run(["filefrag", "-v", path], capture_output=True, text=True).stdout
    # a reflink shares its extents with the cache object (FIEMAP); without filefrag it looks like a copy
    return "reflink" if frag is None or "shared" in frag else "copy"


def test_repro_runs_every_stage_and_leaves_only_tracked_outputs(repo):
    out = sh(repo, "dvc", "repro")
    for stage in ("compose", "stats", "split", "train", "evaluate"):
        assert f"Running stage '{stage}'" in out
    ev = json.loads((repo / "metrics" / "eval.json").read_text())
    split = json.loads((repo / "dataset" / "split.json").read_text())
    assert ev["split"] == "test" and ev["samples"] == len(split["test"]) > 0
    bg_depth_rmse = _bg_depth_rmse(repo / "dataset" / "composed", split["test"])
    assert ev["baseline"]["depth"]["rmse"] == pytest.approx(bg_depth_rmse, abs=1e-12)
    assert (repo / "plots" / "samples.png").is_file() and (repo / "models" / "best.pt").is_file()
    changed = {line[3:] for line in porcelain(repo)}
    allowed = ("dvc.lock", "metrics/", "dvclive/", "plots/")
    assert changed and all(p.startswith(allowed) for p in changed), changed
    assert "dvc.yaml" not in changed  # DVCLive must not rewrite it
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "baseline run")
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "repro")
    assert porcelain(repo) == []


def test_exp_run_with_a_param_then_compare(repo):
    out = sh(repo, "dvc", "exp", "run", "-S", "lr=1e-5")  # DVC writes `lr: 1e-05`: a float in YAML 1.2 only
    assert "Running stage 'train'" in out and "Running stage 'compose'" not in out  # only what lr feeds
    assert "lr: 1e-05" in (repo / "params.yaml").read_text()
    assert json.loads((repo / "metrics" / "train.json").read_text())["lr"] == 1e-5  # it reached the optimizer
    rows = json.loads(sh(repo, "dvc", "exp", "show", "--json"))
    exps = [e for row in rows for e in (row.get("experiments") or [])]
    lrs = [r["data"]["params"]["params.yaml"]["data"]["lr"] for e in exps for r in e["revs"]]
    assert 1e-5 in lrs
    diff = sh(repo, "dvc", "metrics", "diff", "--all")
    assert "iou" in diff and "rmse" in diff
    sh(repo, "dvc", "plots", "diff", "HEAD", "-o", "plots_html")
    html = (repo / "plots_html" / "index.html").read_text()
    assert "samples.png" in html and "val_iou" in html


@contextlib.contextmanager
def workspace_links(repo: Path):
    """While experiments run: {file of dataset/composed in a queued run's temporary workspace
    (.dvc/tmp/exps/tmp*/): how it is tied to the DVC cache}. The workspaces go when the runs end."""
    cache = Path(sh(repo, "dvc", "cache", "dir").strip())
    seen: dict[str, str] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for path in (repo / ".dvc" / "tmp" / "exps").glob("tmp*/dataset/composed/**/*"):
                if str(path) not in seen and (path.is_file() or path.is_symlink()):
                    try:
                        seen[str(path)] = cache_link(repo, path, cache)
                    except (OSError, AssertionError):  # gone with its workspace, or not an object of the cache
                        pass
            stop.wait(0.1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join()


def queue_status(repo: Path, timeout: float = 600) -> dict[str, str]:
    """{experiment name: Success, Failed, ...} once nothing is queued or running."""
    deadline = time.time() + timeout
    while True:
        lines = sh(repo, "dvc", "queue", "status").splitlines()
        rows = [line.split() for line in lines[1:]]  # Task, Name, Created (two words), Status
        status = {row[1]: row[-1] for row in rows if len(row) >= 3 and row[-1] in ("Queued", "Running", "Success", "Failed")}
        if not any(s in ("Queued", "Running") for s in status.values()) or time.time() > deadline:
            return status
        time.sleep(2)


def run_queue(repo: Path, workers: int) -> dict[str, str]:
    """`dvc queue start -j N`, then queue_status once every task has ended. `queue start` returns when its
    workers end; one run in three here saw a worker stay alive after every task had ended (a DVC queue
    shutdown hang, 0 active and 0 idle workers in `dvc queue status`), so the test waits for the tasks,
    not for the workers, and then stops any worker left."""
    env = tool_env()
    start = subprocess.Popen(["dvc", "queue", "start", "-j", str(workers)], cwd=repo, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(5)  # the workers pick the tasks up
        status = queue_status(repo)
        try:
            start.wait(timeout=60)
        except subprocess.TimeoutExpired:
            subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=repo, env=env, capture_output=True, timeout=120)
    finally:
        if start.poll() is None:
            start.kill()
            start.wait()
    return status


def test_a_sweep_runs_two_at_a_time_on_linked_data_and_a_failed_run_keeps_its_log(repo):
    """What DVC users do (README, "Sweeps"): queue several values, run them two at a time. Each run
    skips compose, split and stats, links the dataset from the cache into its workspace instead
    of copying it, and shows in `dvc exp show` with its own metrics; a run that fails keeps its
    log, which `dvc queue logs NAME` prints."""
    sh(repo, "git", "checkout", "-q", "--", ".")
    lrs = {"sweep-a": 0.02, "sweep-b": 0.005}  # with the failing one, three runs for two workers
    for name, lr in lrs.items():
        sh(repo, "dvc", "exp", "run", "--queue", "-n", name, "-S", f"lr={lr}")
    sh(repo, "dvc", "exp", "run", "--queue", "-n", "sweep-bad", "-S", "lr=-1")
    with workspace_links(repo) as links:
        status = run_queue(repo, workers=2)
    assert status == {**{name: "Success" for name in lrs}, "sweep-bad": "Failed"}, status
    workspaces = {path.split("/dataset/")[0] for path in links}
    assert len(workspaces) >= 2, links  # the three runs' workspaces, less any that came and went unseen
    assert set(links.values()) == {expected_link(repo)}, links  # linked from the cache, never copied
    for name in lrs:
        log = sh(repo, "dvc", "queue", "logs", name)
        for stage in ("compose", "split", "stats"):
            assert f"Stage '{stage}' didn't change, skipping" in log, log
        assert "Running stage 'train'" in log and "Running stage 'evaluate'" in log
    failed = sh(repo, "dvc", "queue", "logs", "sweep-bad")
    assert "error: params.yaml: params: lr = -1.0 is not allowed; expected a float > 0" in failed, failed
    assert "Traceback" not in failed
    rows = json.loads(sh(repo, "dvc", "exp", "show", "--json"))
    exps = {r["name"]: r["data"] for row in rows for e in (row.get("experiments") or []) for r in e["revs"]}
    for name, lr in lrs.items():
        assert exps[name]["params"]["params.yaml"]["data"]["lr"] == lr
        assert exps[name]["metrics"]["metrics/train.json"]["data"]["lr"] == lr  # each run's own lr reached it
        assert exps[name]["metrics"]["metrics/eval.json"]["data"]["split"] == "test"
    sh(repo, "dvc", "plots", "diff", "sweep-a", "sweep-b", "-o", "exp_compare")
    html = (repo / "exp_compare" / "index.html").read_text()
    assert "sweep-a" in html and "sweep-b" in html and "val_rmse" in html


def test_share_through_a_remote_then_clone_pull_and_predict(repo, tmp_path):
    """A team's round trip: push to a directory remote, clone afresh, pull, and nothing reruns."""
    sh(repo, "git", "checkout", "-q", "--", ".")
    sh(repo, "dvc", "checkout")  # the committed baseline, through the cache's links
    assert "Data and pipelines are up to date" in sh(repo, "dvc", "status")
    best = repo / "models" / "best.pt"
    assert cache_link(repo, best) == expected_link(repo) != "copy"
    sh(repo, "dvc", "remote", "add", "-d", "store", str(tmp_path / "store"))
    sh(repo, "git", "commit", "-qam", "a directory remote")
    sh(repo, "dvc", "push")
    sh(repo, "git", "tag", "-a", "fgbg-unet@v0.1.0", "-m", "fgbg-unet v0.1.0")  # GTO reads annotated tags only
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    sh(clone, "dvc", "pull")
    assert (clone / "models" / "best.pt").read_bytes() == best.read_bytes()
    assert "Data and pipelines are up to date" in sh(clone, "dvc", "repro")
    assert sh(clone, "git", "status", "--porcelain") == ""
    from PIL import Image

    for name in ("bg", "scene"):
        Image.new("RGB", (24, 16), (90, 120, 60)).save(tmp_path / f"{name}.png")
    sh(clone, sys.executable, "-m", "fgbg.cli", "predict", str(tmp_path / "bg.png"), str(tmp_path / "scene.png"),
       "-o", str(tmp_path / "out"))
    assert Image.open(tmp_path / "out" / "scene_mask.png").size == (24, 16)
    sh(tmp_path, "dvc", "artifacts", "get", str(repo), "fgbg-unet", "--rev", "v0.1.0", "-o", str(tmp_path / "got.pt"))
    assert (tmp_path / "got.pt").read_bytes() == best.read_bytes()
