#!/usr/bin/env bash
# The main job on the embedded default corpus, from a fresh machine:
#   set up -> render the default corpus (music21 scores through fluidsynth) -> CQT records ->
#   train-val + test of the short-range transformer and of the CNN + MLP baseline ->
#   transcribe one unseen test piece to MIDI, with the trained transformer and with the
#   pretrained model shipped in the package.
# About 15-20 minutes on a 2-core CPU. Results go under $RUNS (default runs/main).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
RUNS=${RUNS:-runs/main}
mkdir -p "$RUNS"
start=$(date +%s)

"$PY" -m jaxnotes.main --config=configs/transformer.py:quick --workdir="$RUNS/transformer" \
    --action=process-train,process-test,train-val,test
"$PY" -m jaxnotes.main --config=configs/cnn_mlp.py:quick --workdir="$RUNS/cnn_mlp" \
    --action=train-val,test

# One test piece of the default corpus: a whole work, rendered with the held-out soundfont.
SONG=$("$PY" - <<'PYEOF'
import glob, os
from configs import transformer
from jaxnotes.data.corpus import build as corpus
root = corpus.corpus_root(transformer.get_config("quick").data)
print(sorted(glob.glob(os.path.join(root, "test_data", "*.wav")))[0])
PYEOF
)
name=$(basename "$SONG" .wav)
mkdir -p "$RUNS/transcription"
"$PY" -m jaxnotes.transcribe "$SONG" --workdir "$RUNS/transformer" \
    -o "$RUNS/transcription/$name.mid" --piano-roll
# The same piece by the pretrained model shipped in the package (no --workdir).
"$PY" -m jaxnotes.transcribe "$SONG" -o "$RUNS/transcription/${name}_pretrained.mid" --piano-roll

echo
echo "main job done in $(( $(date +%s) - start )) s. Results:"
for m in transformer cnn_mlp; do
  echo "  $m: $RUNS/$m/report/summary.md (metrics: $RUNS/$m/report/results.json)"
done
echo "  transcription of test piece $name: $RUNS/transcription/$name.mid (+ .csv, .png)"
echo "  ... by the shipped pretrained model: $RUNS/transcription/${name}_pretrained.mid"
