"""E015: 4-second training windows from scratch (E014's question at the start of training).

Same protocol as E008 (the release recipe trained from scratch for 2,000 steps, the cosine
schedule ending there; E008's reference and its other-seeds point are the control): windows
of 4 s in batches of 4 instead of 1 s in batches of 16, the same frames a step, so every
frame in a window's middle sees the +-1.95 s its output depends on at inference.
  python -m experiments.run E015_long_windows_scratch --variant '' --actions train-val,test \
      --score ../shared/realdev/maps_enstdk_am
(after `--action=process-train,process-test` of configs/release.py, or scripts/release.sh).
"""

from experiments.E008_release_data import config as e008

get_config = e008.get_config


def sweep():
    return [{"data.batch_seconds": 4.0, "data.batch_size": 4}]
