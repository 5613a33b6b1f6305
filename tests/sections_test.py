"""Typed config sections: every config file builds, each bad value names its field once,
and a RunConfig goes wherever a ConfigDict did."""

import json
import os

import pytest
from flax import nnx

from configs import cnn_mlp, release, transformer
from jaxnotes import files, models, sections
from jaxnotes.data import spec


@pytest.mark.parametrize(
    "module,variant",
    [(transformer, None), (transformer, "tiny"), (transformer, "quick"), (cnn_mlp, "quick")]
    + [(release, None), (release, "tiny"), (release, "finetune"), (release, "stage2")]
    + [(release, "stage3")],
)
def test_every_config_builds(module, variant):
    run = sections.RunConfig.of(module.get_config(variant))
    assert isinstance(run.data, sections.DataConfig) and isinstance(run.eval, sections.EvalConfig)
    assert sections.RunConfig.of(run) is run  # built once, passed on as it is
    assert json.loads(json.dumps(run.to_dict())) == files.config_to_dict(module.get_config(variant))


@pytest.mark.parametrize(
    "section,field,value,message",
    [
        ("data", "batch_size", 0, "config.data.batch_size=0: must be positive"),
        ("data", "label_format", "xml", "config.data.label_format='xml'"),
        ("augment", "gain_db", -3.0, "config.augment.gain_db=-3.0"),
        ("optim", "schedule", "linear", "config.optim.schedule='linear'"),
        ("eval", "thresholds", (0.5, 2.0), r"config.eval.thresholds=\(0.5, 2.0\)"),
        ("eval", "frame_threshold", 1.5, "config.eval.frame_threshold=1.5"),
        ("eval", "sustain_threshold", 1.5, "config.eval.sustain_threshold=1.5"),
        ("eval", "segment_overlap", 1.0, "config.eval.segment_overlap=1.0"),
        ("cqt", "hop_length", 0, "config.cqt.hop_length=0"),
        (None, "num_epochs", 0, "config.num_epochs=0"),
    ],
)
def test_a_bad_value_names_its_field(section, field, value, message):
    config = transformer.get_config("tiny")
    (config[section] if section else config)[field] = value
    with pytest.raises(ValueError, match=message) as e:
        sections.RunConfig.of(config)
    assert "\n" not in str(e.value)


def test_types_are_checked_where_config_dict_does_not():
    """Values from JSON or a plain mapping (no ConfigDict typing) are checked by type too."""
    values = dict(transformer.get_config("tiny").data.items())
    with pytest.raises(ValueError, match=r"config\.data\.batch_size=2\.5: expected an integer"):
        sections.DataConfig.of({**values, "batch_size": 2.5})
    with pytest.raises(ValueError, match=r"config\.data\.only_note_names=1: expected True"):
        sections.DataConfig.of({**values, "only_note_names": 1})
    data = sections.DataConfig.of({**values, "exclude_works": ["a", "b"], "batch_size": 8})
    assert data.exclude_works == ("a", "b") and data.batch_size == 8


def test_unknown_and_missing_fields_are_named():
    config = transformer.get_config("tiny")
    config.optim.lrr = 1
    with pytest.raises(ValueError, match=r"config\.optim\.lrr: no such field; known: lr, "):
        sections.RunConfig.of(config)
    config = transformer.get_config("tiny")
    del config.eval["segment_s"]
    with pytest.raises(ValueError, match=r"config\.eval\.segment_s: missing"):
        sections.RunConfig.of(config)


def test_a_run_config_goes_where_a_config_dict_did():
    config = transformer.get_config("tiny")
    run = sections.RunConfig.of(config)
    assert spec.load_meta(run) == spec.load_meta(config)
    assert spec.window_frames(run) == spec.window_frames(config)
    spec.check_same_inputs(config, run, "the model")
    model = models.from_config(run, spec.load_meta(run), nnx.Rngs(0))
    assert type(model).__name__ == "Model"


def test_model_defaults_live_in_configs_only():
    """A model built without one of its config.model fields is an error naming it."""
    config = transformer.get_config("tiny")
    kwargs = dict(config.model.items())
    del kwargs["num_heads"]
    with pytest.raises(ValueError, match=r"config\.model\.num_heads missing"):
        models.get_model("transformer", meta=spec.load_meta(config), rngs=nnx.Rngs(0), **kwargs)


def test_an_older_run_config_gets_the_new_fields_defaults(tmp_path):
    """config.json of a run trained before a field existed reads with that field's default."""
    stored = files.config_to_dict(transformer.get_config("tiny"))
    del stored["eval"]["segment_s"], stored["data"]["render_workers"]
    os.makedirs(tmp_path / "run")
    files.write_json(str(tmp_path / "run" / files.CONFIG_FILE), stored)
    config = files.read_config(str(tmp_path / "run"))
    run = sections.RunConfig.of(config)
    assert run.eval.segment_s is None and run.data.render_workers == 1
    assert run.model.num_layers == stored["model"]["num_layers"]
