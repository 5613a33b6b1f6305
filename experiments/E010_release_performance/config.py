"""E010: performed scores, octaves, other pianos and detuned inputs, on real piano and the default test.

Same protocol as E008 (2,000 steps from scratch, the cosine schedule ending there; its first
point, the release corpus with nothing left out, is this experiment's reference):
  - `augment.pitch_jitter_bins=1`: the CQT alone moves by up to one bin (a quarter semitone)
    either way, labels unchanged: real instruments sit a little off A440, and the training
    audio's tuning is that of three soundfonts and one piano;
  - `data.corpus_size='release_performed'`: the release corpus with every score the sampled
    piano plays given a performance (phrase dynamics, voices balanced around a louder melody,
    rubato, chords spread, sustain pedal changed with the bass) instead of the score's flat
    loudness, strict time and dry keys (`corpus/performance.py`);
  - `data.corpus_size='release_octaves'`: the same performances, the bass doubled an octave
    below in most pieces and the melody an octave above in some, which reaches the
    keyboard's lowest octaves and puts octave-related notes together;
  - `data.corpus_size='release_variants'`: the release corpus with every sampled-piano piece
    (scores and textures) played by another piano made of the same samples
    (`voicing.Voicing`: keys from samples 3 semitones away, repitched; brighter or duller
    layers; other tuning and stretch; shorter sustain; other release times).
These corpora hold the release corpus's pieces, soundfonts and rooms; only the
sampled piano's pieces sound different.
  python -m experiments.run E010_release_performance --variant '' \
      --actions process-train,process-test,train-val,test --score ../shared/realdev/maps_enstdk_am
"""

from experiments.E008_release_data import config as e008

# E008's protocol: the release recipe trained from scratch for e008.STEPS steps.
get_config = e008.get_config


def sweep():
    return [
        {"augment.pitch_jitter_bins": 1},
        {"data.corpus_size": "release_performed"},
        {"data.corpus_size": "release_octaves"},
        {"data.corpus_size": "release_variants"},
    ]
