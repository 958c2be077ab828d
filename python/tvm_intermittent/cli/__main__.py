"""``python -m tvm_intermittent.cli`` and the ``tvm-intermittent`` console script."""

import sys

from .core import main as _main


def main() -> None:
    sys.exit(_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
