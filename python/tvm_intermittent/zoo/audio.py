"""Audio inputs for the zoo: speech clips from the wheel, a synthetic machine, and their features.

Speech
    The ``silabs-mltk`` wheel ships no ``.wav`` file, but its audio-frontend tests embed TFLM's
    two one-second speech clips, "yes" and "no" (16 kHz, int16; TFLM's
    ``yes_1000ms_sample_data.cc`` and ``no_1000ms_sample_data.cc``), as Python lists in
    ``mltk/core/preprocess/audio/audio_feature_generator/tests/data/{yes,no}_data.py``, next to
    the int8 features TFLM computes from them. We read those lists with :mod:`ast` (the files are
    never imported or executed). Further samples are the same clips shifted in time by up to
    ±100 ms, scaled by ±6 dB and mixed with white noise at 30 dB SNR, as the models' training
    augmentation does; every variant says so in its label.

Features
    micro_speech: TFLM's frontend (30 ms window, 20 ms step, 40 channels 125-7500 Hz, noise
    reduction, PCAN, log) mapped to int8 as TFLM's ``micro_features_generator`` does; the model's
    input is int8 with scale 1 and zero point 0, so these are its input values as they are.

    kws: the zoo's MLPerf Tiny DS-CNN is Silicon Labs' retraining, not the MLPerf Tiny
    reference file. Its input is float32 ``[1, 50, 10, 1]`` in 0-255 (its first QUANTIZE op maps
    that to int8), trained on spectrogram images made with TensorFlow's microfrontend op (30 ms
    window, 20 ms step, 10 channels up to 4 kHz) rather than the reference's MFCCs. The image
    encoding is not published; we use the op's defaults (noise reduction on, PCAN off), TFLM's
    256/666 scaling without the -128 offset, and 320 samples of trailing silence to make the
    50th frame. Among the variants we tried this is the one under which TFLM classifies both
    clips correctly (the "no" clip at about 0.6 probability, with "go" next). It is not the
    exact training encoding: the model's QUANTIZE was calibrated on inputs up to 224.7, and
    the loudest bins lie above that and are clamped to 127 (20-27 % of the features of the
    "yes" clips, 9-11 % of the "no" clips).

Machine sound (anomaly detection)
    A toy-car-like recording is synthesized at 16 kHz: a motor hum whose fundamental wanders
    by 1 % around 93 Hz, 24 harmonics falling off at 6 dB per octave with a 4 Hz rotation
    modulation, a gear-mesh tone at 1.33 kHz, and lightly low-passed white noise for the
    airflow. Log-mel features follow the MLPerf Tiny / DCASE 2020 reference: power spectrogram
    with n_fft 1024, hop 512 and a Hann window, 128 Slaney mel bands from 0 Hz to 8 kHz,
    ``10 * log10(mel + eps)``, 5 consecutive frames. The zoo's autoencoder is Silicon Labs'
    retraining on 48 kHz ToyADMOS spectrograms stored as 8-bit images, an encoding they do not
    publish; we map dB to pixels as ``2 * (dB + 80)``, which puts these features (-45 to
    +23 dB) in the 70-206 range the autoencoder reconstructs best. The values are in range and
    not saturated, but this is not the exact training distribution: the reconstruction error
    (673 to 808 on the first eight samples) is well above the published scores for real
    normal clips (about 50 to 150), so do not use these samples to judge the detector, only
    to exercise the network.
"""

import ast

import numpy as np

from ..errors import ModelError
from .micro_frontend import FrontendConfig, MicroFrontend

SAMPLE_RATE = 16000

#: Frontend of TFLM's micro_speech (and of the model's training in the zoo's archive).
MICRO_SPEECH_FRONTEND = FrontendConfig()
#: TensorFlow microfrontend op defaults with the KWS model's window and band settings.
KWS_FRONTEND = FrontendConfig(num_channels=10, upper_hz=4000.0, pcan=False)

# dB -> 8-bit pixel map for the anomaly-detection input; see the module docstring.
_AD_PIXELS_PER_DB = 2.0
_AD_DB_AT_ZERO = -80.0


def parse_clip(source, variable):
    """Read the int16 samples assigned to ``variable`` in a Python source file, without running it.

    Parameters
    ----------
    source : str
        Python source text with a top-level ``variable = [ ... ]`` list of integers.
    variable : str
        Name of the list.
    """
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == variable for t in node.targets
        ):
            values = np.asarray(ast.literal_eval(node.value), dtype=np.int64)
            if values.ndim != 1 or values.min() < -32768 or values.max() > 32767:
                raise ModelError(f"{variable} is not a list of int16 samples")
            return values.astype(np.int16)
    raise ModelError(f"no list named {variable} in the clip file")


def augment(pcm, rng, shift_ms=100, gain_db=6.0, snr_db=30.0):
    """A training-style variant of a clip: time shift, gain, added white noise.

    Returns the new int16 clip and a short description of what was done.
    """
    x = pcm.astype(np.float64)
    shift = int(rng.integers(-shift_ms, shift_ms + 1) * SAMPLE_RATE // 1000)
    x = np.roll(x, shift)
    if shift > 0:
        x[:shift] = 0.0
    elif shift < 0:
        x[shift:] = 0.0
    gain = float(rng.uniform(-gain_db, gain_db))
    x *= 10.0 ** (gain / 20.0)
    noise = rng.standard_normal(len(x))
    noise *= np.sqrt(np.mean(x**2) / 10.0 ** (snr_db / 10.0))
    x = np.clip(np.round(x + noise), -32768, 32767).astype(np.int16)
    shift_ms = shift * 1000 // SAMPLE_RATE
    return x, f"shifted {shift_ms:+d} ms, {gain:+.1f} dB, noise at {snr_db:g} dB SNR"


def micro_speech_features(pcm):
    """int8 ``[49, 40]`` features of a one-second clip, as TFLM's micro_speech computes them."""
    return MicroFrontend.to_int8(MicroFrontend(MICRO_SPEECH_FRONTEND).uint16_features(pcm))


def kws_features(pcm):
    """float32 ``[50, 10]`` features in 0-255 for the zoo's DS-CNN keyword spotter."""
    padded = np.concatenate([np.asarray(pcm, dtype=np.int16), np.zeros(320, dtype=np.int16)])
    return MicroFrontend.to_uint8_range(MicroFrontend(KWS_FRONTEND).uint16_features(padded))


def machine_sound(rng, seconds=2.0):
    """Synthesize a toy-car-like motor recording, float in [-0.5, 0.5]; see the module docstring."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    # Supply ripple and load make the motor speed wander by about 1 %.
    wander = 1.0 + 0.01 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(93.0 * wander) / SAMPLE_RATE
    rotation = 1.0 + 0.2 * np.sin(2 * np.pi * 4.0 * t)
    x = np.zeros_like(t)
    for k in range(1, 25):
        x += rotation * np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k
    x += 0.15 * (1 + 0.3 * np.sin(2 * np.pi * 6.0 * t)) * np.sin(2 * np.pi * 1330.0 * t)
    white = rng.standard_normal(len(t) + 1)
    x += 0.05 * (0.6 * white[1:] + 0.4 * white[:-1])
    return x / np.max(np.abs(x)) * 0.5


def _mel_filterbank(n_fft, n_mels, sample_rate):
    """Slaney-style mel filterbank (area-normalized triangles), the librosa default."""

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        linear = f / (200.0 / 3)
        log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log_part, linear)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        linear = m * (200.0 / 3)
        log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
        return np.where(m >= 15.0, log_part, linear)

    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    lower = (bins[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - bins[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def log_mel_db(x, n_fft=1024, hop=512, n_mels=128):
    """``10 * log10`` mel power spectrogram ``[frames, n_mels]``, centered frames as librosa."""
    padded = np.pad(x, n_fft // 2, mode="reflect")
    count = 1 + (len(padded) - n_fft) // hop
    frames = padded[hop * np.arange(count)[:, None] + np.arange(n_fft)]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    mel = power @ _mel_filterbank(n_fft, n_mels, SAMPLE_RATE).T
    return 10.0 * np.log10(mel + np.finfo(np.float64).eps)


def ad_features(x, start_frame):
    """float32 ``[5, 128]`` autoencoder input: 5 log-mel frames mapped to 8-bit pixel values."""
    db = log_mel_db(x)[start_frame:start_frame + 5]
    return np.clip((db - _AD_DB_AT_ZERO) * _AD_PIXELS_PER_DB, 0.0, 255.0).astype(np.float32)
