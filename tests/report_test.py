"""Tests of jaxnotes.report and jaxnotes.midi: every file written, readable, round-tripping."""

import csv
import json
import math
import os
import tempfile

import numpy as np
import pretty_midi
from absl.testing import absltest

from jaxnotes.data import midi
from jaxnotes.data.labels import Note
from jaxnotes.evaluate import metrics, report

NOTES = [
    Note(0.0, 0.5, 60, 1, 90),
    Note(0.25, 1.0, 64, 41, 70),  # violin
    Note(0.5, 0.75, 67, 1, 100),
    Note(1.0, 2.125, 43, 43, 80),  # cello
]


def _read_midi_notes(path):
    """(start, end, pitch, GM program 1-based, velocity) of every note in a MIDI file."""
    pm = pretty_midi.PrettyMIDI(path)
    return sorted(
        (n.start, n.end, n.pitch, inst.program + 1, n.velocity)
        for inst in pm.instruments
        for n in inst.notes
    )


class MidiTest(absltest.TestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.create_tempdir().full_path

    def test_round_trip_keeps_notes_and_programs(self):
        """Times, pitches, velocities or GM programs (1-based vs 0-based) change in the file."""
        path = os.path.join(self.dir, "a.mid")
        midi.write_midi(path, NOTES)
        got = _read_midi_notes(path)
        want = sorted((n.start_s, n.end_s, n.pitch, n.program, n.velocity) for n in NOTES)
        self.assertLen(got, len(want))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g[:2], w[:2], atol=1e-3)
            self.assertEqual(g[2:], w[2:])
        self.assertLen(pretty_midi.PrettyMIDI(path).instruments, 3)

    def test_forced_program_and_tempo(self):
        """`program=` is ignored, or a tempo change moves notes in seconds."""
        path = os.path.join(self.dir, "b.mid")
        midi.write_midi(path, NOTES, program=7, tempo_bpm=90.0)
        got = _read_midi_notes(path)
        self.assertEqual({g[3] for g in got}, {7})
        np.testing.assert_allclose([g[1] for g in got], [n.end_s for n in sorted(NOTES)], atol=1e-3)

    def test_atomic_write_leaves_no_temporary_files(self):
        """A temporary file is left behind, or a failed write clobbers the old file."""
        path = os.path.join(self.dir, "c.mid")
        midi.write_midi(path, NOTES[:1])
        before = open(path, "rb").read()
        with self.assertRaisesRegex(ValueError, "pitch"):
            midi.write_midi(path, [Note(0.0, 1.0, 200)])
        self.assertEqual(open(path, "rb").read(), before)
        self.assertEqual(os.listdir(self.dir), ["c.mid"])

    def test_notes_csv(self):
        """The CSV lacks the documented columns or rounds times coarsely."""
        path = os.path.join(self.dir, "notes.csv")
        midi.write_notes_csv(path, NOTES)
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(list(rows[0]), list(midi.NOTES_CSV_COLUMNS))
        self.assertEqual(float(rows[3]["end_s"]), 2.125)
        self.assertEqual((int(rows[1]["program"]), int(rows[1]["velocity"])), (41, 70))


def _result():
    return {
        "split": "test",
        "pooled": {"frame/ap": 0.71, "frame/precision": 0.6, "frame/recall": 0.5, "note/f1": 0.4},
        "pieces": {
            "2303": {"name": "Bach", "frame/ap": 0.7, "note/f1": math.nan},
            "1819": {"name": "Mozart", "frame/ap": np.float32(0.72), "note/f1": 0.5},
        },
        "settings": {"frame_threshold": 0.45, "onset_tolerance_s": 0.05},
    }


class ReportTest(absltest.TestCase):
    def test_writes_every_file(self):
        """A file is missing, the JSON does not parse, or NaN is written as invalid JSON."""
        out = tempfile.mkdtemp(dir=self.create_tempdir().full_path)
        rng = np.random.default_rng(0)
        pitches = list(range(21, 109))
        rolls, acc = {}, metrics.APAccumulator()
        for piece_id in ("2303", "1819"):
            probs, ref = rng.random((60, 88)), (rng.random((60, 88)) > 0.95).astype(np.float32)
            rolls[piece_id] = (probs, ref)
            acc.add(piece_id, probs, ref)
        written = report.write_report(
            out,
            _result(),
            config={"eval": {"thresholds": [0.5]}, "seed": 0},
            checkpoint={"workdir": "/tmp/run", "step": 1200},
            rolls=rolls,
            frames_per_second=43.07,
            pitches=pitches,
            pr_curve=acc.pr_curve(),
            notes={"2303": NOTES},
        )
        expected = {
            "results.json",
            "summary.md",
            "pr_curve.png",
            "piano_roll_2303.png",
            "piano_roll_1819.png",
            "2303.mid",
        }
        self.assertEqual(set(os.listdir(out)), expected)
        self.assertEqual({os.path.basename(p) for p in written.values()}, expected)
        for name in expected:
            self.assertGreater(os.path.getsize(os.path.join(out, name)), 100, name)
        for name in ("pr_curve.png", "piano_roll_2303.png"):
            with open(os.path.join(out, name), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

        with open(os.path.join(out, "results.json")) as f:
            doc = json.load(f)
        self.assertEqual(
            set(doc), {"split", "pooled", "pieces", "settings", "config", "checkpoint"}
        )
        self.assertEqual(doc["pooled"]["frame/ap"], 0.71)
        self.assertIsNone(doc["pieces"]["2303"]["note/f1"])  # NaN -> null
        self.assertAlmostEqual(doc["pieces"]["1819"]["frame/ap"], 0.72, places=6)
        self.assertEqual(doc["checkpoint"]["step"], 1200)
        self.assertEqual(doc["config"]["eval"]["thresholds"], [0.5])

    def test_summary_is_a_readable_table(self):
        """The Markdown lacks the pooled numbers or the per-piece rows."""
        text = report.summary_markdown(_result(), checkpoint={"step": 5})
        self.assertIn("| frame/ap | 0.7100 |", text)
        self.assertIn("| piece | name | frame/ap | note/f1 |", text)
        self.assertIn("| 2303 | Bach | 0.7000 | - |", text)
        self.assertIn("| 1819 | Mozart | 0.7200 | 0.5000 |", text)
        self.assertIn("step = 5", text)

    def test_rolls_need_axes(self):
        """Pictures are drawn with made-up time or pitch axes."""
        out = self.create_tempdir().full_path
        with self.assertRaisesRegex(ValueError, "frames_per_second"):
            report.write_report(out, _result(), rolls={"1": (np.zeros((4, 2)), np.zeros((4, 2)))})


if __name__ == "__main__":
    absltest.main()
