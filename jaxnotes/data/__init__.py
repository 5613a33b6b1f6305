"""The data contract: batch keys and the `Meta` record the model side receives.

Data, model, loop and metrics meet only here. A batch is a dict of host numpy
arrays (legend: B batch, T frames, F CQT bins, P pitches):

  cqt          B x T x F  float32  normalised CQT (see features.CqtConfig)
  frames       B x T x P  float32  1 where a pitch sounds in the frame
  onsets       B x T x P  float32  1 where a pitch starts in the frame
  mask         B x T      float32  1 for real frames, 0 for padding
  piece_id     B          int32    recording id
  start_frame  B          int32    first frame of the window within its piece

P is `max_pitch - min_pitch + 1`, or 12 pitch classes (C = 0) when
`only_note_names` is set.
"""

import dataclasses

BATCH_KEYS = ("cqt", "frames", "onsets", "mask", "piece_id", "start_frame")
# Number of MIDI pitches stored in records; folding to the model's range
# happens when records are read, never by rebuilding the dataset.
NUM_MIDI_PITCHES = 128


@dataclasses.dataclass(frozen=True)
class Meta:
    """What a model needs to know about its inputs and outputs."""

    n_bins: int
    n_pitches: int
    min_pitch: int
    frames_per_second: float
    only_note_names: bool = False
    bins_per_semitone: int = 4
