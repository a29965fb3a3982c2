"""The training YAML's ``data`` section and the loader share one definition of their common fields."""

from dataclasses import fields

import pytest

from flows.cli import main
from schemas.validation import SchemaError, from_dict
from training.config import TrainConfig, load_train_config
from training.loader import BatchConfig, DataSource, LoaderConfig
from training.model.config import tiny_model_config


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_loader_config_carries_every_data_field(tmp_path, stage):
    path = tmp_path / "train.yaml"
    path.write_text(f"stage: {stage}\nseed: 4\ndata:\n  sources: [{{url: a.tar, weight: 2}}, {{url: b.tar}}]\n"
                    "  batch_rows: 3\n  max_tokens: 999\n  pack: true\n  shuffle_buffer: 7\n  num_workers: 2\n")
    config = load_train_config(path)
    loader = config.loader_config(tiny_model_config())
    shared = [f.name for f in fields(BatchConfig)]
    assert {"sources", "batch_rows", "max_tokens", "pack", "shuffle_buffer", "num_workers"} <= set(shared)
    for name in shared:
        expected = getattr(config.data, name) if name != "pack" else stage != "dpo"  # DPO rows are never packed
        assert getattr(loader, name) == expected, name
    assert loader.sources == [DataSource(url="a.tar", weight=2.0), DataSource(url="b.tar")]
    assert loader.seed == 4 and loader.accounting.max_sequence == 999


@pytest.mark.parametrize("line, field", [
    ("max_tokens: 8", "data.max_tokens"),
    ("batch_rows: 0", "data.batch_rows"),
    ("shuffle_buffer: -1", "data.shuffle_buffer"),
    ("num_workers: -2", "data.num_workers"),
    ("pack: maybe", "data.pack"),
    ("epochs: 2", "data.epochs"),  # a loader-only field is not part of the YAML's data section
])
def test_a_bad_data_field_is_named_by_its_dotted_path(tmp_path, capsys, line, field):
    path = tmp_path / "train.yaml"
    path.write_text(f"data:\n  sources: [{{url: x.tar}}]\n  {line}\n")
    assert main(["train", "--config", str(path)]) == 2
    assert field in capsys.readouterr().err


def test_no_sources_is_named_for_the_yaml_and_for_the_loader():
    with pytest.raises(SchemaError, match=r"data\.sources"):
        from_dict(TrainConfig, {"data": {"sources": []}})
    with pytest.raises(SchemaError, match="sources"):
        LoaderConfig(sources=[])


def test_model_overrides_change_only_the_named_fields_of_the_preset(tmp_path):
    path = tmp_path / "speech.yaml"
    path.write_text("stage: speech\ndata: {sources: [{url: a.tar}]}\nmodel_size: tiny\n"
                    "model_overrides: {speech: {tokenizer: tok/speech_tokenizer_v2.onnx, speech_vocab: 6561}}\n")
    model = load_train_config(path).model_config(vocab_size=151_643)
    preset = tiny_model_config(vocab_size=151_680, speech=True)
    assert (model.speech.tokenizer, model.speech.speech_vocab) == ("tok/speech_tokenizer_v2.onnx", 6561)
    assert model.speech.hidden_size == preset.speech.hidden_size and model.llm == preset.llm
    assert model.vision == preset.vision and model.audio == preset.audio


@pytest.mark.parametrize(("stage", "overrides", "field"), [
    ("speech", "{speech: {speech_vocabb: 3}}", "model_overrides.speech.speech_vocabb"),
    ("speech", "{speech: {speech_vocab: many}}", "model_overrides.speech.speech_vocab"),
    ("speech", "{visionn: {layers: 2}}", "model_overrides.visionn"),
    ("sft", "{speech: {speech_vocab: 10}}", "model_overrides.speech"),
])
def test_a_bad_model_override_is_named_when_the_config_is_read(tmp_path, stage, overrides, field):
    path = tmp_path / "bad.yaml"
    path.write_text(f"stage: {stage}\ndata: {{sources: [{{url: a.tar}}]}}\nmodel_overrides: {overrides}\n")
    with pytest.raises(SchemaError) as err:
        load_train_config(path)
    assert err.value.field == field
