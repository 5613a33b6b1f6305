"""Every experiment's config loads and every sweep override names a real config field."""

import importlib
import json
import os

import pytest

from experiments import run

EXPERIMENTS = sorted(
    d for d in os.listdir(os.path.dirname(run.__file__)) if d.startswith("E") and d[1:4].isdigit()
)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_sweep_overrides_apply(experiment):
    """A sweep key that is misspelt, or a value of the wrong type, fails here, not after hours."""
    module = importlib.import_module(f"experiments.{experiment}.config")
    points = module.sweep()
    assert points, "an experiment needs at least one point"
    for overrides in points:
        config = module.get_config("tiny")
        for key, value in overrides.items():
            *parents, leaf = key.split(".")
            node = config
            for p in parents:
                node = node[p]
            assert leaf in node, f"{experiment}: {key} is not a config field"
            node[leaf] = value  # ConfigDict type-checks the assignment


def test_commands_have_one_workdir_per_point(tmp_path):
    """Sweep points never share a workdir (results would overwrite each other)."""
    for experiment in EXPERIMENTS:
        runs = run.commands(experiment, str(tmp_path), "tiny", "train")
        workdirs = [w for w, _ in runs]
        assert len(set(workdirs)) == len(workdirs)
        assert all(any(a.startswith("--config.") for a in argv) for _, argv in runs)


def test_results_table_reads_the_test_reports(tmp_path):
    """The launcher's table shows each point's pooled test numbers, and marks points not run."""
    runs = run.commands("E001_positional_encoding", str(tmp_path), "tiny", "test")
    done, _ = runs[0]
    os.makedirs(os.path.join(done, "report"))
    pooled = {"frame/ap": 0.9277, "frame/f1": 0.8624, "note/f1": 0.7475, "note_offset/f1": 0.5636}
    with open(os.path.join(done, "report", "results.json"), "w") as f:
        json.dump({"pooled": pooled}, f)
    table = run.results_table(runs)
    assert "| pos_encoding=sinusoidal | 0.928 | 0.862 | 0.748 | 0.564 |" in table
    assert "| pos_encoding=conv | not run |" in table


def test_score_folders_add_columns(tmp_path):
    """--score DIR runs process-test,test on DIR per point and shows its note and frame F1."""
    runs = run.commands("E006_real_recordings", str(tmp_path), "tiny", "train-val,test")
    scoring = run.score_commands(runs, "/data/real")
    assert all("--action=process-test,test" in argv for _, argv in scoring)
    assert all("--config.data.musicnet_dir=/data/real" in argv for _, argv in scoring)
    assert [w for w, _ in scoring] == [w for w, _ in runs]
    done, _ = runs[2]
    for name, pooled in (("report", {"frame/ap": 0.9}), ("report-real", {"note/f1": 0.5})):
        os.makedirs(os.path.join(done, name))
        with open(os.path.join(done, name, "results.json"), "w") as f:
            json.dump({"pooled": pooled}, f)
    table = run.results_table(runs, ["/data/real"])
    assert "real note/f1" in table.splitlines()[0]
    assert "| normalisation=db_relative | 0.900 | - | - | - | 0.500 | - |" in table


def test_tuple_values_reach_the_command_line_as_python_literals():
    """Strings inside tuples are quoted on the command line (absl parses tuples as Python
    literals), and the workdir name stays readable."""
    import ast

    overrides = {"data.train_exclude": ("composer=generated",), "eval.thresholds": (0.3, 0.5)}
    assert run.point_name(overrides) == "train_exclude=(composer=generated,),thresholds=(0.3,0.5)"
    for key, value in overrides.items():
        assert ast.literal_eval(run._flag_value(value)) == value, key


def test_the_release_recipe_trains_the_model_card_describes():
    """scripts/release_gpu.sh trains E018's SHIPPED_RUN then SHIPPED: the card's run, steps
    and later stage (a wrong SHIPPED_RUN once made the script reproduce another run)."""
    from experiments.E018_gpu_takes import config as e018
    from jaxnotes import pretrained

    with open(os.path.join(pretrained.MODEL_DIR, "MODEL_CARD.md")) as f:
        card = " ".join(f.read().split())
    takes, steps = e018.RUNS[e018.SHIPPED_RUN]
    assert f"run `{e018.SHIPPED_RUN}`" in card
    assert f"{steps:,} steps of 128" in card
    assert all(f"`{take}`" in card for take in takes)
    for stage in e018.SHIPPED:
        assert f"`{e018.e017.LATER_STAGES[stage]}`" in card


def test_the_next_gpu_run_keeps_its_later_stage_unheard():
    """E018's NEXT_RUN draws on known takes of `release_pianos`' pieces (or its variants)
    and leaves out the take its later stage (NEXT_LATER_STAGE) trains on, which must be
    unheard: not even with its microphones elsewhere (the same rooms, performances and
    pianos)."""
    import dataclasses

    from experiments.E018_gpu_takes import config as e018
    from jaxnotes.data.corpus import sizes

    takes, steps = e018.NEXT_RUN
    assert steps > 0 and len(set(takes)) == len(takes) >= 4
    assert all(take in sizes.SIZES for take in takes)
    later = sizes.SIZES[e018.e017.LATER_STAGES[e018.NEXT_LATER_STAGE]]
    assert all(sizes.SIZES[take].distances == later.distances for take in takes)

    def heard(plan):  # what a take sounds like, wherever its microphones stand
        return dataclasses.replace(plan, distances=False)

    assert heard(later) not in [heard(sizes.SIZES[take]) for take in takes]
