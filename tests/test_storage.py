"""Shards straight to shared storage: `--out` as an fsspec URL, the workers writing their own shards,
and who writes by default; the bytes equal a one-process run's, a kill resumes, and storage that the
workers do not share is one clear error."""

import dataclasses
import re
from pathlib import Path

import fsspec
import pytest

import fgbg.composing.build as build
from fgbg.composing.build import choose_writer, compose_dataset, make_shard
from fgbg.composing.storage import Folder
from fgbg.core.errors import InputError
from tests.conftest import TINY_COMPOSE
from tests.test_store import _same_files


def _same_files_at(local, url: str) -> None:
    """The files under `url` are those of the local folder `local`, byte for byte."""
    fs, root = fsspec.core.url_to_fs(url)
    found = sorted(p[len(root) + 1:] for p in fs.find(root))
    assert found == sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file())
    for rel in found:
        assert fs.cat_file(f"{root}/{rel}") == (local / rel).read_bytes(), rel


@pytest.fixture
def memory_url(request):
    """A fresh folder in fsspec's in-memory filesystem (this process only), removed afterwards."""
    folder = Folder(f"memory://fgbg-{re.sub(r'[^A-Za-z0-9_-]', '_', request.node.name)}")
    yield f"{folder.location}/composed"
    folder.remove()


@pytest.mark.parametrize(("write", "out", "workers", "scheduler", "writer"), [
    ("auto", "dataset/composed", 2, None, "workers"),  # a LocalCluster shares this machine's disk
    ("auto", "dataset/composed", 1, "tcp://h:8786", "client"),  # a plain path may be no other machine's
    ("auto", "s3://bucket/composed", 1, "tcp://h:8786", "workers"),  # a URL names storage for all
    ("auto", "file:///mnt/nfs/composed", 2, "tcp://h:8786", "workers"),
    ("client", "dataset/composed", 2, None, "client"),
    ("workers", "dataset/composed", 1, "tcp://h:8786", "workers"),
    ("workers", "dataset/composed", 1, None, "client"),  # in this process: it writes itself
])
def test_who_writes_the_shards(write, out, workers, scheduler, writer):
    assert choose_writer(write, out, workers, scheduler) == writer


def test_a_relative_path_reaches_a_worker_in_another_folder_as_the_same_folder(tmp_path, monkeypatch):
    """A worker's working folder is not the client's: the Folder it unpickles names the client's folder."""
    import pickle

    monkeypatch.chdir(tmp_path)
    sent = pickle.dumps(Folder("dataset/composed"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert pickle.loads(sent).root == str(tmp_path / "dataset" / "composed")


def test_an_unknown_writer_names_the_choices():
    with pytest.raises(InputError, match=r"^--write 'worker': not a way to write shards; use one of auto, client, "
                                         r"workers$"):
        choose_writer("worker", "dataset/composed", 2, None)


def test_workers_write_their_shards_with_the_bytes_of_one_process(tiny_data, tiny_dataset, tmp_path, monkeypatch):
    """Two local workers write into a file:// URL; this process writes no shard (its writer fails if called)."""
    def client_must_not_write(*args):
        raise AssertionError("the client wrote a shard")

    monkeypatch.setattr(build, "_write_shard", client_must_not_write)  # this process's only: the workers import their own
    out = tmp_path / "composed"
    compose_dataset(data_dir=tiny_data, out_dir=f"file://{out}", cfg=dataclasses.replace(TINY_COMPOSE, workers=2),
                    write="workers")
    _same_files(tiny_dataset, out)
    assert not (tmp_path / "composed.partial").exists()


def test_an_fsspec_url_holds_the_bytes_of_a_local_folder(tiny_data, tiny_dataset, memory_url):
    """Through fsspec's in-memory filesystem: every step (plan, shards, rows, index, meta.json, rename) goes
    through fsspec, none through local paths."""
    compose_dataset(data_dir=tiny_data, out_dir=memory_url, cfg=TINY_COMPOSE)
    _same_files_at(tiny_dataset, memory_url)


def test_a_killed_run_on_a_url_resumes_with_the_same_bytes(tiny_data, tiny_dataset, memory_url, monkeypatch):
    """Killed at the third shard, with a temporary file of a killed write left behind: the rerun deletes it,
    makes only the shards not done, and the bytes are those of an unbroken run."""
    calls = []

    def dies_on_third(k, job):
        calls.append(k)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return make_shard(k, job)

    monkeypatch.setattr(build, "make_shard", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        compose_dataset(data_dir=tiny_data, out_dir=memory_url, cfg=TINY_COMPOSE)
    work = Folder(memory_url)  # at a URL the shards go straight into <out>: no rename, which would copy them
    assert sorted(work.fs.ls(work.path("shards"), detail=False)) == [work.path("shards/00000.bin"),
                                                                   work.path("shards/00001.bin")]
    for rel in (".index.parquet.dead.tmp", "shards/.00002.bin.dead.tmp", "rows/.00002.parquet.dead.tmp"):
        work.fs.pipe_file(work.path(rel), b"what a killed write left")
    remade = []
    monkeypatch.setattr(build, "make_shard", lambda k, job: remade.append(k) or make_shard(k, job))
    compose_dataset(data_dir=tiny_data, out_dir=memory_url, cfg=TINY_COMPOSE)
    assert remade == [2, 3, 4]
    _same_files_at(tiny_dataset, memory_url)


def test_storage_the_workers_do_not_share_is_one_clear_error(tiny_data, memory_url):
    """Each worker process has its own in-memory filesystem: what they write, this process never sees."""
    with pytest.raises(InputError) as caught:
        compose_dataset(data_dir=tiny_data, out_dir=memory_url, cfg=dataclasses.replace(TINY_COMPOSE, workers=2))
    assert str(caught.value).startswith(f"{memory_url}: a worker wrote shard ")
    assert str(caught.value).endswith(", but this process does not see it, so that storage is not shared with the "
                                      "workers; give --out as a path every machine mounts or as a URL of shared "
                                      "storage (s3://..., gcs://...), or let this process write the shards "
                                      "(--write client)")


@pytest.mark.parametrize(("url", "message"), [
    ("nosuchproto://x/composed", r"^--out nosuchproto://x/composed: Protocol not known: nosuchproto; give a local "
                                 r"path or an fsspec URL \(s3://, gcs://, file://, \.\.\.\)$"),
    ("s3://bucket/composed", r"^--out s3://bucket/composed: .*s3fs.*; install it in this environment and on every "
                             r"worker$"),
])
def test_a_url_fsspec_cannot_open_names_the_fix(tiny_data, tmp_path, url, message):
    with pytest.raises(InputError, match=message):
        compose_dataset(data_dir=tiny_data, out_dir=url, cfg=TINY_COMPOSE)


def test_a_write_at_a_url_is_whole_or_absent(memory_url, monkeypatch):
    """Killed between the temporary file and the move into place: the target is not there, nor the temporary."""
    folder = Folder(memory_url)
    folder.makedirs("shards")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(folder.fs, "mv", killed)
    with pytest.raises(KeyboardInterrupt):
        folder.write("shards/00000.bin", b"a shard")
    assert folder.fs.ls(folder.path("shards"), detail=False) == []


@pytest.mark.parametrize("out", ["", "  ", "dataset/run[1]", "dataset/run?", "s3://bucket/*"])
def test_an_out_fsspec_would_read_as_a_pattern_is_refused(tiny_data, out):
    with pytest.raises(InputError, match=r"^--out '.*': give a folder's path or URL, without any of \[\]\?\* "
                                         r"\(fsspec reads them as a pattern\)$"):
        compose_dataset(data_dir=tiny_data, out_dir=out, cfg=TINY_COMPOSE)


def test_an_out_that_composing_would_delete_or_cannot_hold_is_refused(tiny_data, tmp_path, monkeypatch):
    """The sources' folder, a folder above it, the working folder, a file: one error each, nothing deleted."""
    import shutil

    data = tmp_path / "project" / "data"
    shutil.copytree(tiny_data, data)
    before = sorted(p for p in data.rglob("*"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    (tmp_path / "work" / "notes.txt").write_text("mine")
    for out, what in ((str(data), "the sources"), (str(tmp_path), "the sources"), ("../project/data", "the sources"),
                      (".", "the working folder"), (str(tmp_path / "work"), "the working folder")):
        with pytest.raises(InputError, match=rf"^--out {re.escape(out)}: composing there would delete {what}"):
            compose_dataset(data_dir=data, out_dir=out, cfg=TINY_COMPOSE)
    with pytest.raises(InputError, match=r"^--out notes.txt: is a file; give the path of a folder to compose into$"):
        compose_dataset(data_dir=data, out_dir="notes.txt", cfg=TINY_COMPOSE)
    assert sorted(p for p in data.rglob("*")) == before and (tmp_path / "work" / "notes.txt").read_text() == "mine"


def test_storage_that_cannot_be_reached_is_one_clear_error(tiny_data):
    """An FTP server that is not there (fsspec's ftp needs no extra package): the error names --out."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(InputError, match=rf"^--out ftp://127.0.0.1:{port}/composed: cannot reach it "
                                         r"\(ConnectionRefusedError: .*\); check the URL$"):
        compose_dataset(data_dir=tiny_data, out_dir=f"ftp://127.0.0.1:{port}/composed", cfg=TINY_COMPOSE)


@pytest.mark.parametrize("where", ["local", "url"])
def test_a_folder_of_other_files_is_not_composed_over(tiny_data, tmp_path, memory_url, where):
    """Composing replaces <out>: a folder that holds something else (not a composed dataset, nor one being
    composed) is refused, and its files stay."""
    out = str(tmp_path / "mine") if where == "local" else memory_url
    folder = Folder(out)
    folder.makedirs("")
    folder.write("notes.txt", b"mine")
    with pytest.raises(InputError, match=rf"^--out {re.escape(out)}: holds files that are not a composed dataset, "
                                         r"which composing there would delete; give a new or empty folder$"):
        compose_dataset(data_dir=tiny_data, out_dir=out, cfg=TINY_COMPOSE)
    assert folder.read("notes.txt") == b"mine"


def test_the_work_folder_beside_out_is_guarded_too(tiny_data, tmp_path, monkeypatch):
    """<out>.partial is replaced as <out> is: the sources there, a user's folder or a file of that name stop it."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_data, "mine.partial")
    with pytest.raises(InputError, match=r"^--out mine: composing in its work folder mine.partial would delete the "
                                         r"sources \(--data\), "):
        compose_dataset(data_dir="mine.partial", out_dir="mine", cfg=TINY_COMPOSE)
    with pytest.raises(InputError, match=r"^--out mine: its work folder mine.partial holds files that are not a "
                                         r"composed dataset"):
        compose_dataset(data_dir=tiny_data, out_dir="mine", cfg=TINY_COMPOSE)
    Path("other.partial").write_text("a file")
    with pytest.raises(InputError, match=r"^--out other: its work folder other.partial is a file; "):
        compose_dataset(data_dir=tiny_data, out_dir="other", cfg=TINY_COMPOSE)
    assert Path("other.partial").read_text() == "a file" and Path("mine.partial", "bg").is_dir()


@pytest.mark.parametrize("meta", [b'{"name": "my thesis"}', b"not json", b'"a string"'])
def test_a_meta_json_that_is_not_a_dataset_s_does_not_make_a_folder_ours(tiny_data, tmp_path, meta):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "meta.json").write_bytes(meta)
    (tmp_path / "proj" / "thesis.tex").write_text("mine")
    with pytest.raises(InputError, match=r"holds files that are not a composed dataset"):
        compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "proj", cfg=TINY_COMPOSE)
    assert (tmp_path / "proj" / "thesis.tex").read_text() == "mine"


@pytest.mark.parametrize("suffix", ["/.", "/./", "/../composed"])
def test_an_out_spelled_with_dots_composes_into_that_folder(tiny_data, tiny_dataset, tmp_path, suffix):
    (tmp_path / "composed").mkdir()  # an empty folder is fine to compose into
    compose_dataset(data_dir=tiny_data, out_dir=f"{tmp_path / 'composed'}{suffix}", cfg=TINY_COMPOSE)
    _same_files(tiny_dataset, tmp_path / "composed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["composed"]


def test_storage_whose_backend_fails_on_first_contact_is_one_clear_error(tiny_data, memory_url, monkeypatch):
    """Each backend raises its own errors when it cannot reach its store (botocore's, aiohttp's, ...)."""
    from fsspec.implementations.memory import MemoryFileSystem

    class EndpointConnectionError(Exception):
        pass

    def unreachable(self, path, **kwargs):
        raise EndpointConnectionError('Could not connect to the endpoint URL: "http://127.0.0.1:1/"')

    monkeypatch.setattr(MemoryFileSystem, "exists", unreachable)
    with pytest.raises(InputError, match=rf"^--out {re.escape(memory_url)}: cannot reach it \(EndpointConnectionError: "
                                         r"Could not connect .*\); check the path or URL"):
        compose_dataset(data_dir=tiny_data, out_dir=memory_url, cfg=TINY_COMPOSE)


def test_a_path_below_a_file_cannot_be_written_and_says_so(tiny_data, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=rf"^--out {re.escape(str(tmp_path))}/notes.txt/sub: cannot write there "
                                         r"\(NotADirectoryError: "):
        compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "notes.txt" / "sub", cfg=TINY_COMPOSE)


def test_a_dataset_is_deleted_meta_json_last(tiny_dataset, tmp_path, monkeypatch):
    """So that a kill while an old dataset is being replaced leaves it marked as one, which a rerun may replace."""
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(tiny_dataset, copy)
    folder = Folder(str(copy))
    removed = []
    real_rm = folder.fs.rm
    monkeypatch.setattr(folder.fs, "rm", lambda path, recursive=False: removed.append(Path(path).name) or real_rm(
        path, recursive=recursive))
    folder.remove_dataset()
    assert not copy.exists() and "meta.json" in removed
    assert removed.index("meta.json") == len(removed) - 2  # then the folder itself
