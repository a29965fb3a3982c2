"""Facts: typed, short values, stable ids, spans inside the clip."""

from curators.facts import annotate_clip, brightness_label
from schemas.media import Clip, Transcript, TranscriptSegment, VisualFacts, Word


def video_clip() -> Clip:
    return Clip(clip_id="clip1", media_id="m", source_uri="/x/v.mp4", kind="video", start_s=10.0, end_s=14.5,
                media_path="/w/clip.mp4", frame_paths=["/w/f0.jpg"], frame_times_s=[11.0], audio_path="/w/a.wav")


def transcript() -> Transcript:
    words = [Word(word=w, start_s=s, end_s=s + 0.3, probability=0.9)
             for w, s in [(" The", 0.5), (" word", 0.8), (" is", 1.1), (" apple.", 1.4)]]
    segment = TranscriptSegment(text="The word is apple.", start_s=0.5, end_s=1.8, avg_logprob=-0.2,
                                no_speech_prob=0.01, words=words)
    return Transcript(clip_id="clip1", model_id="m", language="en", language_probability=1.0,
                      text="The word is apple.", segments=[segment])


def test_facts_of_a_narrated_video():
    visual = VisualFacts(clip_id="clip1", dominant_colors=["red", "blue"], mean_brightness=0.8, motion=0.05,
                         ocr_text="  APPLE \n")
    annotated = annotate_clip(video_clip(), transcript(), visual, {"title": "Demo  one"}, "ab" * 32)
    by_kind = {}
    for fact in annotated.facts:
        by_kind.setdefault(fact.kind, []).append(fact)
    values = {k: [f.value for f in v] for k, v in by_kind.items()}
    assert values == {"media_kind": ["video"], "duration": ["4.5"], "spoken_language": ["en"],
                      "spoken_text": ["The word is apple."], "spoken_keyword": ["apple"],
                      "dominant_color": ["red", "blue"], "brightness": ["bright"], "motion": ["moving"],
                      "on_screen_text": ["APPLE"], "metadata": ["title: Demo one"]}
    keyword = by_kind["spoken_keyword"][0]
    assert (keyword.start_s, keyword.end_s, keyword.source) == (1.4, 1.7, "transcript")
    assert by_kind["spoken_text"][0].start_s == 0.5
    assert len({f.fact_id for f in annotated.facts}) == len(annotated.facts)
    again = annotate_clip(video_clip(), transcript(), visual, {"title": "Demo  one"})
    assert [f.fact_id for f in again.facts] == [f.fact_id for f in annotated.facts]


def test_audio_clip_without_speech_has_only_metadata_facts():
    clip = Clip(clip_id="a", media_id="m", source_uri="/x/a.wav", kind="audio", start_s=0.0, end_s=2.0,
                media_path="/w/a.flac", audio_path="/w/a.wav")
    empty = Transcript(clip_id="a", model_id="m", language="en", language_probability=0.5, text="", segments=[])
    assert [f.kind for f in annotate_clip(clip, empty, None).facts] == ["media_kind", "duration"]
    assert [brightness_label(v) for v in (0.1, 0.5, 0.9)] == ["dark", "medium", "bright"]
