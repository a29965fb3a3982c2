"""The run ledger: latest entry wins, failed entries are forgotten on retry, keys follow the media settings."""

import dataclasses

from pipelines.media_resume import media_config_hash
from pipelines.run_ledger import LedgerEntry, RunLedger
from schemas.config import CurateConfig


def test_later_batches_win_and_forget_failed_keeps_the_rest(tmp_path):
    ledger = RunLedger(tmp_path)
    ledger.record([LedgerEntry(item="a", uri="a", stage="media", status="failed", error_class="TimeoutError"),
                   LedgerEntry(item="b", uri="b", stage="media", status="done", result="[]")])
    ledger.record([LedgerEntry(item="c", uri="c", stage="media", status="failed", error_class="RayActorError")])
    ledger.record([LedgerEntry(item="a", uri="a", stage="media", status="done", result="[]")])
    assert {k: e.status for k, e in ledger.entries().items()} == {"a": "done", "b": "done", "c": "failed"}
    assert ledger.forget_failed() == 1
    assert {k: e.status for k, e in ledger.entries().items()} == {"a": "done", "b": "done"}


def test_media_results_are_keyed_by_every_media_setting_but_not_dialogue_ones():
    base = CurateConfig(input="in", output="out")
    assert media_config_hash(base) == media_config_hash(
        dataclasses.replace(base, dialogue=dataclasses.replace(base.dialogue, max_turns=12)))
    for section, change in (("probe", {"max_duration_s": 60.0}), ("decode", {"frames_per_clip": 4}),
                            ("asr", {"beam_size": 2})):
        changed = dataclasses.replace(base, **{section: dataclasses.replace(getattr(base, section), **change)})
        assert media_config_hash(changed) != media_config_hash(base), section
    changed = dataclasses.replace(base, visual=dataclasses.replace(base.visual, ocr=False))
    assert media_config_hash(changed) != media_config_hash(base)  # OCR changes the facts
