"""The media writers' config fields: a bad one is refused by name."""

import pytest

from schemas.config import CurateConfig, DialogueConfig
from schemas.validation import SchemaError, from_dict


@pytest.mark.parametrize("fields, bad", [
    ({"writer": "vlm_endpoint", "writer_model": "m"}, "endpoint_url"),
    ({"writer": "vlm_endpoint", "endpoint_url": "http://x/v1"}, "writer_model"),
    ({"writer": "local_vlm"}, "writer_model"),
    ({"writer": "local_vlm", "writer_model": "/m", "writer_audio": "input_audio"}, "writer_audio"),
    ({"writer_frames": 0}, "writer_frames"),
    ({"writer_max_tokens": 4}, "writer_max_tokens"),
])
def test_a_bad_writer_field_is_named(fields, bad):
    with pytest.raises(SchemaError, match=rf"^{bad}\b"):
        DialogueConfig(**fields)


def test_a_config_file_reaches_the_media_writer_fields():
    cfg = from_dict(CurateConfig, {"input": "in", "output": "out", "dialogue": {
        "writer": "vlm_endpoint", "writer_model": "Qwen/Qwen2.5-Omni-7B", "endpoint_url": "http://127.0.0.1:8000/v1",
        "writer_frames": 6, "writer_audio": "input_audio"}})
    assert (cfg.dialogue.writer_frames, cfg.dialogue.writer_audio, cfg.dialogue.writer_vision) == (6, "input_audio", True)


def test_the_memory_answerer_is_configured_in_memory_check_only():
    """``dialogue.validity_answerer`` (the old spelling of ``memory_check.answerer: writer``) is gone: a config
    naming it is refused like any unknown field, by its path."""
    with pytest.raises(SchemaError, match=r"^dialogue\.validity_answerer: unknown field for DialogueConfig"):
        from_dict(CurateConfig, {"input": "in", "output": "out", "dialogue": {"validity_answerer": "model"}})
    cfg = from_dict(CurateConfig, {"input": "in", "output": "out", "memory_check": {"answerer": "writer"},
                                   "dialogue": {"writer": "endpoint", "writer_model": "m",
                                                "endpoint_url": "http://127.0.0.1:1/v1"}})
    assert cfg.memory_check.answerer == "writer"
