"""An evaluation's files: results.json, summary.md, piano-roll and PR-curve pictures, MIDI.

Owns how an evaluation is shown to people and kept for later; it computes no metric.
Must not import model, loop or dataset code. Pictures use matplotlib's Agg canvas directly
(no pyplot, no global backend), so it works headless and in threads. Every file is
written atomically (`files.write_bytes`).

The result dict (filled by the evaluation module; numbers are floats, NaN allowed):

    {
      "split": "test",                            # str: which split was scored
      "pooled": {"frame/ap": 0.71, ...},          # headline numbers over the whole split
      "pieces": {                                 # per piece, keyed by piece id
        "2303": {"name": "Bach ...", "frame/ap": 0.7, "note/f1": 0.5, ...},
      },
      "settings": {"frame_threshold": 0.4, ...},  # optional: decisions behind the numbers
    }

Metric names are `area/metric` strings without spaces (see `metrics`), e.g. `frame/ap`,
`frame/f1`, `note/f1`, `note_offset/f1`, `exact_frame_acc@t=0.5,e=0`. Every number in
"pooled" and "pieces" is written; summary.md shows "pooled" whole and per-piece columns.

Legend: T frames, P pitches.
"""

import io
import json
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pretty_midi
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxnotes import files
from jaxnotes.data import midi


def _jsonable(value):
    """Numpy scalars/arrays to Python; NaN/inf to None (strict JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _format(value) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | str | int) or value is None:
        return "-" if value is None else str(value)
    value = float(value)
    return "-" if math.isnan(value) else f"{value:.4f}"


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_format(cell) for cell in row) + " |" for row in rows]
    return lines


def summary_markdown(
    result: Mapping,
    *,
    checkpoint: Mapping | None = None,
    piece_columns: Sequence[str] | None = None,
) -> str:
    """The Markdown summary: pooled numbers, settings, then one row per piece."""
    pieces = result.get("pieces", {})
    lines = [f"# Evaluation on {result.get('split', '?')}", ""]
    if checkpoint:
        lines += ["Checkpoint: " + ", ".join(f"{k} = {v}" for k, v in checkpoint.items()), ""]
    lines += [f"{len(pieces)} pieces. Pooled over the split:", ""]
    lines += _table(["metric", "value"], list(result.get("pooled", {}).items()))
    if result.get("settings"):
        lines += ["", "Settings:", ""]
        lines += _table(["setting", "value"], [(k, v) for k, v in result["settings"].items()])
    if pieces:
        if piece_columns is None:
            names = (k for piece in pieces.values() for k in piece if k != "name")
            piece_columns = list(dict.fromkeys(names))
        rows = [
            [str(pid), str(piece.get("name", ""))] + [piece.get(c, math.nan) for c in piece_columns]
            for pid, piece in pieces.items()
        ]
        lines += ["", "Per piece:", ""]
        lines += _table(["piece", "name", *piece_columns], rows)
    return "\n".join(lines) + "\n"


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def piano_roll_png(
    probs_TxP: np.ndarray,
    ref_TxP: np.ndarray,
    pitches: Sequence[int],
    frames_per_second: float,
    *,
    title: str = "",
    outlined: str = "reference",
) -> bytes:
    """Predicted probabilities (grey scale) with `ref_TxP` outlined in red, as PNG.

    `outlined` names what the red outlines are in the title: the reference in an
    evaluation, the decoded notes in a transcription.
    """
    probs_TxP, ref_TxP = np.asarray(probs_TxP, np.float32), np.asarray(ref_TxP, np.float32)
    if probs_TxP.shape != ref_TxP.shape or probs_TxP.shape[1] != len(pitches):
        raise ValueError(
            f"roll shapes {probs_TxP.shape}, {ref_TxP.shape} for {len(pitches)} pitches"
        )
    num_frames, num_pitches = probs_TxP.shape
    seconds = num_frames / frames_per_second
    # Pixel edges: frame t spans [t, t+1) / fps; pitch rows are centred on their numbers.
    extent = (0.0, seconds, pitches[0] - 0.5, pitches[0] + num_pitches - 0.5)
    fig = Figure(figsize=(min(max(6.0, seconds / 4), 40.0), max(3.0, num_pitches / 10)))
    ax = fig.add_subplot()
    style = dict(cmap="Greys", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    image = ax.imshow(probs_TxP.T, origin="lower", extent=extent, **style)
    if ref_TxP.any():
        ax.contour(
            ref_TxP.T, levels=[0.5], colors="red", linewidths=0.6, origin="lower", extent=extent
        )
    step = 1 if num_pitches <= 24 else 12
    ticks = [p for p in pitches if step == 1 or p % 12 == 0]
    ax.set_yticks(ticks, [pretty_midi.note_number_to_name(int(p)) for p in ticks])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("pitch")
    ax.set_title(
        title + ("  " if title else "") + f"(grey: predicted probability, red: {outlined})"
    )
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
    fig.tight_layout()
    return _png(fig)


def pr_curve_png(
    precision: np.ndarray,
    recall: np.ndarray,
    *,
    ap: float | None = None,
    operating_point: tuple[float, float] | None = None,
    title: str = "",
) -> bytes:
    """The split's precision-recall curve as PNG; `operating_point` is (recall, precision)."""
    fig = Figure(figsize=(5.0, 5.0))
    ax = fig.add_subplot()
    ax.plot(recall, precision, lw=1.2, label="pooled frames" if ap is None else f"AP = {ap:.4f}")
    if operating_point is not None:
        ax.plot(*operating_point, "o", color="red", label="chosen threshold")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title or "Frame precision-recall")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return _png(fig)


def piano_roll_filename(piece_id) -> str:
    return f"piano_roll_{piece_id}.png"


def write_report(
    out_dir: str,
    result: Mapping,
    *,
    config: Mapping | None = None,
    checkpoint: Mapping | None = None,
    rolls: Mapping | None = None,
    frames_per_second: float | None = None,
    pitches: Sequence[int] | None = None,
    pr_curve: Mapping | None = None,
    notes: Mapping | None = None,
    piece_columns: Sequence[str] | None = None,
) -> dict[str, str]:
    """Writes every file of an evaluation into `out_dir`; returns {what: path}.

    Args:
      out_dir: folder, created if missing; files in it are replaced atomically.
      result: the result dict described in the module docstring.
      config: the run's config as a plain dict (e.g. `config.to_dict()`), kept in the JSON.
      checkpoint: e.g. {"workdir": ..., "step": 1200, "dev": False}, kept in JSON and summary.
      rolls: {piece_id: (probs_TxP, ref_TxP)} to draw (needs frames_per_second, pitches).
      frames_per_second: frame rate of the rolls.
      pitches: MIDI pitch of each of the P columns of the rolls.
      pr_curve: {"precision": ..., "recall": ...} of the split (`APAccumulator.pr_curve`).
      notes: {piece_id: [Note]} of decoded notes, each written as `<piece_id>.mid`.
      piece_columns: metrics shown per piece in summary.md (default: all).
    """
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    document = dict(result)
    document["config"] = dict(config) if config is not None else None
    document["checkpoint"] = dict(checkpoint) if checkpoint is not None else None
    path = os.path.join(out_dir, files.RESULTS_JSON)
    text = json.dumps(_jsonable(document), indent=2, allow_nan=False)
    files.write_bytes(path, (text + "\n").encode())
    written["results"] = path

    path = os.path.join(out_dir, files.SUMMARY_MD)
    markdown = summary_markdown(result, checkpoint=checkpoint, piece_columns=piece_columns)
    files.write_bytes(path, markdown.encode())
    written["summary"] = path

    if rolls:
        if frames_per_second is None or pitches is None:
            raise ValueError("drawing piano rolls needs frames_per_second and pitches")
        for piece_id, (probs_TxP, ref_TxP) in rolls.items():
            name = result.get("pieces", {}).get(str(piece_id), {}).get("name", "")
            png = piano_roll_png(
                probs_TxP, ref_TxP, pitches, frames_per_second, title=f"{piece_id} {name}".strip()
            )
            path = os.path.join(out_dir, piano_roll_filename(piece_id))
            files.write_bytes(path, png)
            written[f"piano_roll/{piece_id}"] = path

    if pr_curve is not None and len(pr_curve["recall"]):
        pooled = result.get("pooled", {})
        point = None
        if "frame/recall" in pooled and "frame/precision" in pooled:
            point = (pooled["frame/recall"], pooled["frame/precision"])
        png = pr_curve_png(
            pr_curve["precision"],
            pr_curve["recall"],
            ap=pooled.get("frame/ap"),
            operating_point=point,
            title=f"Frame precision-recall, {result.get('split', '')} (pooled)",
        )
        path = os.path.join(out_dir, files.PR_CURVE_PNG)
        files.write_bytes(path, png)
        written["pr_curve"] = path

    for piece_id, piece_notes in (notes or {}).items():
        path = os.path.join(out_dir, f"{piece_id}.mid")
        midi.write_midi(path, piece_notes)
        written[f"midi/{piece_id}"] = path
    return written
