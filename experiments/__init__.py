"""Ablation experiments: each E00N_slug/config.py derives a base config and defines sweep()."""
