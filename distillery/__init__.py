"""distillery: long chain-of-thought SFT corpora by rejection sampling from teacher models."""

__version__ = "0.1.0"
