"""Synthetic legacy exports with ground truth, for measuring matching (``mdm synth``)."""

from mdm.synth.generate import SynthParams, generate
from mdm.synth.hazards import PROFILES

__all__ = ["PROFILES", "SynthParams", "generate"]
