"""Integer kernels rebuilt with a smaller smallest tile, where the default one does not fit.

The default int8 kernels block their outputs for speed: the fully connected kernel computes
four or eight units per iteration of its outer loops (one input word feeds them all), the
DSP depthwise kernel every channel of an output pixel (the border test once per pixel).
The tiler can only cut those outer loops, so the blocked iteration is the smallest tile,
and a small capacitor may not pay for it. Two slower kernels cut finer:

- :data:`DENSE_ONE_UNIT`: one unit per iteration (``integer_kernels.dense(one_unit=True)``);
  its body ``acc = bias; for k: acc += ...; out = f(acc)`` is the form whose reduction the
  tiler splits into chunks with partial sums in NVM when even one unit does not fit
  (``codegen.tiling._split_reduction``);
- :data:`DEPTHWISE_BLOCKS`: a block of channel quads of one pixel per iteration, the block
  loop outside the border test (``depthwise_conv2d_dsp(block_quads=...)``).

The builder decides (``builder._shrink_refused``): it lowers the model once with the
default kernels, asks the tiler whether each offered kernel's smallest tile fits, and lowers
again with the refused ones rebuilt. Kernels are named by :func:`kernel_key`, the
structural hash of the kernel as ``QuantizedToInteger`` built it, which the builder reads
back from the fused graph's kernel (the pipeline keeps a hand-built kernel as it is), so the
default kernels carry no extra attribute and keep their C and their tuning workloads.
"""

from __future__ import annotations

import dataclasses

import tvm_ffi

from .notices import CHANNEL_BLOCK_TILES, ONE_UNIT_TILES

#: A fully connected kernel that can be rebuilt one output unit per tile (the notice's path).
DENSE_ONE_UNIT = ONE_UNIT_TILES
#: A DSP depthwise kernel (one row per tile) that can be rebuilt in channel blocks.
DEPTHWISE_BLOCKS = CHANNEL_BLOCK_TILES
#: Function attribute of a tuned kernel that is another variant than the lowering's rule
#: builds (its number, ``tuning.variants``): ``builder.assemble`` lowers the model again with
#: that variant chosen, so that the kernel's constants are laid out for it. The kernels of a
#: lowering never carry it, so their C and their tuning workloads stay as they were.
VARIANT_ATTR = "intermittent.variant"


def kernel_key(func) -> str:
    """The name a rebuild goes by: the structural hash of the kernel without its symbol."""
    if func.attrs is not None and "global_symbol" in func.attrs:
        func = func.without_attr("global_symbol")
    return str(tvm_ffi.structural_hash(func))


@dataclasses.dataclass(frozen=True)
class Offer:
    """A kernel ``QuantizedToInteger`` can rebuild finer.

    Attributes
    ----------
    kind : str
        :data:`DENSE_ONE_UNIT` or :data:`DEPTHWISE_BLOCKS`.
    units : int
        What one default iteration holds: output units per block (dense) or channel quads
        per pixel (depthwise); a depthwise block must divide it.
    """

    kind: str
    units: int


@dataclasses.dataclass(frozen=True)
class Shrink:
    """How to rebuild one offered kernel, and why.

    Attributes
    ----------
    kind : str
        The offer's kind.
    reason : str
        Why (the notice's text).
    block_quads : int
        Channel quads per tile (:data:`DEPTHWISE_BLOCKS` only).
    miss : str
        What the default tile needed against what one charge pays (part of ``reason``).
    """

    kind: str
    reason: str
    block_quads: int = 0
    miss: str = ""

    def kernel_args(self) -> dict:
        """The keyword arguments of the kernel builder that make the finer kernel."""
        if self.kind == DENSE_ONE_UNIT:
            return {"one_unit": True}
        return {"block_quads": self.block_quads}
