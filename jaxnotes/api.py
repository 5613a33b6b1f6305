"""The Python API for notebooks: a transcriber from the shipped model or a training workdir.

    from jaxnotes.api import Transcriber
    t = Transcriber.pretrained()                  # or Transcriber.from_workdir("runs/x")
    result = t.transcribe("song.mp3")             # or t.transcribe(samples_S, sr=44100)
    result.notes[:3], result.frame_probs_TxP.shape
    result.write_midi("song.mid")

Owns nothing but the wiring: loading (`pretrained`, `checkpoint`), audio (`data.audio`),
features (`data.features`), the model (`inference`) and notes (`decode`) are the same code
the `jaxnotes-transcribe` command and the test action run, so the API gives the same notes.
"""

import dataclasses
import os

import numpy as np

from jaxnotes.data import Meta, features, labels
from jaxnotes.inference import compile_cache, decode, runner


@dataclasses.dataclass(frozen=True)
class Transcription:
    """What a recording holds: notes, and the model's probabilities frame by frame."""

    notes: list[labels.Note]  # start_s, end_s, pitch (MIDI), program, velocity
    frame_probs_TxP: np.ndarray  # P(pitch sounding in frame t)
    onset_probs_TxP: np.ndarray  # P(pitch starting in frame t)
    pitches: np.ndarray  # the MIDI pitch (or pitch class) of each of the P columns
    frames_per_second: float
    seconds: float

    def write_midi(self, path: str, program: int = 1) -> None:
        from jaxnotes.data import midi

        midi.write_midi(path, self.notes, program=program)


class Transcriber:
    """A model with its features and decoder settings; `transcribe` turns audio into notes."""

    def __init__(self, model, meta: Meta, config, thresholds: dict, description: str):
        self.model, self.meta, self.config, self.description = model, meta, config, description
        self.cqt = features.CqtConfig.from_config(config.cqt)
        self.settings = decode.decoder_settings(
            config.eval, thresholds, "the model's thresholds", tuned_first=True
        )
        self.threshold_source = self.settings.pop("source")
        # None for models with a bounded context (exact windows); see runner.Segments.
        self.segments, _ = runner.run_mode(model, config, config.eval)
        self.cqt_backend = "auto"  # see features.compute_cqt
        # Compiled code on disk (unless the user set a cache or JAXNOTES_COMPILE_CACHE=off).
        self.compile_cache_dir = compile_cache.enable()

    @classmethod
    def pretrained(cls) -> "Transcriber":
        """The model shipped with jaxnotes (jaxnotes/pretrained_model/, see its MODEL_CARD.md)."""
        from jaxnotes import pretrained

        model, meta, config, thresholds = pretrained.load()
        return cls(model, meta, config, thresholds, "the shipped pretrained model")

    @classmethod
    def from_workdir(
        cls, workdir: str, dev: bool = False, step: int | None = None, fallback: bool = False
    ):
        """A trained run's final (or dev, or step `step`) model with its tuned thresholds;
        `fallback`: the newest intact older checkpoint if that one is damaged."""
        from jaxnotes import files
        from jaxnotes.train import checkpoint

        model, meta, config, step = checkpoint.load_model(
            workdir, dev=dev, step=step, fallback=fallback
        )
        thresholds = files.read_thresholds(workdir)
        return cls(model, meta, config, thresholds, f"step {step} of {workdir}")

    def transcribe(self, audio_in, sr: int | None = None) -> Transcription:
        """Notes and probabilities of a file (path) or of samples (mono or S x C, rate `sr`)."""
        from jaxnotes.data import audio

        if isinstance(audio_in, str | os.PathLike):
            samples_S = audio.load_audio(os.fspath(audio_in), self.cqt.sr)
        else:
            if sr is None or sr <= 0:
                raise ValueError("transcribe(samples, sr=...): give the samples' rate in Hz")
            samples = np.asarray(audio_in, np.float32)
            if samples.ndim == 2:
                samples = samples.mean(axis=1)
            if samples.ndim != 1 or not len(samples):
                raise ValueError(
                    f"expected mono (S,) or (S, channels) samples, got {samples.shape}"
                )
            if not np.all(np.isfinite(samples)):
                raise ValueError("the samples hold NaN or infinite values")
            samples_S = audio.resample(samples, sr, self.cqt.sr)
        cqt_TxF = features.compute_cqt(samples_S, self.cqt, self.cqt_backend)
        frame_TxP, onset_TxP = runner.predict_offline(self.model, cqt_TxF, segments=self.segments)
        notes = decode.frames_to_notes(frame_TxP, onset_TxP, self.meta, **self.settings)
        return Transcription(
            notes=notes,
            frame_probs_TxP=frame_TxP,
            onset_probs_TxP=onset_TxP,
            pitches=np.asarray(decode.output_pitches(self.meta)),
            frames_per_second=self.meta.frames_per_second,
            seconds=len(samples_S) / self.cqt.sr,
        )
