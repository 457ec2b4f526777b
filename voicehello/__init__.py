"""voicehello: an offline voice assistant for neighbors."""

__version__ = "0.1.0"
