"""The transcription entry points' disk cache of compiled code (inference.compile_cache)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf
from jax.experimental.compilation_cache import compilation_cache

from jaxnotes.inference import compile_cache

SETTINGS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")


@pytest.fixture
def jax_cache_settings():
    """The tests' JAX cache settings (none set), restored afterwards."""
    previous = {name: jax.config.values[name] for name in SETTINGS}
    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache.reset_cache()
    yield
    for name, value in previous.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(compile_cache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compile_cache.default_dir() == str(tmp_path / "jaxnotes" / "xla")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.default_dir() == str(tmp_path / "home" / ".cache" / "jaxnotes" / "xla")
    monkeypatch.setenv(compile_cache.ENV, "~/elsewhere")
    assert compile_cache.default_dir() == str(tmp_path / "home" / "elsewhere")
    for off in ("off", "OFF", ""):
        monkeypatch.setenv(compile_cache.ENV, off)
        assert compile_cache.default_dir() is None


def test_enable_keeps_compiled_code_on_disk(jax_cache_settings, tmp_path):
    folder = str(tmp_path / "new" / "xla")
    assert compile_cache.enable(folder) == folder
    assert jax.config.jax_compilation_cache_dir == folder
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # tiny compiles too
    scale = float(np.random.default_rng().uniform(2, 3))  # a computation no run compiled yet
    jax.jit(lambda x: jnp.sin(x) * scale)(jnp.ones(7)).block_until_ready()
    assert any(name.endswith("-cache") for name in os.listdir(folder))
    # A cache directory already set (here: by the user) wins.
    assert compile_cache.enable(str(tmp_path / "other")) == folder
    assert not os.path.exists(tmp_path / "other")


def test_enable_off_or_unwritable_leaves_the_cache_off(jax_cache_settings, tmp_path, monkeypatch):
    monkeypatch.setenv(compile_cache.ENV, "off")
    assert compile_cache.enable() is None
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert compile_cache.enable(str(blocker / "xla")) is None
    assert not jax.config.jax_compilation_cache_dir


def test_transcribe_command_uses_the_cache(jax_cache_settings, tmp_path, monkeypatch, capsys):
    """The command line turns the cache on at start-up and says where it is."""
    from jaxnotes.transcribe import cli

    monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "xla"))
    wav = str(tmp_path / "quiet.wav")
    sf.write(wav, np.zeros(22050, np.float32), 22050)
    assert cli.main([wav, "-o", str(tmp_path / "quiet.mid")]) == 0
    assert f"compiled code cached in {tmp_path / 'xla'}" in capsys.readouterr().err
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
