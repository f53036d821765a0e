"""MMFA Studio: controllable one-shot face animation."""

__version__ = "0.1.0"
