"""Tests of jaxnotes.decode: exact notes from synthetic rolls, and streaming == offline."""

import dataclasses

import numpy as np
from absl.testing import absltest, parameterized

from jaxnotes.data import Meta
from jaxnotes.data.labels import Note, notes_to_rolls
from jaxnotes.inference import decode

FPS = 10.0  # 0.1 s a frame keeps hand-made cases readable
META = Meta(n_bins=8, n_pitches=4, min_pitch=60, frames_per_second=FPS)


def _roll(spans, num_frames, num_pitches=4):
    """Probabilities 0.9 on [start, end) frames of each (output index, start, end)."""
    roll_TxP = np.full((num_frames, num_pitches), 0.1)
    for index, start, end in spans:
        roll_TxP[start:end, index] = 0.9
    return roll_TxP


def _spans(notes):
    return [(round(n.start_s * FPS), round(n.end_s * FPS), n.pitch) for n in notes]


class FramesOnlyTest(absltest.TestCase):
    def test_known_notes_decode_exactly(self):
        """Onsets/offsets are off by a frame, or a note sounding at the end is lost."""
        frames = _roll([(0, 2, 8), (1, 0, 3), (2, 10, 14), (3, 15, 20)], 20)
        notes = decode.frames_to_notes(frames, None, META, min_note_s=0.0, gap_join_s=0.0)
        self.assertEqual(_spans(notes), [(0, 3, 61), (2, 8, 60), (10, 14, 62), (15, 20, 63)])
        # Times are frame / fps in float64 (0.2 is not exact in binary): to 1e-9 s, a frame
        # being 0.1 s; the other fields exactly.
        np.testing.assert_allclose((notes[1].start_s, notes[1].end_s), (0.2, 0.8), atol=1e-9)
        self.assertEqual(
            dataclasses.replace(notes[1], start_s=0.2, end_s=0.8), Note(0.2, 0.8, 60, 1, 80)
        )

    def test_min_note_s_drops_short_notes(self):
        """Notes shorter than min_note_s survive, or notes exactly that long are dropped."""
        frames = _roll([(0, 0, 2), (1, 0, 3), (2, 5, 6)], 10)
        notes = decode.frames_to_notes(frames, None, META, min_note_s=0.3, gap_join_s=0.0)
        self.assertEqual(_spans(notes), [(0, 3, 61)])

    def test_gap_join_s_joins_short_gaps(self):
        """A gap shorter than gap_join_s splits a note, or a gap that long is joined."""
        # Pitch 60: gap of 1 frame (0.1 s); pitch 61: gap of 2 frames (0.2 s).
        frames = _roll([(0, 0, 3), (0, 4, 7), (1, 0, 3), (1, 5, 8)], 10)
        notes = decode.frames_to_notes(frames, None, META, min_note_s=0.0, gap_join_s=0.2)
        self.assertEqual(_spans(notes), [(0, 7, 60), (0, 3, 61), (5, 8, 61)])
        notes = decode.frames_to_notes(frames, None, META, min_note_s=0.0, gap_join_s=0.21)
        self.assertEqual(_spans(notes), [(0, 7, 60), (0, 8, 61)])

    def test_joined_length_counts_for_min_note(self):
        """Two short pieces joined across a gap are dropped as if they were separate notes."""
        frames = _roll([(0, 0, 1), (0, 2, 3)], 6)
        notes = decode.frames_to_notes(frames, None, META, min_note_s=0.3, gap_join_s=0.15)
        self.assertEqual(_spans(notes), [(0, 3, 60)])


class OnsetTest(absltest.TestCase):
    def test_onsets_start_and_retrigger(self):
        """A new onset inside a sounding note does not split it, or frames alone start notes."""
        frames = _roll([(0, 0, 10), (1, 2, 6)], 12)
        onsets = _roll([(0, 0, 1), (0, 5, 7)], 12)  # pitch 60 re-struck at frame 5 (2 frames up)
        notes = decode.frames_to_notes(frames, onsets, META, min_note_s=0.0, gap_join_s=0.0)
        # Pitch 61 sounds without an onset: no note.
        self.assertEqual(_spans(notes), [(0, 5, 60), (5, 10, 60)])

    def test_onset_thresholds_are_used(self):
        """onset_threshold is ignored (a weak onset starts a note)."""
        frames = _roll([(0, 0, 5)], 6)
        onsets = np.zeros((6, 4))
        onsets[0, 0] = 0.4
        kwargs = dict(min_note_s=0.0, gap_join_s=0.0)
        self.assertEqual(decode.frames_to_notes(frames, onsets, META, **kwargs), [])
        notes = decode.frames_to_notes(frames, onsets, META, onset_threshold=0.3, **kwargs)
        self.assertEqual(_spans(notes), [(0, 5, 60)])

    def test_labels_round_trip(self):
        """Decoding the labels' own rolls does not give back the labelled notes."""
        notes = [
            Note(0.0, 0.5, 60),
            Note(0.5, 0.9, 60),  # same pitch, back to back: only the onset separates them
            Note(0.2, 1.2, 63),
            Note(1.0, 1.3, 61),
        ]
        frames_Tx128, onsets_Tx128 = notes_to_rolls(notes, 15, FPS)
        frames, onsets = frames_Tx128[:, 60:64], onsets_Tx128[:, 60:64]
        decoded = decode.frames_to_notes(frames, onsets, META, min_note_s=0.0, gap_join_s=0.0)
        self.assertEqual(_spans(decoded), _spans(sorted(notes, key=lambda n: (n.start_s, n.pitch))))


def _reference_spans(frames, onsets, min_frames, max_gap, threshold=0.5, sustain=None):
    """The decoding rules written naively, frame by frame, for comparison."""
    sustain = threshold if sustain is None else sustain
    spans = []

    def finish(start, end, pitch):
        if end - start >= min_frames:
            spans.append((start, end, pitch))

    for p in range(frames.shape[1]):
        start, gap, previous_up = None, None, False
        for t in range(len(frames)):
            up = onsets is not None and onsets[t, p] >= threshold
            edge, previous_up = up and not previous_up, up
            active = frames[t, p] >= threshold or up
            held = frames[t, p] >= sustain or up
            if start is not None and edge:
                finish(start, t if gap is None else gap, p)
                start, gap = t, None
            elif start is None:
                if edge or (onsets is None and active):
                    start, gap = t, None
            elif held:
                gap = None
            else:
                gap = t if gap is None else gap
                if t - gap + 1 > max_gap:
                    finish(start, gap, p)
                    start, gap = None, None
        if start is not None:
            finish(start, len(frames) if gap is None else gap, p)
    return sorted(spans)


class StreamingTest(parameterized.TestCase):
    def _random_probs(self, seed, num_frames=300, num_pitches=6):
        rng = np.random.default_rng(seed)
        # Smooth random walks cross the thresholds in runs, as real outputs do.
        kernel = np.ones(5) / 5
        noise = rng.random((num_frames + 4, num_pitches))
        frames = np.stack(
            [np.convolve(noise[:, p], kernel, "valid") for p in range(num_pitches)], 1
        )
        onsets = (rng.random((num_frames, num_pitches)) > 0.93) * 0.9
        return frames, onsets

    @parameterized.product(with_onsets=(True, False), sustain=(None, 0.35))
    def test_offline_matches_naive_rules(self, with_onsets, sustain):
        """The run-by-run decoder departs from the frame-by-frame rules on random outputs."""
        for seed in range(4):
            frames, onsets = self._random_probs(seed)
            onsets = onsets if with_onsets else None
            meta = Meta(n_bins=8, n_pitches=6, min_pitch=0, frames_per_second=FPS)
            # 0.3 s = 3 frames kept; gaps of 1 frame (0.1 s < 0.2 s) joined, of 2 not.
            notes = decode.frames_to_notes(
                frames, onsets, meta, min_note_s=0.3, gap_join_s=0.2, sustain_threshold=sustain
            )
            got = sorted((round(n.start_s * FPS), round(n.end_s * FPS), n.pitch) for n in notes)
            expected = _reference_spans(frames, onsets, min_frames=3, max_gap=1, sustain=sustain)
            self.assertEqual(got, expected)
            self.assertGreater(len(got), 10)
        if sustain is not None:  # hysteresis changed the notes (the check can tell)
            self.assertNotEqual(expected, _reference_spans(frames, onsets, 3, 1))

    @parameterized.product(with_onsets=(True, False), sustain=(None, 0.35))
    def test_random_blocks_equal_offline(self, with_onsets, sustain):
        """Streaming gives other notes than offline decoding (state lost between pushes)."""
        meta = Meta(n_bins=8, n_pitches=6, min_pitch=40, frames_per_second=43.0)
        kwargs = dict(
            frame_threshold=0.5, min_note_s=0.05, gap_join_s=0.05, sustain_threshold=sustain
        )
        for seed in range(4):
            frames, onsets = self._random_probs(seed)
            onsets = onsets if with_onsets else None
            offline = decode.frames_to_notes(frames, onsets, meta, **kwargs)
            self.assertGreater(len(offline), 10)
            decoder = decode.NoteDecoder.from_meta(meta, **kwargs)
            rng, start, events = np.random.default_rng(seed + 100), 0, []
            while start < len(frames):
                stop = start + int(rng.integers(0, 9))  # empty blocks included
                events += decoder.push(
                    frames[start:stop], None if onsets is None else onsets[start:stop]
                )
                start = stop
            events += decoder.flush()
            # Exact: frames_to_notes is one push of this decoder, times the same frame / fps.
            self.assertEqual(decode.events_to_notes(events), offline)
            times = [e.time_s for e in events]
            self.assertEqual(times, sorted(times))

    def test_delay_is_bounded(self):
        """Events are held back longer than min_note_s + gap_join_s (or released too early)."""
        frames, onsets = self._random_probs(7)
        decoder = decode.NoteDecoder(43.0, np.arange(40, 46), min_note_s=0.1, gap_join_s=0.05)
        self.assertEqual(decoder.max_delay_frames, 5 + 2)
        worst = 0
        for t in range(len(frames)):
            for event in decoder.push(frames[t : t + 1], onsets[t : t + 1]):
                frame = round(event.time_s * 43.0)
                self.assertLess(frame, t + 1)
                worst = max(worst, t - frame)
        self.assertLessEqual(worst, decoder.max_delay_frames)
        self.assertGreater(worst, 0)

    def test_events_released_as_soon_as_decided(self):
        """'on' waits longer than min_note_s, or 'off' longer than the gap_join_s decision."""
        frames = _roll([(0, 0, 5)], 10)
        decoder = decode.NoteDecoder(FPS, [60, 61, 62, 63], min_note_s=0.3, gap_join_s=0.2)
        released = {}
        for t in range(len(frames)):
            for event in decoder.push(frames[t : t + 1]):
                released[event.kind] = (t, event.time_s)
        # 'on' once frames 0..2 (0.3 s) are in; 'off' at frame 6, when the gap 5..6 is too long.
        self.assertEqual(released, {"on": (2, 0.0), "off": (6, 0.5)})
        self.assertEqual(decoder.flush(), [])

    def test_mixing_onset_and_no_onset_pushes_fails(self):
        """A push without onsets after pushes with them silently changes the rules."""
        decoder = decode.NoteDecoder(FPS, [60, 61, 62, 63])
        decoder.push(np.zeros((2, 4)), np.zeros((2, 4)))
        with self.assertRaisesRegex(ValueError, "onset"):
            decoder.push(np.zeros((2, 4)))


class HelpersTest(absltest.TestCase):
    def test_pitch_classes_map_to_octave_4(self):
        """Pitch-class outputs decode to unplayable MIDI pitches 0..11."""
        meta = Meta(
            n_bins=8, n_pitches=12, min_pitch=21, frames_per_second=FPS, only_note_names=True
        )
        np.testing.assert_array_equal(decode.output_pitches(meta), np.arange(60, 72))
        np.testing.assert_array_equal(decode.output_pitches(META), [60, 61, 62, 63])

    def test_notes_to_arrays(self):
        """Arrays for mir_eval have the wrong shape or order, also for no notes."""
        intervals, pitches = decode.notes_to_arrays([Note(0.1, 0.2, 60), Note(0.3, 0.5, 62)])
        np.testing.assert_allclose(intervals, [[0.1, 0.2], [0.3, 0.5]])
        np.testing.assert_array_equal(pitches, [60, 62])
        intervals, pitches = decode.notes_to_arrays([])
        self.assertEqual((intervals.shape, pitches.shape), ((0, 2), (0,)))

    def test_bad_threshold(self):
        """A threshold outside [0, 1] (or unresolved None) decodes silently."""
        with self.assertRaisesRegex(ValueError, "frame_threshold"):
            decode.NoteDecoder(FPS, [60], frame_threshold=None)
        with self.assertRaisesRegex(ValueError, "onset_threshold"):
            decode.NoteDecoder(FPS, [60], onset_threshold=1.5)
        with self.assertRaisesRegex(ValueError, "sustain_threshold 0.6 must be <= frame"):
            decode.NoteDecoder(FPS, [60], frame_threshold=0.5, sustain_threshold=0.6)
        with self.assertRaisesRegex(ValueError, "sustain_threshold"):
            decode.NoteDecoder(FPS, [60], sustain_threshold=-0.1)

    def test_a_held_note_goes_on_above_the_sustain_threshold(self):
        """Frames at 0.3 end a note at threshold 0.5, carry one on at sustain 0.2, and never
        start one; without onsets too."""
        frames = np.full((12, 4), 0.1)
        frames[0:4, 0], frames[4:9, 0] = 0.9, 0.3  # a note fading out of the frame threshold
        frames[2:6, 1] = 0.3  # below the frame threshold throughout: no note
        kwargs = dict(min_note_s=0.0, gap_join_s=0.0)
        plain = decode.frames_to_notes(frames, None, META, **kwargs)
        held = decode.frames_to_notes(frames, None, META, sustain_threshold=0.2, **kwargs)
        self.assertEqual(_spans(plain), [(0, 4, 60)])
        self.assertEqual(_spans(held), [(0, 9, 60)])
        onsets = np.zeros_like(frames)
        onsets[0, 0] = 0.9
        held = decode.frames_to_notes(frames, onsets, META, sustain_threshold=0.2, **kwargs)
        self.assertEqual(_spans(held), [(0, 9, 60)])

    def test_decoder_settings_precedence(self):
        """The test action takes config.eval first; transcription takes thresholds.json first."""
        from configs import common

        e = common.evaluation()
        tuned = {"frame_threshold": 0.3, "onset_threshold": 0.6, "min_note_s": 0.03}
        got = decode.decoder_settings(e, tuned, "thresholds.json")
        self.assertEqual(
            {k: got[k] for k in tuned} | {"source": got["source"]},
            tuned | {"source": "thresholds.json"},
        )
        e.frame_threshold, e.min_note_s = 0.7, 0.05  # set on the command line: they win
        got = decode.decoder_settings(e, tuned, "thresholds.json")
        self.assertEqual(
            (got["frame_threshold"], got["onset_threshold"], got["min_note_s"]), (0.7, 0.6, 0.05)
        )
        self.assertEqual(got["source"], "config.eval and thresholds.json")
        # A stored model config's values give way to what its test action decoded with.
        got = decode.decoder_settings(e, tuned, "thresholds.json", tuned_first=True)
        self.assertEqual((got["frame_threshold"], got["min_note_s"]), (0.3, 0.03))
        # A thresholds.json from before the shortest note was tuned: the config's, else 0.05.
        old = {"frame_threshold": 0.3, "onset_threshold": 0.6}
        self.assertEqual(decode.decoder_settings(e, old, "x", tuned_first=True)["min_note_s"], 0.05)
        e.min_note_s = None
        got = decode.decoder_settings(e, old, "x", tuned_first=True)
        self.assertEqual(got["min_note_s"], decode.DEFAULT_MIN_NOTE_S)
        e.frame_threshold = None
        got = decode.decoder_settings(e, {}, "nothing tuned")
        self.assertEqual((got["frame_threshold"], got["source"]), (0.5, "the default 0.5"))
        with self.assertRaisesRegex(ValueError, "gives no frame_threshold"):
            decode.decoder_settings(e, {}, "nothing tuned", default=None)

    def test_decoder_settings_sustain(self):
        """No sustain threshold anywhere: None (no hysteresis); a tuned one is used, capped
        by a frame threshold set lower; the config's wins for the test action."""
        from configs import common

        e = common.evaluation()
        tuned = {"frame_threshold": 0.4, "onset_threshold": 0.6, "min_note_s": 0.0}
        self.assertIsNone(decode.decoder_settings(e, tuned, "x")["sustain_threshold"])
        tuned["sustain_threshold"] = 0.25
        self.assertEqual(decode.decoder_settings(e, tuned, "x")["sustain_threshold"], 0.25)
        e.frame_threshold = 0.2  # set by hand below the tuned sustain threshold: it caps it
        self.assertEqual(decode.decoder_settings(e, tuned, "x")["sustain_threshold"], 0.2)
        e.frame_threshold, e.sustain_threshold = None, 0.3
        self.assertEqual(decode.decoder_settings(e, tuned, "x")["sustain_threshold"], 0.3)
        got = decode.decoder_settings(e, tuned, "x", tuned_first=True)
        self.assertEqual(got["sustain_threshold"], 0.25)
        self.assertEqual(decode.sustain_text(0.25), ", sustain 0.25")
        self.assertEqual(decode.sustain_text(None), "")


if __name__ == "__main__":
    absltest.main()
