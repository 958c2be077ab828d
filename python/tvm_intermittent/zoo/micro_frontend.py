"""Numpy port of TensorFlow's audio "microfrontend", the features of TFLM's micro_speech.

TFLM's micro_speech model, and the keyword-spotting model of the zoo, were trained on the output
of ``tensorflow/lite/experimental/microfrontend``: a fixed-point pipeline run once per 30 ms
window (Hann window, 512-point real FFT, triangular mel filterbank, per-channel noise
subtraction, PCAN automatic gain control, integer log). Feeding these models any other
spectrogram (float librosa, ``tf.signal``) shifts every value a little and the classes a lot, so
this module follows the C code step by step in integer arithmetic, down to kiss_fft's
fixed-point butterflies. On TFLM's "yes" and "no" test clips it reproduces 99.9 % and 98.7 %
of the reference int8 features exactly (``tests/test_zoo.py``); the rest are loud frames where
a last-bit difference in a weak FFT bin is magnified by the log, and they do not change what
the models predict.

The ``tflite-micro`` wheel links the newer ``tflm_signal`` kernels into its interpreter, but only
as custom operators reachable from a model that uses them; it ships no Python entry point nor
such a preprocessing model, so we compute the features here instead.
"""

from dataclasses import dataclass

import numpy as np

# Fixed-point formats of the C implementation (window, filterbank, noise reduction, PCAN, log).
_WINDOW_BITS = 12
_FILTERBANK_BITS = 12
_NOISE_REDUCTION_BITS = 14
_PCAN_SNR_BITS = 12
_PCAN_OUTPUT_BITS = 6
_WIDE_DYNAMIC_BITS = 32
_LOG_SCALE_BITS = 16
_LOG_SEGMENTS_BITS = 7
_LOG_COEFF = 45426  # round(ln(2) * 2**16)

# log2(1 + f) - f in Q16 at 128 segment boundaries, plus one pad entry; the C table holds the
# same 130 numbers.
_LOG_LUT = np.append(
    np.round(
        (np.log2(1.0 + np.arange(129) / 128.0) - np.arange(129) / 128.0) * (1 << _LOG_SCALE_BITS)
    ),
    0,
).astype(np.int64)


@dataclass(frozen=True)
class FrontendConfig:
    """Parameters of the frontend; the defaults are those of TFLM's micro_speech example.

    Parameters
    ----------
    sample_rate : int
        Audio sample rate in Hz.
    window_ms, step_ms : int
        Analysis window length and hop, in milliseconds.
    num_channels : int
        Number of mel filterbank channels, the feature width.
    lower_hz, upper_hz : float
        Band edges of the filterbank.
    noise_reduction : bool
        Apply the per-channel running-minimum noise subtraction (always on in the C code; off
        here only to study its effect).
    pcan : bool
        Apply per-channel amplitude normalization (automatic gain control).
    """

    sample_rate: int = 16000
    window_ms: int = 30
    step_ms: int = 20
    num_channels: int = 40
    lower_hz: float = 125.0
    upper_hz: float = 7500.0
    noise_reduction: bool = True
    smoothing_bits: int = 10
    even_smoothing: float = 0.025
    odd_smoothing: float = 0.06
    min_signal_remaining: float = 0.05
    pcan: bool = True
    pcan_strength: float = 0.95
    pcan_offset: float = 80.0
    pcan_gain_bits: int = 21
    log_scale_shift: int = 6


def _bit_length(x):
    """``MostSignificantBit32``: the number of bits needed to write ``x`` (0 for 0)."""
    # Exact for the values we see (below 2**53): frexp's exponent is the bit length.
    return np.frexp(np.asarray(x, dtype=np.float64))[1].astype(np.int64)


def _wrap16(x):
    """Store into an ``int16_t``, wrapping like the C code does."""
    return ((np.asarray(x, dtype=np.int64) + 32768) & 0xFFFF) - 32768


def _round_q15(x):
    """kiss_fft's ``sround``: drop 15 fraction bits with rounding, keep 16 bits."""
    return _wrap16((x + (1 << 14)) >> 15)


class _FixedPointRealFft:
    """kiss_fft's ``kiss_fftr`` with ``FIXED_POINT=16``, vectorized over frames.

    The fixed-point FFT divides by the radix at every stage (so by ``n`` in total) and rounds
    after each twiddle product; both change the low bits of the energies, hence of the features.
    """

    def __init__(self, n):
        half = n // 2
        self.half = half
        phase = -2.0 * np.pi * np.arange(half) / half
        self.tw_r = np.floor(0.5 + 32767 * np.cos(phase)).astype(np.int64)
        self.tw_i = np.floor(0.5 + 32767 * np.sin(phase)).astype(np.int64)
        k = np.arange(1, half // 2 + 1)
        phase = -np.pi * (k / half + 0.5)
        self.super_r = np.floor(0.5 + 32767 * np.cos(phase)).astype(np.int64)
        self.super_i = np.floor(0.5 + 32767 * np.sin(phase)).astype(np.int64)
        self.factors = []
        m = half
        while m > 1:
            radix = 4 if m % 4 == 0 else 2
            m //= radix
            self.factors.append((radix, m))

    def __call__(self, frames):
        """Transform int16 frames ``[F, n]``; returns real and imaginary parts ``[F, n/2+1]``."""
        re, im = self._complex(frames[:, 0::2].astype(np.int64), frames[:, 1::2].astype(np.int64))
        half = self.half
        dc_r, dc_i = _round_q15(re[:, 0] * 16383), _round_q15(im[:, 0] * 16383)
        out_r = np.zeros((frames.shape[0], half + 1), dtype=np.int64)
        out_i = np.zeros_like(out_r)
        out_r[:, 0] = _wrap16(dc_r + dc_i)
        out_r[:, half] = _wrap16(dc_r - dc_i)
        k = np.arange(1, half // 2 + 1)
        fpk_r, fpk_i = _round_q15(re[:, k] * 16383), _round_q15(im[:, k] * 16383)
        fpnk_r, fpnk_i = _round_q15(re[:, half - k] * 16383), _round_q15(-im[:, half - k] * 16383)
        f1_r, f1_i = _wrap16(fpk_r + fpnk_r), _wrap16(fpk_i + fpnk_i)
        f2_r, f2_i = _wrap16(fpk_r - fpnk_r), _wrap16(fpk_i - fpnk_i)
        tw_r = _round_q15(f2_r * self.super_r - f2_i * self.super_i)
        tw_i = _round_q15(f2_r * self.super_i + f2_i * self.super_r)
        out_r[:, k] = _wrap16((f1_r + tw_r) >> 1)
        out_i[:, k] = _wrap16((f1_i + tw_i) >> 1)
        out_r[:, half - k] = _wrap16((f1_r - tw_r) >> 1)
        out_i[:, half - k] = _wrap16((tw_i - f1_i) >> 1)
        return out_r, out_i

    def _complex(self, re, im):
        return self._work(re, im, 0, 1, 0)

    def _work(self, re, im, offset, stride, stage):
        """One call of kiss_fft's recursive ``kf_work``: decimate in time, then butterfly."""
        radix, m = self.factors[stage]
        if m == 1:
            idx = offset + stride * np.arange(radix)
            out_r, out_i = re[:, idx], im[:, idx]
        else:
            parts = [self._work(re, im, offset + q * stride, stride * radix, stage + 1)
                     for q in range(radix)]
            out_r = np.concatenate([p[0] for p in parts], axis=1)
            out_i = np.concatenate([p[1] for p in parts], axis=1)
        butterfly = self._butterfly4 if radix == 4 else self._butterfly2
        return butterfly(out_r, out_i, stride, m)

    def _twiddle(self, k):
        return self.tw_r[k], self.tw_i[k]

    @staticmethod
    def _cmul(a_r, a_i, b_r, b_i):
        return _round_q15(a_r * b_r - a_i * b_i), _round_q15(a_r * b_i + a_i * b_r)

    def _butterfly2(self, r, i, stride, m):
        k = np.arange(m)
        a_r, a_i = _round_q15(r[:, :m] * 16383), _round_q15(i[:, :m] * 16383)
        b_r, b_i = _round_q15(r[:, m:] * 16383), _round_q15(i[:, m:] * 16383)
        t_r, t_i = self._cmul(b_r, b_i, *self._twiddle(k * stride))
        return (np.concatenate([_wrap16(a_r + t_r), _wrap16(a_r - t_r)], axis=1),
                np.concatenate([_wrap16(a_i + t_i), _wrap16(a_i - t_i)], axis=1))

    def _butterfly4(self, r, i, stride, m):
        k = np.arange(m)
        # C_FIXDIV(x, 4): multiply by 32767 / 4 = 8191 in Q15.
        q = [(_round_q15(r[:, j * m:(j + 1) * m] * 8191),
              _round_q15(i[:, j * m:(j + 1) * m] * 8191)) for j in range(4)]
        s0 = self._cmul(*q[1], *self._twiddle(k * stride))
        s1 = self._cmul(*q[2], *self._twiddle(2 * k * stride))
        s2 = self._cmul(*q[3], *self._twiddle(3 * k * stride))
        s5 = (_wrap16(q[0][0] - s1[0]), _wrap16(q[0][1] - s1[1]))
        f0 = (_wrap16(q[0][0] + s1[0]), _wrap16(q[0][1] + s1[1]))
        s3 = (_wrap16(s0[0] + s2[0]), _wrap16(s0[1] + s2[1]))
        s4 = (_wrap16(s0[0] - s2[0]), _wrap16(s0[1] - s2[1]))
        out = [
            (_wrap16(f0[0] + s3[0]), _wrap16(f0[1] + s3[1])),
            (_wrap16(s5[0] + s4[1]), _wrap16(s5[1] - s4[0])),
            (_wrap16(f0[0] - s3[0]), _wrap16(f0[1] - s3[1])),
            (_wrap16(s5[0] - s4[1]), _wrap16(s5[1] + s4[0])),
        ]
        return (np.concatenate([o[0] for o in out], axis=1),
                np.concatenate([o[1] for o in out], axis=1))


def _isqrt_rounded(x, small_cap=0xFFFF, cap=0xFFFFFFFF):
    """``Sqrt64`` of the filterbank: integer square root rounded to nearest, with its caps."""
    x = np.asarray(x, dtype=np.uint64)
    root = np.floor(np.sqrt(x.astype(np.float64))).astype(np.uint64)
    # The float estimate can be one off for large inputs; settle it exactly in integers.
    root = np.where(root * root > x, root - np.uint64(1), root)
    root = np.where((root + np.uint64(1)) * (root + np.uint64(1)) <= x, root + np.uint64(1), root)
    remainder = x - root * root
    limit = np.where(x < np.uint64(1 << 32), np.uint64(small_cap), np.uint64(cap))
    bump = (remainder > root) & (root != limit)
    return root + bump.astype(np.uint64)


class MicroFrontend:
    """Feature generator equal to TFLM's ``FrontendProcessSamples`` over a whole clip.

    Parameters
    ----------
    config : FrontendConfig
        Window, filterbank and gain-control settings.

    Examples
    --------
    .. code-block:: python

        frontend = MicroFrontend(FrontendConfig())
        features = frontend.uint16_features(pcm_int16)   # [49, 40] for one second
        model_input = MicroFrontend.to_int8(features)      # what micro_speech consumes
    """

    def __init__(self, config=FrontendConfig()):
        self.config = config
        self.window_size = config.window_ms * config.sample_rate // 1000
        self.step = config.step_ms * config.sample_rate // 1000
        arg = np.float64(np.float32(2.0 * np.pi / self.window_size))
        hann = np.float32(0.5 - 0.5 * np.cos(arg * (np.arange(self.window_size) + 0.5)))
        self.window = np.floor(hann * (1 << _WINDOW_BITS) + 0.5).astype(np.int64)
        self.fft_size = 1 << int(np.ceil(np.log2(self.window_size)))
        self.fft = _FixedPointRealFft(self.fft_size)
        self.weights, self.unweights, self.start, self.end = self._filterbank()
        # Shifts that undo the FFT's 1/n scaling in the later integer stages.
        self.correction_bits = int(np.log2(self.fft_size)) - (_FILTERBANK_BITS // 2)
        self.gain_lut = self._pcan_lut() if config.pcan else None

    def _filterbank(self):
        """Dense [channels + 1, bins] weights; the C code packs the same numbers sparsely."""
        cfg = self.config
        spectrum_size = self.fft_size // 2 + 1

        def to_mel(freq):
            return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)

        num = cfg.num_channels + 1
        mel_low, mel_high = np.float32(to_mel(cfg.lower_hz)), np.float32(to_mel(cfg.upper_hz))
        spacing = np.float32((mel_high - mel_low) / np.float32(cfg.num_channels + 1))
        centers = np.array(
            [np.float32(mel_low + spacing * np.float32(i + 1)) for i in range(num)], np.float32
        )
        hz_per_bin = np.float32(0.5 * cfg.sample_rate / np.float32(spectrum_size - 1))
        start = int(1.5 + cfg.lower_hz / hz_per_bin)
        weights = np.zeros((num, spectrum_size), dtype=np.int64)
        unweights = np.zeros_like(weights)
        freq = start
        end = 0
        for chan in range(num):
            first = freq
            while np.float32(to_mel(np.float32(freq * hz_per_bin))) <= centers[chan]:
                freq += 1
            below = mel_low if chan == 0 else centers[chan - 1]
            for b in range(first, freq):
                w = np.float32(
                    (centers[chan] - np.float32(to_mel(np.float32(b * hz_per_bin))))
                    / np.float32(centers[chan] - below)
                )
                weights[chan, b] = np.floor(w * (1 << _FILTERBANK_BITS) + 0.5)
                unweights[chan, b] = np.floor((1.0 - np.float64(w)) * (1 << _FILTERBANK_BITS) + 0.5)
            end = max(end, freq)
        return weights, unweights, start, end

    def _pcan_lut(self):
        """Piecewise-quadratic table of ``gain(x) = 2**gain_bits * (x + offset)**-strength``."""
        cfg = self.config
        input_bits = cfg.smoothing_bits - self.correction_bits

        def gain(x):
            x_f = np.float32(x) / np.float32(1 << input_bits)
            g = np.float32(1 << cfg.pcan_gain_bits) * np.power(
                np.float32(x_f + np.float32(cfg.pcan_offset)), np.float32(-cfg.pcan_strength)
            )
            return 32767 if g > 32767 else int(np.float32(g + np.float32(0.5)))

        lut = np.zeros(4 * _WIDE_DYNAMIC_BITS - 3, dtype=np.int64)
        lut[0], lut[1] = gain(0), gain(1)
        for interval in range(2, _WIDE_DYNAMIC_BITS + 1):
            x0 = 1 << (interval - 1)
            x1 = x0 + (x0 >> 1)
            x2 = x0 + (x0 - 1) if interval == _WIDE_DYNAMIC_BITS else 2 * x0
            y0, y1, y2 = gain(x0), gain(x1), gain(x2)
            a1 = 4 * (y1 - y0) - (y2 - y0)
            a2 = (y2 - y0) - a1
            base = 4 * interval - 6
            lut[base:base + 3] = _wrap16(np.array([y0, a1, a2]))
        return lut

    def _wide_dynamic(self, x):
        """Evaluate the PCAN gain table at noise estimates ``x`` (``WideDynamicFunction``)."""
        lut = self.gain_lut
        x = x.astype(np.int64)
        interval = _bit_length(x)
        base = np.maximum(4 * interval - 6, 0)
        frac = np.where(interval < 11, x << np.maximum(11 - interval, 0),
                        x >> np.maximum(interval - 11, 0)) & 0x3FF
        result = (lut[base + 2] * frac) >> 5
        result = (result + lut[base + 1] * 32) * frac
        result = ((result + (1 << 14)) >> 15) + lut[base]
        return np.where(x <= 2, lut[np.minimum(x, 2)], _wrap16(result))

    def _log(self, x):
        """Integer natural log scaled by ``2**log_scale_shift`` (``LogScaleApply``'s ``Log``)."""
        x = x.astype(np.int64)
        integer = _bit_length(x) - 1
        frac = x - (np.int64(1) << integer)
        frac = np.where(integer < _LOG_SCALE_BITS, frac << np.maximum(_LOG_SCALE_BITS - integer, 0),
                        frac >> np.maximum(integer - _LOG_SCALE_BITS, 0))
        seg = frac >> (_LOG_SCALE_BITS - _LOG_SEGMENTS_BITS)
        c0, c1 = _LOG_LUT[seg], _LOG_LUT[seg + 1]
        rel = ((c1 - c0) * (frac - (seg << (_LOG_SCALE_BITS - _LOG_SEGMENTS_BITS)))) >> 16
        log2 = (integer << _LOG_SCALE_BITS) + frac + c0 + rel
        half = 1 << (_LOG_SCALE_BITS - 1)
        loge = (_LOG_COEFF * log2 + half) >> _LOG_SCALE_BITS
        return ((loge << self.config.log_scale_shift) + half) >> _LOG_SCALE_BITS

    def uint16_features(self, pcm):
        """Frontend output for a whole clip, one row per full window, as uint16 ``[frames, ch]``.

        The noise and gain estimates start from zero at the start of ``pcm``, as after
        ``FrontendReset``.
        """
        cfg = self.config
        pcm = np.asarray(pcm, dtype=np.int64)
        count = max(0, 1 + (len(pcm) - self.window_size) // self.step)
        if count == 0:
            return np.zeros((0, cfg.num_channels), dtype=np.uint16)
        starts = self.step * np.arange(count)
        frames = pcm[starts[:, None] + np.arange(self.window_size)]
        # Window (Q12), then shift each frame up so its peak uses the int16 range of the FFT.
        windowed = _wrap16((frames * self.window) >> _WINDOW_BITS)
        shift = 15 - _bit_length(np.abs(windowed).max(axis=1))
        fft_in = np.zeros((count, self.fft_size), dtype=np.int64)
        fft_in[:, :self.window_size] = _wrap16((windowed & 0xFFFF) << shift[:, None])
        re, im = self.fft(fft_in)
        energy = np.zeros_like(re)
        band = slice(self.start, self.end)
        energy[:, band] = (re[:, band] * re[:, band] + im[:, band] * im[:, band]) & 0xFFFFFFFF
        # Channel c collects its rising slope (weights) and the falling slope of c - 1.
        work = energy @ self.weights.T
        work[:, 1:] += energy @ self.unweights[:-1].T
        signal = (_isqrt_rounded(work[:, 1:]).astype(np.int64) >> shift[:, None]) & 0xFFFFFFFF

        out = np.zeros_like(signal)
        estimate = np.zeros(cfg.num_channels, dtype=np.int64)
        odd = (np.arange(cfg.num_channels) & 1) == 1
        nr_one = 1 << _NOISE_REDUCTION_BITS
        smoothing = np.where(odd, int(np.float32(cfg.odd_smoothing) * nr_one),
                             int(np.float32(cfg.even_smoothing) * nr_one))
        min_remaining = int(np.float32(cfg.min_signal_remaining) * nr_one)
        snr_shift = cfg.pcan_gain_bits - self.correction_bits - _PCAN_SNR_BITS
        for f in range(count):
            sig = signal[f]
            if cfg.noise_reduction:
                scaled = (sig << cfg.smoothing_bits) & 0xFFFFFFFF
                estimate = ((scaled * smoothing + estimate * (nr_one - smoothing))
                            >> _NOISE_REDUCTION_BITS) & 0xFFFFFFFF
                floor = (sig * min_remaining) >> _NOISE_REDUCTION_BITS
                sig = np.maximum((scaled - np.minimum(estimate, scaled)) >> cfg.smoothing_bits,
                                 floor)
            if cfg.pcan:
                gain = self._wide_dynamic(estimate) & 0xFFFFFFFF
                snr = ((sig * gain) >> snr_shift) & 0xFFFFFFFF
                small = snr < (2 << _PCAN_SNR_BITS)
                sig = np.where(
                    small,
                    ((snr * snr) & 0xFFFFFFFF) >> (2 + 2 * _PCAN_SNR_BITS - _PCAN_OUTPUT_BITS),
                    (snr >> (_PCAN_SNR_BITS - _PCAN_OUTPUT_BITS)) - (1 << _PCAN_OUTPUT_BITS),
                ) & 0xFFFFFFFF
            value = (sig << self.correction_bits) & 0xFFFFFFFF
            logged = np.where(value > 1, self._log(np.maximum(value, 2)), 0)
            out[f] = np.minimum(logged, 0xFFFF)
        return out.astype(np.uint16)

    @staticmethod
    def to_int8(features):
        """micro_speech's mapping of uint16 features to int8: ``round(v * 256 / 666) - 128``."""
        value = (features.astype(np.int64) * 256 + 333) // 666 - 128
        return np.clip(value, -128, 127).astype(np.int8)

    @staticmethod
    def to_uint8_range(features):
        """The same scaling without the -128 offset, as float32 values in [0, 255]."""
        value = (features.astype(np.int64) * 256 + 333) // 666
        return np.clip(value, 0, 255).astype(np.float32)
