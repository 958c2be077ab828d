"""Compare a model's outputs with an independent reference runtime's.

Float outputs must agree to a relative tolerance, relative to the output's largest
magnitude: summation order differs between runtimes, so an element near zero can carry the
rounding error of its larger terms. Quantized (int8/uint8) outputs of a model
compiled through float arithmetic can differ from TFLite Micro's integer kernels by a few
least significant bits (LSB): TFLite requantizes with fixed-point multipliers, we compute in
float32 and round once. So for integer outputs we report the largest difference in LSB and
whether the top-1 class agrees, and pass when both are within bounds.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: Default bound for float outputs: |ours - ref| <= rtol * max|ref| + atol.
FLOAT_RTOL = 1e-5
FLOAT_ATOL = 1e-30
#: Integer outputs: largest difference allowed, in units of the output's scale. None means
#: "report it, but judge by the top-1 class only".
DEFAULT_MAX_LSB = None


@dataclasses.dataclass
class OutputComparison:
    """How one output tensor compares with the reference."""

    index: int
    dtype: str
    max_abs_diff: float
    max_lsb: int | None  # integer outputs only
    top1_ours: int
    top1_reference: int
    ok: bool

    @property
    def top1_match(self) -> bool:
        return self.top1_ours == self.top1_reference


@dataclasses.dataclass
class CheckResult:
    outputs: list[OutputComparison]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    def to_dict(self) -> dict:
        return {"match": self.ok, "outputs": [dataclasses.asdict(o) | {"top1_match": o.top1_match}
                                              for o in self.outputs]}

    def summary(self) -> str:
        parts = []
        for o in self.outputs:
            diff = f"max diff {o.max_lsb} LSB" if o.max_lsb is not None else (
                f"max abs diff {o.max_abs_diff:.3g}")
            top1 = "same top-1" if o.top1_match else (
                f"top-1 differs ({o.top1_ours} vs {o.top1_reference})")
            parts.append(f"output {o.index}: {diff}, {top1}")
        return ("MATCH" if self.ok else "MISMATCH") + " - " + "; ".join(parts)


def compare_outputs(ours, reference, *, rtol=FLOAT_RTOL, atol=FLOAT_ATOL,
                    max_lsb=DEFAULT_MAX_LSB, lsb_scales=None) -> CheckResult:
    """Compare output lists elementwise; shapes and dtypes must agree exactly.

    Parameters
    ----------
    ours, reference : list of numpy.ndarray
        Outputs of our firmware and of the reference runtime.
    rtol, atol : float
        Bound for float outputs, relative to the reference output's largest magnitude.
    max_lsb : int or None
        Bound for quantized outputs, in LSB; None judges them by top-1 only.
    lsb_scales : list of float or None, optional
        Per output, the quantization step behind a float output (a TFLite model whose int8
        graph ends in DEQUANTIZE). Such an output is judged as a quantized one, in LSB.
    """
    if len(ours) != len(reference):
        raise ValueError(f"{len(ours)} outputs but the reference has {len(reference)}")
    results = []
    for i, (a, b) in enumerate(zip(ours, reference)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(f"output {i}: ours is {a.dtype}{list(a.shape)}, the reference "
                             f"{b.dtype}{list(b.shape)}")
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        max_diff = float(diff.max()) if diff.size else 0.0
        scale = lsb_scales[i] if lsb_scales and i < len(lsb_scales) else None
        if np.issubdtype(a.dtype, np.integer) or scale:
            lsb = int(round(max_diff / scale)) if scale else int(max_diff)
            ok = lsb <= max_lsb if max_lsb is not None else (
                int(np.argmax(a.reshape(-1))) == int(np.argmax(b.reshape(-1))))
        else:
            lsb = None
            scale = float(np.abs(b.astype(np.float64)).max()) if b.size else 0.0
            ok = bool(np.all(diff <= atol + rtol * scale))
        top1_a = int(np.argmax(a.reshape(-1))) if a.size else 0
        top1_b = int(np.argmax(b.reshape(-1))) if b.size else 0
        results.append(OutputComparison(i, str(a.dtype), max_diff, lsb, top1_a, top1_b, ok))
    return CheckResult(results)
