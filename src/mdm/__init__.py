"""mdm: the national golden-record registry."""

__version__ = "0.1.0"
