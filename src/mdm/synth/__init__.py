"""Synthetic legacy exports with ground truth, for measuring matching (``mdm synth``)."""

from mdm.synth.generate import SynthParams, generate

__all__ = ["SynthParams", "generate"]
