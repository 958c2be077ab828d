"""The command line, in process: exit statuses, --json, and nothing half-written."""

import io
import json

import numpy as np
import onnx
import pytest

from tvm_intermittent.cli import main
from tvm_intermittent.cli.environment import Environment

import onnx_models


def run_cli(*argv):
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), show_progress=False)
    status = main(list(argv), env)
    return status, env.stdout.getvalue(), env.stderr.getvalue()


def test_boards_json():
    status, out, _ = run_cli("boards", "--json")
    assert status == 0
    names = {b["name"] for b in json.loads(out)["boards"]}
    assert "msp430fr5994" in names


def test_bad_usage_and_bad_board_exit_2(tmp_path):
    assert run_cli("compile")[0] == 2
    model, _ = onnx_models.softmax()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    status, _, err = run_cli("compile", str(path), "--board", "nope", "-o", str(tmp_path / "o"))
    assert status == 2 and "known boards" in err


def test_malformed_model_exits_2_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"garbage")
    out_dir = tmp_path / "out"
    status, _, err = run_cli("compile", str(path), "-o", str(out_dir))
    assert status == 2 and "error:" in err
    assert not out_dir.exists()
    assert list(tmp_path.iterdir()) == [path]


def test_compile_refuses_a_non_empty_directory_without_force(tmp_path):
    model, _ = onnx_models.softmax()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    status, _, err = run_cli("compile", str(path), "-o", str(out_dir))
    assert status == 2 and "--force" in err
    assert (out_dir / "keep.txt").read_text() == "mine"
    status, out, _ = run_cli("compile", str(path), "-o", str(out_dir), "--force", "--json")
    assert status == 0 and json.loads(out)["arena_bytes"] > 0
    assert not (out_dir / "keep.txt").exists() and (out_dir / "model" / "model.c").is_file()


def test_wrong_input_shape_exits_2(tmp_path):
    model, _ = onnx_models.softmax()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    np.save(tmp_path / "x.npy", np.zeros((2, 2), np.float32))
    status, _, err = run_cli("run", str(path), "--input", str(tmp_path / "x.npy"), "--host")
    assert status == 2 and "float32 [3, 10]" in err


@pytest.mark.qemu
def test_compile_then_run_with_check_and_json(tmp_path):
    model, inputs = onnx_models.small_cnn()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    np.save(tmp_path / "x.npy", inputs[0])
    assert run_cli("compile", str(path), "-o", str(tmp_path / "p"))[0] == 0
    status, out, _ = run_cli("run", str(tmp_path / "p"), "--input", str(tmp_path / "x.npy"),
                             "--output", str(tmp_path / "y.npy"), "--check", "--json")
    report = json.loads(out)
    assert status == 0 and report["check"]["match"] is True
    assert report["instructions_model"] > 0
    saved = np.load(tmp_path / "y.npy")
    assert saved.shape == (1, 10) and np.allclose(saved, report["outputs"][0])


@pytest.mark.qemu
def test_several_inputs_through_npz(tmp_path):
    model, inputs = onnx_models.concat()
    path = tmp_path / "cat.onnx"
    onnx.save(model, path)
    np.savez(tmp_path / "x.npz", a=inputs[0], b=inputs[1])
    status, out, _ = run_cli("run", str(path), "--input", str(tmp_path / "x.npz"), "--check",
                             "--json")
    assert status == 0 and json.loads(out)["check"]["match"]
