"""Do the rendered corpus' labels line up with its audio? Onsets detected vs onsets labelled.

    python benchmarks/label_alignment.py --size=tiny --cache_dir=/tmp/jaxnotes
    python benchmarks/label_alignment.py --corpus=~/.cache/jaxnotes/corpus/v1-default-seed0-x...

For every cluster of labelled onsets (a chord is one cluster) it finds the
nearest onset librosa detects and reports the fraction within 25 and 50 ms
and the median offset. The same figures for labels shifted by 137 ms are
printed as chance level: with dense onsets a nearest neighbour is never far.
Also prints the corpus' hours of audio, render time and size on disk.
"""

import argparse
import os
import time
import types

import librosa
import numpy as np

from jaxnotes.data import audio as audio_lib
from jaxnotes.data import musicnet
from jaxnotes.data.corpus import build as corpus_lib
from jaxnotes.data.corpus import rendering

ANALYSIS_SR = 22050
HOP = 128  # 5.8 ms frames: finer than the tolerances measured
CLUSTER_S = 0.03  # label onsets closer than this are one event (a chord, an arpeggio)
CHANCE_SHIFT_S = 0.137
DELTA = 0.03  # peak-picking threshold of the normalised onset envelope


def onset_clusters(onsets_s: np.ndarray) -> np.ndarray:
    """First onset of each group of labelled onsets closer than CLUSTER_S."""
    onsets_s = np.sort(onsets_s)
    keep = np.concatenate([[True], np.diff(onsets_s) > CLUSTER_S])
    return onsets_s[keep]


def nearest_offsets(labelled_s: np.ndarray, detected_s: np.ndarray) -> np.ndarray:
    """Signed distance (detected - labelled) from each labelled onset to the nearest detection."""
    if len(detected_s) == 0:
        return np.full(len(labelled_s), np.inf)
    index = np.clip(np.searchsorted(detected_s, labelled_s), 1, len(detected_s) - 1)
    before, after = detected_s[index - 1], detected_s[index]
    return np.where(labelled_s - before < after - labelled_s, before, after) - labelled_s


def detect_onsets(audio_S: np.ndarray) -> np.ndarray:
    envelope = librosa.onset.onset_strength(y=audio_S, sr=ANALYSIS_SR, hop_length=HOP)
    # librosa's default delta (0.07) finds under half of the soft string onsets.
    return librosa.onset.onset_detect(
        onset_envelope=envelope, sr=ANALYSIS_SR, hop_length=HOP, units="time", delta=DELTA
    )


def describe(name: str, offsets_s: np.ndarray, backwards_s: np.ndarray) -> str:
    """Labels -> nearest detection (recall, offsets) and detections -> nearest label (precision)."""
    distance = np.abs(offsets_s)
    matched = offsets_s[distance <= 0.05]
    return (
        f"{name:<16} label onsets {len(offsets_s):5d}: within 25 ms {np.mean(distance <= 0.025):6.1%},"
        f" 50 ms {np.mean(distance <= 0.05):6.1%}, median |offset| {1000 * np.median(distance):5.1f} ms,"
        f" median offset of matches {1000 * np.median(matched) if len(matched) else np.nan:+5.1f} ms;"
        f" detections {len(backwards_s):5d}: {np.mean(np.abs(backwards_s) <= 0.05):6.1%} within 50 ms"
        " of a label"
    )


def first_sound_delay(recording, first_onset_s: float) -> float:
    """Seconds from the first labelled onset to the first sample above -60 dB of the peak.

    Pieces open with silence, so this times the synth exactly, free of any detector.
    """
    audio_S = audio_lib.load_audio(recording.audio_path)
    loud = np.abs(audio_S) > 1e-3 * np.abs(audio_S).max()
    return np.argmax(loud) / rendering.SAMPLE_RATE - first_onset_s


def folder_bytes(root: str) -> int:
    return sum(
        os.path.getsize(os.path.join(folder, name))
        for folder, _, names in os.walk(root)
        for name in names
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", help="an existing corpus root (else one is rendered)")
    parser.add_argument("--size", default="tiny", choices=tuple(corpus_lib.SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache_dir", default="~/.cache/jaxnotes")
    args = parser.parse_args()
    root = args.corpus
    if root is None:
        config = types.SimpleNamespace(
            cache_dir=args.cache_dir,
            corpus_size=args.size,
            corpus_seed=args.seed,
            exclude_works=(),
        )
        started = time.perf_counter()
        root = corpus_lib.ensure_corpus(config)
        print(f"ensure_corpus: {time.perf_counter() - started:.1f} s wall (incl. imports)")
    root = os.path.expanduser(root)
    print(f"corpus {root} ({folder_bytes(root) / 1e6:.1f} MB on disk)")
    print("  " + corpus_lib.describe(corpus_lib.read_summary(root)))
    started = time.perf_counter()
    found = {key: ([], []) for key in (*musicnet.SPLITS, "chance")}
    seconds = dict.fromkeys(musicnet.SPLITS, 0.0)
    first_sound = []
    # Per ensemble: a piano's onset is sharp, a string's or organ's swells, and the
    # detector's peak comes later for those.
    ensembles = {}
    metadata = musicnet.read_metadata(root)
    for split in musicnet.SPLITS:
        for recording in musicnet.list_recordings(root, split):
            audio_S = audio_lib.load_audio(recording.audio_path, ANALYSIS_SR)
            seconds[split] += len(audio_S) / ANALYSIS_SR
            labelled = onset_clusters(
                np.array([n.start_s for n in recording.read_notes(rendering.SAMPLE_RATE)])
            )
            detected = detect_onsets(audio_S)
            first_sound.append(first_sound_delay(recording, labelled[0]))
            ensemble = ensembles.setdefault(metadata[recording.name]["ensemble"], ([], []))
            ensemble[0].append(nearest_offsets(labelled, detected))
            ensemble[1].append(nearest_offsets(detected, labelled))
            for key, shift in ((split, 0.0), ("chance", CHANCE_SHIFT_S)):
                found[key][0].append(nearest_offsets(labelled + shift, detected))
                found[key][1].append(nearest_offsets(detected, np.sort(labelled + shift)))
    print(", ".join(f"{split} {seconds[split] / 60:.1f} min" for split in musicnet.SPLITS))
    for key, (offsets, backwards) in found.items():
        name = f"chance (+{1000 * CHANCE_SHIFT_S:.0f} ms)" if key == "chance" else key
        print(describe(name, np.concatenate(offsets), np.concatenate(backwards)))
    print("by ensemble (ensembles with at least 200 labelled onsets):")
    for name, (offsets, backwards) in sorted(ensembles.items()):
        if sum(map(len, offsets)) >= 200:
            print(describe(name[:16], np.concatenate(offsets), np.concatenate(backwards)))
    print(
        f"first sound after the first labelled onset (above -60 dB of the peak, at 44.1 kHz):"
        f" median {1000 * np.median(first_sound):.2f} ms, max {1000 * np.max(first_sound):.2f} ms"
    )
    print(f"analysis took {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
