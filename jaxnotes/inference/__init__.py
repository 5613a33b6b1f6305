"""From features to notes: runner (a model over a whole piece, in exact windows or
segments), decode (probabilities -> notes) and streaming (incremental CQT and model on a
live stream). Shared by evaluation, transcription and the Python API.
"""
