"""E020: rooms' microphones at a distance, in a later stage from release 5.

On MAPS (room microphones), release 5's matched notes start a median 12.5 ms after their
labels; on the rendered test split (dry) 0.5 ms. The corpus' simulated rooms put the direct
sound at the keys' time, but a microphone r metres away hears it r / 343 m/s later, and the
labels are the keys. `release_pianos4_far` is `release_pianos4` with every room's
microphone at a distance drawn from the room's direct-to-reverberant ratio (acoustics.py:
0.2-4 m, 0.5-12 ms; the range is physical, not fitted to MAPS): the same pieces, rooms and
labels, the audio later by that travel. The point trains E019's recipe (release 5's later
stage from the shipped weights); E019's `release_pianos4` point is its control.
  python -m experiments.run E020_mic_distance --variant '' \\
      --actions process-train,process-test,train-val,test --score ../shared/realdev/maps_enstdk_am
"""

from experiments.E019_pedal_lifts import config as e019

get_config = e019.get_config


def sweep():
    return [{"data.corpus_size": "release_pianos4_far"}]
