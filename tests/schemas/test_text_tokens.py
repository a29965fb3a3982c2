"""Text token counts: the Qwen tokenizer training encodes with, counted the way the chat template encodes text."""

import pytest

from schemas import text_tokens
from schemas.text_tokens import count_text_tokens


def test_hello_world_is_two_qwen_tokens():
    assert count_text_tokens("Hello world") == 2  # [9707, 1879]; four characters a token guessed 4
    assert count_text_tokens("1234") == 4  # digits one by one; the guess said 1
    assert count_text_tokens("") == 0


@pytest.mark.parametrize("text", ["Hello world", "café naïve  12345\n\n\tend", "日本語のテキスト", "e\u0301t\u00e9",
                                  "<|im_start|> literal <img>", "thinking <think> aloud", "What colour was it?"])
def test_count_is_the_length_of_what_the_chat_template_encodes(tokenizer, text):
    from training.chat_template import text_encoder

    assert count_text_tokens(text) == len(text_encoder(tokenizer)(text))


def test_loaded_once_from_the_disk_cache(monkeypatch):
    """Once converted, a fresh load reads the cache and never converts again; counting reuses one loaded encoder."""
    count_text_tokens("warm")  # converted (when the cache is cold) and loaded

    def refuse(path):
        raise AssertionError("converted again")

    monkeypatch.setattr(text_tokens, "convert_qwen_tokenizer", refuse)
    assert text_tokens.load_qwen_tokenizer().encode("Hello world") == [9707, 1879]
    assert text_tokens._text_encoder() is text_tokens._text_encoder()


@pytest.fixture(scope="module")
def tokenizer():
    from training.tokenizer import load_tokenizer

    return load_tokenizer()
