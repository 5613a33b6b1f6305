"""The persistent XLA compilation cache of the transcription entry points.

Compiling is most of the first file's time on a CPU: about 1.5 s for a length bucket of the
JAX CQT (`data.jax_cqt`) and 1.2 s for the model's window, against ~1.5 s to transcribe four
minutes once compiled. `enable()` keeps compiled functions on disk, so each shape compiles once
per machine and software versions instead of once per process: `jaxnotes-transcribe` and
`api.Transcriber` call it. Where: `$JAXNOTES_COMPILE_CACHE` if set ('off' turns the cache
off), else `$XDG_CACHE_HOME/jaxnotes/xla` (`~/.cache/jaxnotes/xla`). A cache directory the
user already gave JAX (`jax_compilation_cache_dir`) is kept. Entries are keyed by JAX on the
computation, its compile options, the device and the jax/jaxlib versions, so a stale entry
is never used; the directory can be deleted at any time. Must not import model or data code.
"""

import os

import jax
from absl import logging

ENV = "JAXNOTES_COMPILE_CACHE"
OFF = "off"
# Cache what takes this long to compile (JAX's default, 1 s, would leave out the model's
# window on an idle machine).
MIN_COMPILE_S = 0.3


def default_dir() -> str | None:
    """Where `enable()` keeps compiled code: $JAXNOTES_COMPILE_CACHE, or None for 'off',
    else the user cache directory's jaxnotes/xla."""
    chosen = os.environ.get(ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in (OFF, "") else os.path.expanduser(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxnotes", "xla")


def enable(directory: str | None = None) -> str | None:
    """Turns on JAX's persistent compilation cache; returns its directory, or None when off.

    `directory` None: `default_dir()`. A directory already set in JAX's config wins. An
    unwritable directory is logged and leaves the cache off (transcription works the same,
    compiling every time).
    """
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    directory = default_dir() if directory is None else directory
    if directory is None:
        return None
    try:
        os.makedirs(directory, exist_ok=True)
        if not os.access(directory, os.W_OK):
            raise PermissionError(f"{directory}: not writable")
    except OSError as e:
        logging.warning(
            "compilation cache off: %s (set %s to another directory or %r)", e, ENV, OFF
        )
        return None
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    return directory
