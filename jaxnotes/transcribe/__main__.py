"""`python -m jaxnotes.transcribe`: the jaxnotes-transcribe command line (see cli)."""

from jaxnotes.transcribe.cli import run

run()
