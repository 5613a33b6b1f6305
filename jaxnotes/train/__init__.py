"""Training: steps (loss, jitted train/eval steps), optim (optimizer and schedule), parallel
(mesh and shardings), loop (the train and train-val actions), checkpoint (Orbax save and
restore), preemption (signals -> save) and metric_writer (logs).
"""
