"""Teacher depth from an ONNX model that the test builds: depth = min-max of mean intensity."""

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from fgbg.composing.build import compose_dataset
from fgbg.core.config import ComposeConfig, ConfigError, TeacherConfig, from_dict
from fgbg.dataset.stats import dataset_stats
from fgbg.dataset.store import ComposedStore
from tests.conftest import TINY_COMPOSE
from tests.test_store import _same_files


@pytest.fixture(scope="module")
def mean_model(tmp_path_factory):
    """N, 3, H, W -> N, 1, H, W: the mean over channels (a 'depth' that is brightness)."""
    node = helper.make_node("ReduceMean", ["image"], ["depth"], axes=[1], keepdims=1)
    graph = helper.make_graph(
        [node], "mean_depth",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, ["N", 1, "H", "W"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path_factory.mktemp("onnx") / "mean.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("output", ["depth", "inverse_depth"])
def test_teacher_depth_follows_the_documented_rule(tiny_data, mean_model, tmp_path, output):
    teacher = TeacherConfig(model=str(mean_model), output=output, input_size=0, mean=(0, 0, 0), std=(1, 1, 1), batch=4)
    cfg = dataclasses.replace(TINY_COMPOSE, depth="teacher", teacher=teacher)
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "composed", cfg=cfg)
    ds = ComposedStore(tmp_path / "composed")
    for i in (0, 13, len(ds) - 1):
        _, fg_bg, _, depth = ds.read(i)
        v = fg_bg.astype(np.float32).mean(axis=2) / 255
        v = (v - v.min()) / (v.max() - v.min())
        expected = v if output == "depth" else 1 - v
        assert np.abs(depth - expected).max() < 1e-4  # 16-bit storage and float32 rounding
    stats = dataset_stats(ds)
    depths = np.stack([ds.read(i)[3] for i in range(len(ds))]).astype(np.float64)
    assert stats["depth"]["mean"][0] == pytest.approx(depths.mean(), abs=1e-9)
    assert stats["depth"]["std"][0] == pytest.approx(depths.std(), abs=1e-9)


def test_teacher_needs_a_model_path_and_the_file(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="compose.teacher.model"):
        from_dict(ComposeConfig, {"depth": "teacher"}, "compose")
    cfg = dataclasses.replace(TINY_COMPOSE, depth="teacher", teacher=TeacherConfig(model=str(tmp_path / "no.onnx")))
    with pytest.raises(FileNotFoundError, match="no such file"):
        compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "composed", cfg=cfg)


def test_one_onnx_session_serves_every_shard(tiny_data, mean_model, tmp_path, monkeypatch):
    import fgbg.composing.teacher

    made = []
    real = fgbg.composing.teacher.Teacher

    def counting(*args, **kwargs):
        made.append(1)
        return real(*args, **kwargs)

    import fgbg.composing.shard

    monkeypatch.setattr(fgbg.composing.teacher, "Teacher", counting)
    monkeypatch.setattr(fgbg.composing.shard, "_TEACHERS", {})  # as in a fresh process
    teacher = TeacherConfig(model=str(mean_model), input_size=0, mean=(0, 0, 0), std=(1, 1, 1), batch=4)
    cfg = dataclasses.replace(TINY_COMPOSE, depth="teacher", teacher=teacher, shard_size=5)
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "composed", cfg=cfg)
    assert len(ComposedStore(tmp_path / "composed").index) > 3 * 5 and len(made) == 1


def test_a_rerun_with_another_model_at_the_same_path_starts_afresh(tiny_data, mean_model, tmp_path, monkeypatch):
    """Shards made by the old model before a kill are not kept beside the new model's."""
    import fgbg.composing.build as build

    model = tmp_path / "teacher.onnx"
    teacher = TeacherConfig(model=str(model), input_size=0, mean=(0, 0, 0), std=(1, 1, 1), batch=4)
    cfg = dataclasses.replace(TINY_COMPOSE, depth="teacher", teacher=teacher)
    real = build.make_shard
    calls = []

    def dies_on_third(k, job):
        calls.append(k)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if killed mid-run
        return real(k, job)

    _negated_model(mean_model, model)  # the old model: its depth is the new one's, inverted
    monkeypatch.setattr(build, "make_shard", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "composed", cfg=cfg)
    monkeypatch.setattr(build, "make_shard", real)
    model.write_bytes(mean_model.read_bytes())
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "composed", cfg=cfg)
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "fresh", cfg=cfg)
    assert calls[:2] == [0, 1]  # two shards were made by the old model
    _same_files(tmp_path / "fresh", tmp_path / "composed")


def _negated_model(mean_model, path) -> None:
    """The mean model with its output negated: after min-max, 1 - the mean model's depth."""
    model = onnx.load(mean_model)
    model.graph.node[0].output[0] = "mean"
    model.graph.node.append(helper.make_node("Neg", ["mean"], ["depth"]))
    onnx.save(model, path)
