"""Small synthetic folders in MusicNet's layout, for data tests and benchmarks.

Recordings are harmonic tones at known MIDI pitches with matching labels
(MusicNet CSVs at the wav's own sample rate, or MIDI files beside the audio).
Note times lie on a 10 ms grid, so they are whole samples at 44.1, 22.05 and
16 kHz alike and labels read at any of those rates give identical frames.
Helpers at the end write the bad inputs the builder must reject.
"""

import os

import numpy as np
import soundfile as sf

from jaxnotes.data import labels as labels_lib
from jaxnotes.data import musicnet

# GM programs (1-based) of MusicNet's instruments used by the synthetic pieces.
VIOLIN, CELLO, PIANO = 41, 43, 1


def tone(pitch: int, seconds: float, sr: int, amplitude: float = 0.2) -> np.ndarray:
    """A harmonic tone (3 partials, 5 ms fades) at a MIDI pitch."""
    t_S = np.arange(int(round(seconds * sr))) / sr
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    wave_S = sum(
        0.5**h * np.sin(2 * np.pi * f0 * (h + 1) * t_S) for h in range(3) if f0 * (h + 1) < sr / 2
    )
    fade = min(len(t_S) // 2, int(0.005 * sr))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave_S[:fade] *= ramp
        wave_S[-fade:] *= ramp[::-1]
    return (amplitude * wave_S).astype(np.float32)


def render(notes: list[labels_lib.Note], seconds: float, sr: int) -> np.ndarray:
    """Mono audio of `seconds` holding every note (notes past the end are cut)."""
    audio_S = np.zeros(int(round(seconds * sr)), np.float32)
    for n in notes:
        start = int(round(n.start_s * sr))
        wave = tone(n.pitch, n.end_s - n.start_s, sr)[: max(len(audio_S) - start, 0)]
        audio_S[start : start + len(wave)] += wave
    return audio_S


def random_notes(seed: int, seconds: float, count: int = 6) -> list[labels_lib.Note]:
    """Seeded notes on a 10 ms grid, pitches 40..90, violin or cello, inside the audio."""
    rng = np.random.default_rng(seed)
    notes = []
    for _ in range(count):
        start = int(rng.integers(0, int(seconds * 100) - 30))  # in 10 ms steps
        length = int(rng.integers(15, 80))
        end = min(start + length, int(seconds * 100) - 1)
        notes.append(
            labels_lib.Note(
                start_s=start / 100,
                end_s=end / 100,
                pitch=int(rng.integers(40, 91)),
                program=int(rng.choice([VIOLIN, CELLO])),
            )
        )
    return sorted(notes)


def write_recording(
    root,
    split: str,
    name: str,
    notes: list[labels_lib.Note],
    seconds: float,
    sr: int = 44100,
    channels: int = 1,
    label_format: str = "csv",
    audio_notes: list[labels_lib.Note] | None = None,
) -> str:
    """Writes `<split>_data/<name>.wav` and its labels; returns the wav path.

    Args:
        label_format: 'csv' (in `<split>_labels/`, sample indices at `sr`), 'midi'
            (`<name>.mid` beside the audio, MusicNetEM style) or 'none'.
        audio_notes: notes to render, when they should differ from the labels.
    """
    data_dir = os.path.join(str(root), f"{split}_data")
    labels_dir = os.path.join(str(root), f"{split}_labels")
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(labels_dir, exist_ok=True)
    audio_S = render(notes if audio_notes is None else audio_notes, seconds, sr)
    # A second channel at a different level checks that stereo is down-mixed, not dropped.
    data = np.stack([audio_S, 0.5 * audio_S], axis=1) if channels == 2 else audio_S
    wav_path = os.path.join(data_dir, f"{name}.wav")
    sf.write(wav_path, data, sr, subtype="PCM_16")
    if label_format == "csv":
        labels_lib.write_label_csv(os.path.join(labels_dir, f"{name}.csv"), notes, sr)
    elif label_format == "midi":
        write_midi(os.path.join(data_dir, f"{name}.mid"), notes)
    elif label_format != "none":
        raise ValueError(f"label_format={label_format!r}")
    return wav_path


def write_midi(path: str, notes: list[labels_lib.Note]) -> None:
    """A MIDI label file; 1000 ticks per beat at 120 bpm keeps 10 ms times exact."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=1000, initial_tempo=120.0)
    for program in sorted({n.program for n in notes}):
        inst = pretty_midi.Instrument(program=program - 1)  # pretty_midi is 0-based
        inst.notes = [
            pretty_midi.Note(velocity=80, pitch=n.pitch, start=n.start_s, end=n.end_s)
            for n in notes
            if n.program == program
        ]
        midi.instruments.append(inst)
    midi.write(path)


def write_metadata(root, rows: dict[str, dict[str, str]]) -> None:
    """musicnet_metadata.csv with id, composer, ensemble (and the other columns empty)."""
    columns = ["id", "composer", "composition", "movement", "ensemble", "source"]
    columns += ["transcriber", "catalog_name", "seconds"]
    lines = [",".join(columns)]
    for name, row in rows.items():
        lines.append(",".join([name] + [row.get(c, "") for c in columns[1:]]))
    with open(os.path.join(str(root), musicnet.METADATA_FILE), "w") as f:
        f.write("\n".join(lines) + "\n")


def make_musicnet(
    root,
    train_names=("2000", "2001", "2002", "2003"),
    test_names=("2100",),
    seconds: float = 3.0,
    sr: int = 44100,
    channels: int = 1,
    label_format: str = "csv",
    notes_per_piece: int = 6,
) -> dict[str, list[labels_lib.Note]]:
    """A small MusicNet-layout folder; returns the notes of every recording by name."""
    written = {}
    for split, names in (("train", train_names), ("test", test_names)):
        for name in names:
            notes = random_notes(int(name), seconds, notes_per_piece)
            write_recording(root, split, name, notes, seconds, sr, channels, label_format)
            written[name] = notes
    write_metadata(
        root, {name: {"composer": "Synth", "ensemble": "Violin and Cello"} for name in written}
    )
    return written


# Bad inputs: each leaves the folder in MusicNet's layout with one broken file.


def write_empty_file(path: str) -> None:
    """A 0-byte file (e.g. an interrupted copy)."""
    open(path, "wb").close()


def write_junk_audio(path: str) -> None:
    """Bytes that are no audio format at all."""
    with open(path, "wb") as f:
        f.write(b"this is not a wav file, just text pretending to be one\n" * 20)


def truncate_file(path: str, keep_fraction: float = 0.5) -> None:
    """Cuts a file, as an interrupted download does (the wav header still claims all of it)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep_fraction))


def append_label_row(csv_path: str, row: str) -> int:
    """Appends a raw text row to a label CSV; returns its 1-based line number."""
    with open(csv_path) as f:
        num_lines = sum(1 for _ in f)
    with open(csv_path, "a") as f:
        f.write(row.rstrip("\n") + "\n")
    return num_lines + 1


def labels_path(root, split: str, name: str) -> str:
    return os.path.join(str(root), f"{split}_labels", f"{name}.csv")


def audio_path(root, split: str, name: str) -> str:
    return os.path.join(str(root), f"{split}_data", f"{name}.wav")


def tiny_config(musicnet_dir, cache_dir, **data_overrides):
    """configs/transformer.py:tiny reading `musicnet_dir`, caching under `cache_dir`."""
    from configs import transformer

    config = transformer.get_config("tiny")
    config.data.musicnet_dir = str(musicnet_dir)
    config.data.cache_dir = str(cache_dir)
    for key, value in data_overrides.items():
        setattr(config.data, key, value)
    return config


def epoch_checkpoint_config(tmp_path_factory, num_epochs: int, **top_level):
    """configs/transformer.py:tiny on a fresh synthetic folder, records built: epochs of 2
    steps, a checkpoint at each epoch end only (and the end save), all kept; locked.
    `top_level` sets further top-level fields (e.g. log_every_steps)."""
    from jaxnotes.data import pipeline, records

    root = tmp_path_factory.mktemp("musicnet")
    make_musicnet(root)
    config = tiny_config(root, tmp_path_factory.mktemp("cache"))
    config.num_epochs = num_epochs
    config.max_steps = -1
    config.checkpoint_every_steps = 100  # epoch ends and the end save only
    config.keep_checkpoints = 5
    for key, value in top_level.items():
        setattr(config, key, value)
    config.lock()
    records.ensure_dataset(config, ("train", "validation"))
    assert pipeline.steps_per_epoch(config) == 2, "the tests assume 2 steps per epoch"
    return config


def read_records(dataset_path: str, split: str) -> list[dict]:
    """Every record of a split, in stored order."""
    import tensorflow_datasets as tfds

    source = tfds.builder_from_directory(dataset_path).as_data_source(split)
    return [source[i] for i in range(len(source))]


def stitch(records: list[dict], piece_id: int, key: str, num_frames: int) -> np.ndarray:
    """A whole piece's `key` array rebuilt from its chunks by start_frame."""
    chunks = sorted(
        (r for r in records if int(r["piece_id"]) == piece_id), key=lambda r: int(r["start_frame"])
    )
    parts = [r[key][: int(r["num_frames"])] for r in chunks]
    starts = [int(r["start_frame"]) for r in chunks]
    assert starts == list(np.cumsum([0] + [len(p) for p in parts[:-1]])), starts
    whole = np.concatenate(parts)
    assert len(whole) == num_frames
    return whole
