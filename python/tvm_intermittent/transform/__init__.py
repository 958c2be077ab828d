"""Relax and TIR passes of the intermittent pipeline."""
