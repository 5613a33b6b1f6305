"""Augmentation of training windows, per batch: pitch shift (CQT bins and labels together),
CQT-only jitter, gain, and a random smooth equaliser curve over frequency.

Owns `augment` (one window, the reference) and `augment_batch` (every row of a batch at
once, as the pipeline runs it), and the exact float16 -> float32 conversion the batch pass
uses. What moves in from outside is silence / no note. The draws themselves are the
pipeline's (`pipeline.DrawAugment`, deterministic from the seed). Must not import model,
loop or metric code. Legend: B batch, T frames, K bins or pitches.
"""

import numpy as np

from jaxnotes.data import features


def augment(example, shift, jitter, gain_db, bins_per_semitone, silence, eq_db_C=None) -> dict:
    """Shifts pitch by `shift` semitones (labels too), the CQT alone by `jitter` bins more,
    adds `gain_db` and the equaliser curve through `eq_db_C` (`eq_curve`); what moves in
    from outside is silence / no note.

    The reference for one example; the pipeline runs `augment_batch`, the same per row.
    """
    batch = {key: np.asarray(value)[None] for key, value in example.items()}
    out = augment_batch(
        batch,
        np.array([shift]),
        np.array([jitter]),
        np.array([gain_db]),
        bins_per_semitone,
        silence,
        eq_db_BxC=None if eq_db_C is None else np.asarray(eq_db_C)[None],
    )
    return {key: value[0] for key, value in out.items()}


def eq_curve(eq_db_BxC: np.ndarray, num_bins: int) -> np.ndarray:
    """Row b's equaliser in dB over `num_bins` CQT bins: straight lines (in dB against
    log frequency) between C control points spread evenly from the lowest bin to the
    highest, e.g. one an octave. A smooth, random colouring such as a microphone, a room or
    another instrument's body gives: broad tilts and bumps, never single harmonics."""
    eq_db_BxC = np.asarray(eq_db_BxC, np.float64)
    points_C = np.linspace(0.0, num_bins - 1.0, eq_db_BxC.shape[1])
    bins_F = np.arange(num_bins, dtype=np.float64)
    return np.stack([np.interp(bins_F, points_C, row_C) for row_C in eq_db_BxC])


def augment_batch(
    batch, shift_B, jitter_B, gain_db_B, bins_per_semitone, silence, eq_db_BxC=None
) -> dict:
    """`augment` of every row b of a batch with (shift_B[b], jitter_B[b], gain_db_B[b],
    eq_db_BxC[b]); the CQT comes back as a new float32 array (from any float input), the
    labels as new arrays of their dtype.

    Labels may hold any contiguous run of pitches: what moves in from outside it is
    'no note', which equals the 128-pitch result wherever the run reaches pitches that
    can move in.
    """
    shift_B = np.asarray(shift_B, np.int64)
    silence32 = np.float32(silence)
    out = dict(batch)
    out["cqt"] = _shift_rows(
        to_float32(batch["cqt"]), shift_B * bins_per_semitone + np.asarray(jitter_B), silence32
    )
    for key in ("frames", "onsets"):
        out[key] = _shift_rows(batch[key].copy(), shift_B, 0)
    num_bins = out["cqt"].shape[-1]
    # One column (a gain) or F columns (a gain and an equaliser), in dB.
    gain_db_BxF = np.asarray(gain_db_B, np.float64).reshape(-1, 1)
    if eq_db_BxC is not None:
        gain_db_BxF = gain_db_BxF + eq_curve(eq_db_BxC, num_bins)
    rows = np.flatnonzero(np.any(gain_db_BxF != 0, axis=1))
    if rows.size:
        # Both normalisations are affine in dB: with 'db' this is a gain (or filter) of the
        # recording, with 'db_relative' also an error of its running reference. Silent bins
        # stay silent (their true level is unknown below the floor), the rest move and are
        # clamped.
        cqt_BxTxF = out["cqt"] if rows.size == len(shift_B) else out["cqt"][rows]
        gain_Bx1xF = (gain_db_BxF[rows] / features.DB_SCALE).astype(np.float32)[:, None, :]
        # In place (the shifted copy is ours): loud bins move, then everything below the
        # floor (moved down past it, or stored a rounding below it) becomes the floor.
        np.add(cqt_BxTxF, gain_Bx1xF, out=cqt_BxTxF, where=cqt_BxTxF > silence32)
        np.copyto(cqt_BxTxF, silence32, where=cqt_BxTxF < silence32)
        if rows.size < len(shift_B):
            out["cqt"][rows] = cqt_BxTxF
    return out


def _shift_rows(x_BxTxK: np.ndarray, k_B, fill) -> np.ndarray:
    """Moves row b of x up by k_B[b] along its last axis (down for k < 0), in place, and
    fills what moved in with `fill`. Two slice copies per row: faster here than a gather."""
    for b, k in enumerate(np.asarray(k_B).tolist()):
        if k > 0:
            x_BxTxK[b, :, k:] = x_BxTxK[b, :, :-k]  # numpy buffers overlapping copies
            x_BxTxK[b, :, :k] = fill
        elif k < 0:
            x_BxTxK[b, :, :k] = x_BxTxK[b, :, -k:]
            x_BxTxK[b, :, k:] = fill
    return x_BxTxK


# float16 -> float32 by table: exact (the table is numpy's own conversion of every
# float16) and about twice as fast as astype (numpy 2.4, AVX2), the batch's biggest pass.
_FLOAT16_TO_32 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
_FLOAT16_TO_32 = _FLOAT16_TO_32.astype(np.float32)


def to_float32(x: np.ndarray) -> np.ndarray:
    """A new float32 array of x's values."""
    if x.dtype == np.float16:
        return np.take(_FLOAT16_TO_32, x.view(np.uint16), mode="clip")
    return x.astype(np.float32)
