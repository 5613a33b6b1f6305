"""jaxnotes: note transcription from constant-Q spectrograms, in JAX."""

__version__ = "0.1.0"
