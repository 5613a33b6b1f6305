"""Augmentation of training windows, per batch: pitch shift (CQT bins and labels together),
CQT-only jitter, gain.

Owns `augment` (one window, the reference) and `augment_batch` (every row of a batch at
once, as the pipeline runs it), and the exact float16 -> float32 conversion the batch pass
uses. What moves in from outside is silence / no note. The draws themselves are the
pipeline's (`pipeline.DrawAugment`, deterministic from the seed). Must not import model,
loop or metric code. Legend: B batch, T frames, K bins or pitches.
"""

import numpy as np

from jaxnotes.data import features


def augment(example, shift, jitter, gain_db, bins_per_semitone, silence) -> dict:
    """Shifts pitch by `shift` semitones (labels too), the CQT alone by `jitter` bins more,
    and adds `gain_db`; what moves in from outside is silence / no note.

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
    )
    return {key: value[0] for key, value in out.items()}


def augment_batch(batch, shift_B, jitter_B, gain_db_B, bins_per_semitone, silence) -> dict:
    """`augment` of every row b of a batch with (shift_B[b], jitter_B[b], gain_db_B[b]);
    the CQT comes back as a new float32 array (from any float input), the labels as new
    arrays of their dtype.

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
    gain_db_B = np.asarray(gain_db_B, np.float64)
    rows = np.flatnonzero(gain_db_B)
    if rows.size:
        # Both normalisations are affine in dB: with 'db' this is a gain of the recording,
        # with 'db_relative' an error of its running reference. Silent bins stay silent
        # (their true level is unknown below the floor), the rest move and are clamped.
        cqt_BxTxF = out["cqt"] if rows.size == len(gain_db_B) else out["cqt"][rows]
        gain_Bx1x1 = (gain_db_B[rows] / features.DB_SCALE).astype(np.float32)[:, None, None]
        # In place (the shifted copy is ours): loud bins move, then everything below the
        # floor (moved down past it, or stored a rounding below it) becomes the floor.
        np.add(cqt_BxTxF, gain_Bx1x1, out=cqt_BxTxF, where=cqt_BxTxF > silence32)
        np.copyto(cqt_BxTxF, silence32, where=cqt_BxTxF < silence32)
        if rows.size < len(gain_db_B):
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
