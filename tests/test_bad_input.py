"""Bad input: malformed models and wrong input files exit 2 with a message, write nothing.

The reproducers below are each a bug a fuzz campaign found (``bench/fuzz_campaign.py``): a
traceback, or a damaged file compiled into firmware that is not the file's model. The
sample at the end runs one case of every mutation kind of ``tests/bad_inputs.py``.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from tvm_intermittent.cli import main
from tvm_intermittent.cli.environment import Environment
from tvm_intermittent.cli.tensor_files import check_output_path
from tvm_intermittent.errors import InputError

import bad_inputs
import onnx_models
import tflite_models


def run_cli(*argv):
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), show_progress=False)
    status = main(list(argv), env)
    return status, env.stdout.getvalue(), env.stderr.getvalue()


def compile_refused(tmp_path, filename, data, *extra):
    """Compile a model file that must be refused; return the error message."""
    path = tmp_path / filename
    path.write_bytes(data)
    out = tmp_path / "out"
    status, stdout, err = run_cli("compile", str(path), "-o", str(out), *extra)
    assert status == 2, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert stdout == "" and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [filename]  # no staging left over
    return err


def onnx_bytes(model) -> bytes:
    return model.SerializeToString()


# ---- reproducers: models ------------------------------------------------------------------


@pytest.mark.parametrize("elem_type,name", [(TensorProto.UNDEFINED, "UNDEFINED"), (99, "99"),
                                            (TensorProto.STRING, "STRING")])
def test_onnx_input_of_no_numeric_type(tmp_path, elem_type, name):
    """Was a KeyError traceback from onnx.helper.tensor_dtype_to_np_dtype."""
    model, _ = onnx_models.softmax()
    model.graph.input[0].type.tensor_type.elem_type = elem_type
    err = compile_refused(tmp_path, "m.onnx", onnx_bytes(model))
    assert f"graph input 'x' has element type {name}" in err and "the firmware takes" in err


def test_tflite_shape_past_int32(tmp_path):
    """Was a ValueError traceback from TVM's arithmetic (a literal beyond int32)."""
    data = bad_inputs.tflite_set(tflite_models.conv2d(depthwise=True)[0], "tensor_shape",
                                 "tensor 0 dim 2", 2**31 - 1)
    err = compile_refused(tmp_path, "m.tflite", data)
    assert "tensor 't0' (#0) has the shape [1, 9, 2147483647, 5]" in err
    assert "more than the 2,147,483,647 the generated C can index" in err


def test_onnx_axis_outside_the_rank(tmp_path):
    """Was compiled: a Softmax axis of 2^40 on a rank-2 input wrapped around silently."""
    model, _ = onnx_models.softmax()
    model.graph.node[0].attribute[0].i = 2**40
    err = compile_refused(tmp_path, "m.onnx", onnx_bytes(model))
    assert "has axis 1099511627776, outside [-2, 1] for its rank-2 input" in err


def test_onnx_nan_attribute(tmp_path):
    """Was compiled into firmware whose every output is NaN."""
    model, _ = onnx_models.gemm()
    node = model.graph.node[0]
    for attr in node.attribute:
        if attr.name == "alpha":
            node.attribute.remove(attr)
    node.attribute.append(onnx.helper.make_attribute("alpha", float("nan")))
    err = compile_refused(tmp_path, "m.onnx", onnx_bytes(model))
    assert "attribute 'alpha' = [nan]: attributes must be finite numbers" in err


def test_onnx_opset_beyond_onnx(tmp_path):
    """Was compiled with whatever the newest converter of each operator does."""
    model, _ = onnx_models.conv()
    model.opset_import[0].version = 999
    err = compile_refused(tmp_path, "m.onnx", onnx_bytes(model))
    assert "opset 999" in err and "convert_version" in err


def test_tflite_operator_code_fields_disagree(tmp_path):
    """Was compiled as AVERAGE_POOL_2D, the operator of the 8-bit field, while TFLite runs
    the larger code of the two fields (119, WHILE)."""
    data = bad_inputs.tflite_set(tflite_models.pool("AVERAGE_POOL_2D")[0], "operator_code",
                                 "operator code 0 (32-bit)", 119)
    err = compile_refused(tmp_path, "m.tflite", data)
    assert "operator code 0 is 1 in its 8-bit field but 119 in its 32-bit field" in err


def test_tflite_declared_output_shape_is_not_computed(tmp_path):
    """Was compiled with the computed shape [1, 9, 7, 6] for an output the file declares
    [1, 3, 7, 6]."""
    data = bad_inputs.tflite_set(tflite_models.conv2d()[0], "tensor_shape", "tensor 3 dim 1", 3)
    err = compile_refused(tmp_path, "m.tflite", data)
    assert "is declared [1, 3, 7, 6] but the operators compute [1, 9, 7, 6]" in err


def test_tflite_bias_of_the_wrong_type(tmp_path):
    """Was compiled: an int8 convolution with a float32 bias, which TFLite refuses."""
    data = bad_inputs.tflite_set(tflite_models.conv2d(depthwise=True)[0], "tensor_type",
                                 "tensor 2 type", 0)
    err = compile_refused(tmp_path, "m.tflite", data)
    assert "operator 0 (DEPTHWISE_CONV_2D) has a float32 bias for int8 data" in err


@pytest.mark.parametrize("kind,what,value,message", [
    ("operator_tensors", "operator 0 input 0", 10**6,
     "operator 0 input 0 is tensor 1000000, but the subgraph has 4 tensors"),
    ("tensor_buffer", "tensor 1 buffer", 10**6, "refers to buffer 1000000"),
    ("vector_length", "buffer 1 length", 1, "which takes 270 bytes, but its buffer 1 holds 1"),
    ("tensor_type", "tensor 1 type", 5, "element type 5, which is no numeric TFLite type"),
    ("tensor_shape", "tensor 0 dim 1", 0, "every dimension must be at least 1"),
])
def test_tflite_structure(tmp_path, kind, what, value, message):
    """Were tracebacks or TVM's own words ('int' object has no attribute 'ShapeLength')."""
    data = bad_inputs.tflite_set(tflite_models.conv2d()[0], kind, what, value)
    assert message in compile_refused(tmp_path, "m.tflite", data)


def test_tflite_zero_scale(tmp_path):
    data = tflite_models.fully_connected()[0]
    model = bytearray(data)
    import tflite  # pylint: disable=import-outside-toplevel

    quant = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0).Tensors(0).Quantization()
    start = quant._tab.Vector(quant._tab.Offset(8))  # the scale vector (slot 2)
    model[start:start + 4] = np.float32(0).tobytes()
    err = compile_refused(tmp_path, "m.tflite", bytes(model))
    assert "scales must be finite and positive" in err


@pytest.mark.parametrize("filename,data,message", [
    ("m.onnx", b"", "is empty"),
    ("m.tflite", b"", "is empty"),
    ("m.pb", onnx_bytes(onnx_models.softmax()[0]), "looks like an ONNX model: name it m.onnx"),
    ("m", tflite_models.softmax()[0], "looks like a TFLite model: name it m.tflite"),
    ("m.tflite", onnx_bytes(onnx_models.softmax()[0]),
     "no 'TFL3' identifier at byte 4); its content looks like an ONNX model"),
    ("m.onnx", b"not a model at all\n", "not a valid ONNX file"),
    ("m.onnx", onnx_bytes(onnx_models.small_cnn()[0])[:700], "not a valid ONNX file"),
])
def test_files_that_are_no_model(tmp_path, filename, data, message):
    assert message in compile_refused(tmp_path, filename, data)


def test_directory_named_like_a_model(tmp_path):
    """Was reported as 'does not exist'."""
    (tmp_path / "m.onnx").mkdir()
    status, _, err = run_cli("compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "o"))
    assert status == 2 and "is a directory; pass the .onnx or .tflite model file" in err


def test_onnx_graph_problems_name_the_tensor(tmp_path):
    model, _ = onnx_models.gemm()
    init = model.graph.initializer[0]
    init.raw_data = onnx.numpy_helper.to_array(init).tobytes()[:12]
    init.ClearField("float_data")
    assert "raw_data size (12 bytes) is too small" in compile_refused(
        tmp_path, "m.onnx", onnx_bytes(model))
    model, _ = onnx_models.conv()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 0
    (tmp_path / "m.onnx").unlink()
    assert "graph input 'x' has the shape [1, 4, 0, 9]" in compile_refused(
        tmp_path, "m.onnx", onnx_bytes(model))


def test_shape_option_is_checked(tmp_path):
    model, _ = onnx_models.softmax()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    data = onnx_bytes(model)
    assert "graph input 'x' has the shape [0, 10]" in compile_refused(
        tmp_path, "m.onnx", data, "--shape", "x=0,10")
    (tmp_path / "m.onnx").unlink()
    assert "--shape names ['y']" in compile_refused(tmp_path, "m.onnx", data, "--shape",
                                                    "y=1,10")


def test_unsupported_operator_is_named(tmp_path):
    model, _ = onnx_models.softmax()
    model.graph.node[0].op_type = "STFT"
    del model.graph.node[0].attribute[:]
    err = compile_refused(tmp_path, "m.onnx", onnx_bytes(model))
    assert "not supported" in err and "STFT" in err


# ---- reproducers: input files -------------------------------------------------------------


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """A float ONNX CNN and a two-input ONNX concatenation, compiled."""
    root = tmp_path_factory.mktemp("projects")
    found = {}
    for name, model in (("cnn", onnx_models.small_cnn()[0]), ("concat",
                                                              onnx_models.concat()[0])):
        onnx.save(model, root / f"{name}.onnx")
        assert run_cli("compile", str(root / f"{name}.onnx"), "-o", str(root / name))[0] == 0
        found[name] = root / name
    return found


def run_refused(tmp_path, project, filename, data, *extra):
    path = tmp_path / filename
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    status, stdout, err = run_cli("run", str(project), "--host", "--input", str(path),
                                  "--output", str(tmp_path / "y.npy"), *extra)
    assert status == 2, err
    assert err.startswith("error: ") and "Traceback" not in err and stdout == ""
    assert not (tmp_path / "y.npy").exists()
    return err


def _npy(array) -> bytes:
    stream = io.BytesIO()
    np.save(stream, array)
    return stream.getvalue()


def _npz(**arrays) -> bytes:
    stream = io.BytesIO()
    np.savez(stream, **arrays)
    return stream.getvalue()


X = np.zeros((1, 3, 16, 16), np.float32)


@pytest.mark.parametrize("filename,data,message", [
    ("x.npy", b"", "is empty; save it with np.save(path, x) where x is a float32 array of "
                   "shape [1, 3, 16, 16]"),  # was an EOFError traceback
    ("x.npy", b"1,2,3\n", "is not a .npy or .npz file"),
    ("x.npy", _npy(X)[:200], "cannot read"),
    ("x.npy", _npy(X.astype(">f4")), "has >f4 [1, 3, 16, 16]; convert it with "
                                     "x.astype(np.float32)"),
    ("x.npy", _npy(X.astype(np.float64)), "must be float32 [1, 3, 16, 16], but"),
    ("x.npy", _npy(X[0]), "has float32 [3, 16, 16]"),
    ("x.npy", _npy(np.where(np.arange(768).reshape(X.shape) == 5, np.inf, X)),
     "holds 1 NaN or infinite value(s)"),
    ("x.npy", _npy(np.full(X.shape, np.nan, np.float32)), "holds 768 NaN or infinite"),
    ("x.npy", None, "is a directory"),
    ("x.npz", _npz(x=X, y=X), "has arrays the model does not take: ['y']"),
])
def test_wrong_input_files(tmp_path, projects, filename, data, message):
    assert message in run_refused(tmp_path, projects["cnn"], filename, data)


def test_npz_names_must_be_the_inputs(tmp_path, projects):
    """Was silently fed to the inputs in the archive's order, whatever the names."""
    a, b = np.zeros((1, 2, 4, 4), np.float32), np.zeros((1, 3, 4, 4), np.float32)
    err = run_refused(tmp_path, projects["concat"], "x.npz", _npz(first=a, second=b))
    assert "lacks ['a', 'b'] and has arrays the model does not take" in err
    assert "np.savez(path, a=..., b=...)" in err
    err = run_refused(tmp_path, projects["concat"], "y.npz", _npz(a=a))
    assert "lacks ['b']" in err


@pytest.mark.host_cc
def test_npz_positional_names_are_taken_in_order(tmp_path, projects):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    b = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    path = tmp_path / "x.npz"
    np.savez(path, a, b)  # arr_0, arr_1
    status, out, err = run_cli("run", str(projects["concat"]), "--host", "--input", str(path),
                               "--output", str(tmp_path / "y.npy"), "--json")
    assert status == 0, err
    assert np.array_equal(np.load(tmp_path / "y.npy"), np.concatenate([a, b], axis=1))


def test_output_path_is_checked_before_running(tmp_path, projects):
    """Was a FileNotFoundError traceback after the run, for a missing directory."""
    np.save(tmp_path / "x.npy", X)
    status, _, err = run_cli("run", str(projects["cnn"]), "--host", "--input",
                             str(tmp_path / "x.npy"), "--output",
                             str(tmp_path / "no" / "y.npy"))
    assert status == 2 and "does not exist; create it first" in err
    # np.savez would have written y.npy.npz for several outputs named y.npy.
    with pytest.raises(InputError, match="use y.npz"):
        check_output_path(str(tmp_path / "y.npy"), [{"name": "p"}, {"name": "q"}])


# ---- a sample of the fuzz campaign ----------------------------------------------------------


def _sample():
    """The first case of every mutation kind, on one ONNX and one TFLite model."""
    cases, seen = [], set()
    onnx_cases = bad_inputs.onnx_cases(0, 1, {"small_cnn": onnx_models.small_cnn()[0]})
    tflite_cases = bad_inputs.tflite_cases(0, 1, {"conv2d": tflite_models.conv2d()[0]})
    for case in list(onnx_cases) + list(tflite_cases):
        key = (Path(case.filename).suffix, case.kind)
        if key not in seen:
            seen.add(key)
            cases.append(case)
    return cases


SAMPLE = _sample()


@pytest.mark.parametrize("case", SAMPLE, ids=[c.filename for c in SAMPLE])
def test_fuzz_sample(tmp_path, case):
    """Exit 2 with a message and nothing written, or (a mutation that left a valid model)
    a whole project: never a traceback."""
    path = case.write(tmp_path)
    out = tmp_path / "out"
    status, _, err = run_cli("compile", str(path), "-o", str(out))
    assert status in (0, 2) and "Traceback" not in err
    if status == 2:
        assert err.startswith("error: ") and len(err) > 40 and not out.exists()
    else:
        assert (out / "model.json").is_file() and (out / "model" / "model.c").is_file()


def test_through_the_console_script_with_json(tmp_path):
    """As a user runs it: a subprocess, no traceback, the error as JSON on stdout."""
    data = bad_inputs.tflite_set(tflite_models.conv2d()[0], "operator_tensors",
                                 "operator 0 input 0", -7)
    (tmp_path / "m.tflite").write_bytes(data)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "python") + os.pathsep + \
        env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "tvm_intermittent.cli", "compile", "m.tflite",
                           "-o", "out", "--json"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert "operator 0 input 0 is tensor -7" in error["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


def test_json_stays_clean_when_tvm_prints(tmp_path, capsys):
    """Was invalid JSON on stdout: TVM's ONNX importer prints the operator it failed on
    there. A group of 3 for 4 input channels passes every check before the importer's."""
    model, _ = onnx_models.conv()
    next(a for a in model.graph.node[0].attribute if a.name == "group").i = 3
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_bytes(model))
    status, out, err = run_cli("compile", str(path), "-o", str(tmp_path / "out"), "--json")
    assert status == 2 and "number of groups" in err
    assert "number of groups" in json.loads(out)["error"]["message"]
    assert "Error converting operator" not in capsys.readouterr().out  # the process's stdout


def test_onnx_group_below_one(tmp_path):
    """Was refused by TVM with words of its own (exit 2 only by luck of the wrapping)."""
    model, _ = onnx_models.conv()
    next(a for a in model.graph.node[0].attribute if a.name == "group").i = -5
    err = compile_refused(tmp_path, "m.onnx", onnx_bytes(model))
    assert "attribute 'group' = [-5]: each must be at least 1" in err


def test_tflite_output_declared_scalar(tmp_path):
    """Was compiled: a softmax output whose shape vector was emptied (a scalar) while the
    operator computes [3, 10]."""
    data = bad_inputs.tflite_set(tflite_models.softmax()[0], "vector_length",
                                 "tensor 1 shape length", 0)
    err = compile_refused(tmp_path, "m.tflite", data)
    assert "is declared [] but the operators compute [3, 10]" in err
