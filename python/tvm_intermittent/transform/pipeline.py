"""The ``intermittent`` Relax pipeline (filled in by the compiler)."""
