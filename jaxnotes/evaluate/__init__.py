"""The test action: scoring (predict a split, choose thresholds on validation, score the
test split), metrics (frame-level: the original accuracy, mir_eval frame scores, AP),
note_metrics (mir_eval note onset/offset scores) and report (JSON, Markdown, pictures, MIDI).
"""
