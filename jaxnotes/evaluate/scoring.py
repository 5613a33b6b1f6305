"""The `test` action: whole-piece evaluation with the field's metrics.

Owns: running a trained model over a split, stitching its chunks back into
whole pieces (every frame exactly once), choosing decision thresholds on the
VALIDATION split (never on test), and turning predictions into the numbers of
`metrics` and the files of `report`. Legend: B batch, T frames, F bins,
P pitches.

Thresholds: the frame threshold of the mir_eval frame metrics maximises frame
F1 on validation; the note decoder's onset threshold and shortest note
(`MIN_NOTE_S_GRID`) together maximise note onset F1 on validation at that frame
threshold; then the sustain threshold (`SUSTAIN_GRID`, fractions of the frame threshold: a
sounding note goes on while its frames stay above it) maximises the frame F1 of the decoded
notes on validation. Values set in `config.eval` win. With no validation split, 0.5 (and
`decode.DEFAULT_MIN_NOTE_S`, no hysteresis) is used and the report says so. The original
project's accuracy uses `config.eval.thresholds` as given.
"""

import dataclasses
import functools
import os

import numpy as np
from absl import logging

from jaxnotes import files
from jaxnotes.data import Meta, labels
from jaxnotes.evaluate import metrics, note_metrics, report
from jaxnotes.inference import decode, runner

ONSET_THRESHOLD_GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
# Shortest notes tried (seconds): at 43 frames/s, 1, 2, 3 and 4 frames.
MIN_NOTE_S_GRID = (0.0, 0.03, 0.05, 0.08)
# Sustain thresholds tried, as fractions of the frame threshold (1: no hysteresis).
SUSTAIN_GRID = (1.0, 0.75, 0.625, 0.5, 0.375, 0.25)


@dataclasses.dataclass
class PiecePrediction:
    """A whole piece: probabilities and reference, T frames x P outputs."""

    frame_probs_TxP: np.ndarray
    onset_probs_TxP: np.ndarray
    ref_frames_TxP: np.ndarray


def stitch_pieces(batches, num_frames_by_piece: dict) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Puts ordered eval batches back together: piece id -> (cqt_TxF, ref_frames_TxP).

    Args:
      batches: eval batches (see jaxnotes.data): padded, with `mask`.
      num_frames_by_piece: piece id -> frames of the whole piece.

    Raises:
      ValueError: a frame covered twice, or a piece left with uncovered frames.
    """
    pieces: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    seen: dict[int, np.ndarray] = {}
    for batch in batches:
        for b in range(len(batch["mask"])):
            valid = int(batch["mask"][b].sum())
            if valid == 0:
                continue  # a padding row
            pid, start = int(batch["piece_id"][b]), int(batch["start_frame"][b])
            if pid not in pieces:
                total = num_frames_by_piece[pid]
                pieces[pid] = (
                    np.zeros((total, batch["cqt"].shape[-1]), np.float32),
                    np.zeros((total, batch["frames"].shape[-1]), np.uint8),
                )
                seen[pid] = np.zeros(total, np.int32)
            rows = slice(start, start + valid)
            pieces[pid][0][rows] = batch["cqt"][b, :valid]
            pieces[pid][1][rows] = batch["frames"][b, :valid] >= 0.5
            seen[pid][rows] += 1
    for pid, count_T in seen.items():
        if count_T.max(initial=0) > 1 or count_T.min(initial=1) < 1:
            raise ValueError(f"piece {pid}: frames covered {count_T.min()}..{count_T.max()} times")
    return pieces


def predict_split(predict_piece, batches, num_frames_by_piece: dict) -> dict[int, PiecePrediction]:
    """Stitches whole pieces from eval batches and runs `predict_piece` on each.

    Whole pieces, not chunks, go through the model, so frames near chunk edges keep their
    full context and a piece gets the probabilities its audio gets from `jaxnotes-transcribe`.

    Args:
      predict_piece: `cqt_TxF -> (frame_probs_TxP, onset_probs_TxP)`, e.g.
        `functools.partial(runner.predict_offline, model)`.
      batches, num_frames_by_piece: as `stitch_pieces`.
    """
    out = {}
    for pid, (cqt_TxF, ref_TxP) in stitch_pieces(batches, num_frames_by_piece).items():
        frame_TxP, onset_TxP = predict_piece(cqt_TxF)
        out[pid] = PiecePrediction(
            np.asarray(frame_TxP, np.float32), np.asarray(onset_TxP, np.float32), ref_TxP
        )
    return out


def reference_notes(notes, meta: Meta) -> tuple[np.ndarray, np.ndarray]:
    """A piece's labelled notes in the model's output space, as mir_eval arrays."""
    pitches = decode.output_pitches(meta)
    if meta.only_note_names:
        notes = [
            dataclasses.replace(n, pitch=decode.PITCH_CLASS_BASE + n.pitch % 12) for n in notes
        ]
    else:
        notes = [n for n in notes if pitches[0] <= n.pitch <= pitches[-1]]
    return decode.notes_to_arrays(notes)


def choose_thresholds(pieces, notes_by_piece, meta: Meta, eval_config) -> dict:
    """Frame and onset thresholds, chosen on validation predictions (see module doc)."""
    chosen = {"source": "validation"}
    if eval_config.frame_threshold is not None:
        chosen["frame_threshold"] = float(eval_config.frame_threshold)
    else:
        counts = None
        for p in pieces.values():
            c = metrics.frame_counts_by_threshold(p.frame_probs_TxP, p.ref_frames_TxP)
            counts = c if counts is None else metrics.add_counts(counts, c)
        chosen["frame_threshold"], chosen["validation_frame_f1"] = metrics.choose_threshold(counts)
    onsets, shortest = eval_config.onset_threshold, eval_config.min_note_s
    if onsets is not None and shortest is not None:
        chosen["onset_threshold"], chosen["min_note_s"] = float(onsets), float(shortest)
    else:
        chosen.update(_choose_note_settings(pieces, notes_by_piece, meta, eval_config, chosen))
    if getattr(eval_config, "sustain_threshold", None) is not None:
        chosen["sustain_threshold"] = decode.sustain_threshold(eval_config, {}, chosen)
        return chosen
    best = None
    for fraction in SUSTAIN_GRID:
        total = None
        settings = dict(chosen, sustain_threshold=fraction * chosen["frame_threshold"])
        for p in pieces.values():
            est = decode_piece(p, meta, settings, eval_config.gap_join_s)
            counts = note_frame_counts(est, p.ref_frames_TxP, meta)
            total = counts if total is None else total + counts
        f1 = total.f1
        if best is None or f1 > best[1]:
            best = (fraction * chosen["frame_threshold"], f1)
    chosen["sustain_threshold"], chosen["validation_note_frame_f1"] = best
    return chosen


def decode_piece(p: PiecePrediction, meta: Meta, settings: dict, gap_join_s: float) -> list:
    """A piece's notes decoded with `settings`' thresholds (sustain: none where absent)."""
    return decode.frames_to_notes(
        p.frame_probs_TxP,
        p.onset_probs_TxP,
        meta,
        frame_threshold=settings["frame_threshold"],
        onset_threshold=settings["onset_threshold"],
        min_note_s=settings["min_note_s"],
        gap_join_s=gap_join_s,
        sustain_threshold=settings.get("sustain_threshold"),
    )


def note_frame_counts(notes, ref_frames_TxP: np.ndarray, meta: Meta):
    """Frame counts of decoded notes (rolled as labels are, `labels.notes_to_rolls`) against
    the reference frames: the frame score of a transcription, as note lists are scored."""
    frames_Tx128, _ = labels.notes_to_rolls(notes, len(ref_frames_TxP), meta.frames_per_second)
    rolled_TxP = frames_Tx128[:, decode.output_pitches(meta)]
    return metrics.frame_counts(rolled_TxP, ref_frames_TxP, threshold=0.5)


def _choose_note_settings(pieces, notes_by_piece, meta: Meta, eval_config, chosen) -> dict:
    """Onset threshold and shortest note maximising validation note F1 (set ones kept)."""
    onsets, shortest = eval_config.onset_threshold, eval_config.min_note_s
    best = None
    for onset_threshold in ONSET_THRESHOLD_GRID if onsets is None else (onsets,):
        for min_note_s in MIN_NOTE_S_GRID if shortest is None else (shortest,):
            total = note_metrics.NoteCounts()
            settings = dict(
                frame_threshold=chosen["frame_threshold"],
                onset_threshold=onset_threshold,
                min_note_s=min_note_s,
            )
            for pid, p in pieces.items():
                est = decode_piece(p, meta, settings, eval_config.gap_join_s)
                total += note_metrics.note_counts(
                    *reference_notes(notes_by_piece[pid], meta),
                    *decode.notes_to_arrays(est),
                    onset_tolerance_s=eval_config.onset_tolerance_s,
                )
            f1 = total.as_dict()["note/f1"]
            if best is None or f1 > best[2]:
                best = (float(onset_threshold), float(min_note_s), f1)
    return dict(zip(("onset_threshold", "min_note_s", "validation_note_f1"), best, strict=True))


def score_split(pieces, notes_by_piece, names, meta: Meta, eval_config, thresholds) -> tuple:
    """Every metric per piece and pooled; returns (result dict, decoded notes, PR curve)."""
    pitches_P = decode.output_pitches(meta)
    accuracy = dict(thresholds=eval_config.thresholds, allowed_errors=eval_config.allowed_errors)
    ap = metrics.APAccumulator()
    totals: dict = {}
    per_piece, decoded = {}, {}
    for pid in sorted(pieces):
        p = pieces[pid]
        counts = {
            "exact": metrics.exact_frame_counts(p.frame_probs_TxP, p.ref_frames_TxP, **accuracy),
            "pitch_class": metrics.pitch_class_frame_counts(
                p.frame_probs_TxP, p.ref_frames_TxP, pitches_P, **accuracy
            ),
            "frame": metrics.frame_counts(
                p.frame_probs_TxP, p.ref_frames_TxP, threshold=thresholds["frame_threshold"]
            ),
        }
        est = decode_piece(p, meta, thresholds, eval_config.gap_join_s)
        decoded[pid] = est
        ref_arrays, est_arrays = (
            reference_notes(notes_by_piece[pid], meta),
            decode.notes_to_arrays(est),
        )
        tol = eval_config.onset_tolerance_s
        counts["note"] = note_metrics.note_counts(*ref_arrays, *est_arrays, onset_tolerance_s=tol)
        counts["note_offset"] = note_metrics.note_counts(
            *ref_arrays, *est_arrays, onset_tolerance_s=tol, with_offsets=True
        )
        ap.add(pid, p.frame_probs_TxP, p.ref_frames_TxP)
        per_piece[str(pid)] = {"name": names.get(pid, str(pid)), **_as_numbers(counts)}
        per_piece[str(pid)]["frames"] = int(len(p.frame_probs_TxP))
        for key, value in counts.items():
            totals[key] = value if key not in totals else totals[key] + value
    for pid, value in ap.per_piece_ap().items():
        per_piece[str(pid)]["frame/ap"] = value
    pooled = _as_numbers(totals) if totals else {}
    pooled["frame/ap"] = ap.pooled_ap()
    pooled["frames"] = int(sum(len(p.frame_probs_TxP) for p in pieces.values()))
    pooled["pieces"] = len(pieces)
    result = {
        "split": "test",
        "pooled": pooled,
        "mean_over_pieces": note_metrics.mean_over_pieces(
            {k: {m: v for m, v in d.items() if isinstance(v, float)} for k, d in per_piece.items()}
        ),
        "pieces": per_piece,
        "settings": dict(thresholds),
    }
    return result, decoded, ap.pr_curve()


def _as_numbers(counts: dict) -> dict[str, float]:
    out = {}
    out.update(counts["exact"].as_dict("exact_frame_acc"))
    out.update(counts["pitch_class"].as_dict("pitch_class_acc"))
    out.update(counts["frame"].as_dict("frame"))
    out.update(counts["note"].as_dict("note"))
    out.update(counts["note_offset"].as_dict("note_offset"))
    return out


def run_test(config, workdir: str) -> dict:
    """The `test` action: evaluates the final (or dev) model of `workdir` on the test split."""
    from jaxnotes.data import pipeline, records, spec
    from jaxnotes.train import checkpoint

    model, meta, model_config, step = checkpoint.load_model(
        workdir, dev=config.eval.test_dev, fallback=config.eval.fallback_checkpoint
    )
    spec.check_same_inputs(model_config, config, f"the model in {workdir}")
    metrics.validate_thresholds(config.eval.thresholds)
    metrics.validate_allowed_errors(config.eval.allowed_errors)
    source = records.source_dir(config)
    # A folder of test recordings alone (your own, or a benchmark's) is scored with the
    # model's own thresholds, and reported beside the training data's report.
    test_only = not os.path.isdir(os.path.join(source, "train_data"))
    segments, how = runner.run_mode(model, model_config, config.eval)
    predict_piece = functools.partial(runner.predict_offline, model, segments=segments)

    def predictions(split):
        info = records.piece_info(config, split)
        pieces = predict_split(
            predict_piece,
            pipeline.make_eval_iter(config, split),
            {pid: i.num_frames for pid, i in info.items()},
        )
        return (
            pieces,
            {pid: i.notes for pid, i in info.items()},
            {pid: i.title or i.name for pid, i in info.items()},
        )

    val_pieces, val_notes = ({}, {}) if test_only else predictions("validation")[:2]
    if test_only:
        tuned = f"{files.thresholds_path(workdir)} (tuned on the model's validation split)"
        thresholds = decode.decoder_settings(
            config.eval, files.read_thresholds(workdir), tuned, default=None
        )
    elif val_pieces:
        thresholds = choose_thresholds(val_pieces, val_notes, meta, config.eval)
    else:
        logging.warning("no validation split: thresholds not tuned")
        thresholds = decode.decoder_settings(config.eval, {}, "no validation split")
    test_pieces, test_notes, names = predictions("test")
    result, decoded, pr_curve = score_split(
        test_pieces, test_notes, names, meta, config.eval, thresholds
    )
    shown = sorted(test_pieces)[: config.eval.num_piano_rolls]
    out_dir = files.report_dir(workdir, source if test_only else None)
    written = report.write_report(
        out_dir,
        result,
        config=files.config_to_dict(config),
        checkpoint={
            "workdir": workdir,
            "step": step,
            "dev": bool(config.eval.test_dev),
            "inference": ", ".join(f"{k} {v}" for k, v in how.items()),
        },
        rolls={
            pid: (test_pieces[pid].frame_probs_TxP, test_pieces[pid].ref_frames_TxP)
            for pid in shown
        },
        frames_per_second=meta.frames_per_second,
        pitches=decode.output_pitches(meta),
        pr_curve=pr_curve,
        notes=decoded,
        piece_columns=("frames", *metrics.SUMMARY, "exact_frame_acc@t=0.5,e=0"),
    )
    if not test_only:  # thresholds are the model's, tuned on its validation split only
        files.write_thresholds(workdir, thresholds)
    pooled = result["pooled"]
    lines = [f"test on {pooled['pieces']} pieces ({pooled['frames']} frames), step {step}:"]
    lines += [f"  {name:28s} {pooled[name]:.4f}" for name in metrics.HEADLINE if name in pooled]
    lines.append(
        f"  thresholds from {thresholds['source']}: frame {thresholds['frame_threshold']:.2f}, "
        f"onset {thresholds['onset_threshold']:.2f}, shortest note {thresholds['min_note_s']:.2f} s"
        + decode.sustain_text(thresholds.get("sustain_threshold"))
    )
    lines.append(f"  report: {written['summary']}")
    print("\n".join(lines), flush=True)
    return result
