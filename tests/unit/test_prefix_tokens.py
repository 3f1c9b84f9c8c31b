"""PrefixTokens: the fixed prefix is tokenized once; a prefix whose ids do not join is never used."""

from __future__ import annotations

from promptless.lm.prefix_tokens import PrefixTokens

HEADER = "Given Question; write Answer.\n\n" + "Question: an example question\nAnswer: an example answer\n\n" * 8


def words(text: str, add_bos: bool) -> list[int]:
    """A toy tokenizer: one id per character, BOS = -1 (characters never merge, so every cut joins)."""
    return ([-1] if add_bos else []) + [ord(c) for c in text]


def test_after_two_prompts_only_the_suffix_is_tokenized():
    seen: list[str] = []

    def counting(text, add_bos):
        seen.append(text)
        return words(text, add_bos)

    tokens = PrefixTokens(counting)
    prompts = [HEADER + f"Question: q{i}\nAnswer:" for i in range(5)]
    for prompt in prompts:
        assert tokens(prompt) == words(prompt, True)  # always exactly what tokenizing the whole prompt gives
    assert tokens.reused == 3
    suffix = len("Question: q4\nAnswer:")
    assert all(len(text) <= suffix for text in seen[-3:])  # the last three calls tokenized only the suffix


def test_a_prefix_that_merges_across_the_cut_is_never_used():
    def merging(text, add_bos):
        """Merges '\\n\\nQ' into one token, so ids of (prefix, suffix) differ from those of the whole."""
        ids = words(text, add_bos)
        out, i = [], 0
        while i < len(ids):
            if ids[i : i + 3] == [10, 10, 81]:
                out.append(999)
                i += 3
            else:
                out.append(ids[i])
                i += 1
        return out

    tokens = PrefixTokens(merging)
    prompts = [HEADER + f"Question: q{i}\nAnswer:" for i in range(4)]
    for prompt in prompts:
        assert tokens(prompt) == merging(prompt, True)
    assert tokens.reused == 0
