"""The command line, in process: exit statuses, --json, and nothing half-written."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import tvm_intermittent
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


# ---- run refuses every option it would not honour ---------------------------------------


@pytest.fixture(scope="module")
def small_project(tmp_path_factory):
    """small_cnn compiled for tiles sized for a 2 uF capacitor (not the board's 100 uF)."""
    root = tmp_path_factory.mktemp("small")
    model, inputs = onnx_models.small_cnn()
    onnx.save(model, root / "cnn.onnx")
    np.save(root / "x.npy", inputs[0])
    status, _, err = run_cli("compile", str(root / "cnn.onnx"), "-o", str(root / "p"),
                             "--capacitor", "2uF")
    assert status == 0, err
    return root


REFUSED = [
    # (arguments after `run PROJECT`, what the message must say)
    (["--power", "exhaustive", "--window", "1:3", "--output", "y.npy"],
     "--output with --power exhaustive"),
    (["--seed", "3"], "--seed sets the seed of the random power cycles, which only --power "
                      "random uses; with --power none"),
    (["--power", "periodic", "--period", "500", "--min", "5"], "--min sets the shortest"),
    (["--power", "capacitor", "--max", "5"], "with --power capacitor it would be ignored"),
    (["--power", "random", "--period", "5"], "only --power periodic uses"),
    (["--power", "random", "--harvest", "2mW"], "only --power capacitor uses"),
    (["--power", "random", "--trace", "t.csv"], "--trace sets"),
    (["--power", "periodic", "--period", "500", "--window", "1:3"], "--window sets"),
    (["--power", "random", "--plot", "p.png"], "--plot sets"),
    (["--max-boots", "4"], "--max-boots sets"),
    (["--capacitor", "1mF"], "--capacitor with a project"),
    (["--power", "exhaustive", "--window", "1:3", "--capacitor", "1mF"],
     "--capacitor with a project"),
    (["--host", "--mode", "layer"], "drop --host or --mode"),
    (["--host", "--power", "random"], "--power random needs QEMU"),
    (["--max-lsb", "2"], "--max-lsb is the tolerance of --check"),
    (["--check", "--max-lsb", "-1"], "--max-lsb must be 0 or more"),
    (["--board", "msp430fr5994"], "compiled for board 'qemu-an386'"),
    (["--shape", "x=1,3,16,16"], "--shape fixes input shapes when a model file is compiled"),
    (["--output", "y.txt"], "name the file .npy"),
    (["--output", "missing_dir/y.npy"], "does not exist"),
    (["--power", "capacitor", "--plot", "p.bmp"], "--plot 'p.bmp'"),
    (["--timeout", "0"], "--timeout must be a positive number"),
    (["--no-such-option"], "unrecognized arguments: --no-such-option"),
]


@pytest.mark.parametrize("extra,message", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_run_refuses_options_it_would_ignore(small_project, extra, message, monkeypatch):
    monkeypatch.chdir(small_project)
    before = sorted(p.name for p in small_project.iterdir())
    status, out, err = run_cli("run", "p", "--input", "x.npy", *extra)
    assert status == 2, err
    assert message in err and "Traceback" not in err
    assert out == ""
    assert sorted(p.name for p in small_project.iterdir()) == before  # nothing written


def test_run_lists_every_refused_option_at_once(small_project):
    status, _, err = run_cli("run", str(small_project / "p"), "--seed", "1", "--period", "9",
                             "--harvest", "1mW")
    assert status == 2
    assert err.count("it would be ignored") == 3


def test_refusal_with_json_puts_the_error_on_stdout(small_project):
    status, out, err = run_cli("run", str(small_project / "p"), "--seed", "1", "--json")
    assert status == 2 and "--seed" in err
    error = json.loads(out)["error"]
    assert error["exit_status"] == 2 and error["kind"] == "InputError"
    assert "--seed" in error["message"]


def test_usage_errors_go_to_the_environment_stderr(capsys):
    status, out, err = run_cli("run", "--json")
    assert status == 2
    assert "the following arguments are required: target" in err
    assert json.loads(out)["error"]["kind"] == "UsageError"
    assert capsys.readouterr().err == ""  # not printed by argparse behind our back


def test_run_model_file_honours_shape_and_capacitor(tmp_path):
    """--shape and --capacitor shape the compilation when TARGET is a model file: a
    symbolic batch dimension is fixed, and the host run takes an input of that shape."""
    model, inputs = onnx_models.softmax()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    status, _, err = run_cli("run", str(path), "--host")
    assert status == 2 and "--shape x=1,..." in err
    np.save(tmp_path / "x.npy", inputs[0])
    status, out, err = run_cli("run", str(path), "--host", "--shape", "x=3,10", "--input",
                               str(tmp_path / "x.npy"), "--capacitor", "2uF", "--json",
                               "--check")
    assert status == 0, err
    assert json.loads(out)["check"]["match"] is True


@pytest.mark.qemu
def test_random_power_defaults_to_the_compiled_capacitor(small_project):
    """`run --power random` draws power cycles from half to all of the budget the tiles
    were sized for (2 uF here), not the board's default capacitor (100 uF, 50 times more:
    no failure would ever happen in this model's 0.3 M instructions)."""
    manifest = json.loads((small_project / "p" / "model.json").read_text())
    board = json.loads((small_project / "p" / "model.json").read_text())["board_profile"]
    assert manifest["capacitor_f"] == 2e-6 and board["capacitor_f"] == 1e-4
    budget = manifest["power_cycle_budget"]
    status, out, err = run_cli("run", str(small_project / "p"), "--input",
                               str(small_project / "x.npy"), "--power", "random", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["schedule"] == {"kind": "random", "seed": 0, "min": budget // 2,
                                  "max": budget}
    assert report["failures"] > 5 and report["outputs_match"]
    # A model file compiled by `run --capacitor` gets the same tiles and power cycles.
    status, out, err = run_cli("run", str(small_project / "cnn.onnx"), "--input",
                               str(small_project / "x.npy"), "--power", "random",
                               "--capacitor", "2uF", "--json")
    assert status == 0, err
    assert json.loads(out)["schedule"]["max"] == budget


@pytest.mark.qemu
def test_capacitor_power_defaults_to_the_compiled_capacitor(small_project):
    status, out, err = run_cli("run", str(small_project / "p"), "--input",
                               str(small_project / "x.npy"), "--power", "capacitor", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["schedule"]["capacitor_f"] == 2e-6
    assert report["failures"] > 5 and report["outputs_match"]


@pytest.mark.qemu
def test_exhaustive_honours_check(small_project):
    """--check with --power exhaustive compares the uninterrupted run with onnxruntime."""
    status, out, err = run_cli("run", str(small_project / "p"), "--input",
                               str(small_project / "x.npy"), "--power", "exhaustive",
                               "--window", "2000:2003", "--check", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["runs"] == 3 and report["all_match"]
    assert report["check"]["match"] is True


def test_a_pass_module_imported_before_tvm_still_registers_the_backend():
    """TVM's import loads this package's backend entry point, which imports the pipeline: a
    user who imports one of the passes before TVM must still get the target tags, without
    the autoload failing on a circular import (it did, with only a warning)."""
    code = ("import tvm_intermittent.transform.depthwise_kernels\n"
            "import tvm\n"
            "print(tvm.target.Target('intermittent/qemu-an386').kind.name)\n")
    env = {**os.environ,
           "PYTHONPATH": str(Path(tvm_intermittent.__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, check=False, timeout=300)
    assert "Failed to autoload" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "c"
