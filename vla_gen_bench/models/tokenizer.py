"""Text tokenizer for OpenVLA: reads a checkpoint's ``tokenizer.json`` directly, and builds a small one offline.

Reading ``tokenizer.json`` with the ``tokenizers`` library (not a transformers tokenizer class) keeps the exact
normaliser / pre-tokeniser / BPE model the checkpoint was trained with, whatever transformers version is installed.
Only folders without ``tokenizer.json`` (SentencePiece ``tokenizer.model`` only) go through
``transformers.AutoTokenizer``.

The offline tokenizer is Llama-style: ``<unk>``=0, ``<s>``=1, ``</s>``=2, 256 byte-fallback tokens (so every string
encodes), a BPE vocabulary trained on a small built-in corpus of manipulation instructions, ``<unused_*>`` filler,
and the last 256 base ids reserved for action tokens (``<action_*>``, never produced from text). ``<PAD>`` is an added
token right after the base vocabulary, as OpenVLA's conversion adds it after Llama-2's 32000 tokens. With Llama-2's
32000-token size the word-start piece ``"▁"`` sits at Llama-2's id 29871, the id the official ``predict_action``
appends to every prompt; smaller vocabularies (the tiny presets, which load in vgb only) keep it where BPE training
put it.

``tokenizer.json`` is written with BPE merges as ``"a b"`` strings, the form tokenizers 0.19 (the official OpenVLA
stack) and newer versions both read (:func:`string_merges`); tokenizers >= 0.20 itself saves ``["a", "b"]`` pairs, which 0.19 rejects
(``data did not match any variant of untagged enum ModelWrapper``).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROMPT_TEMPLATE = "In: What action should the robot take to {instruction}?\nOut:"
SEPARATOR = "\u2581"  # SentencePiece's word-start piece: Llama-2 id 29871, the token after "Out:" in training
LLAMA2_VOCAB_SIZE = 32000
LLAMA2_SEPARATOR_ID = 29871  # what the official predict_action appends when a prompt does not end in it

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class TokenizerError(ValueError):
    """A tokenizer folder that is missing or does not fit the model."""


def format_prompt(instruction: str) -> str:
    """OpenVLA's inference prompt; the instruction is lower-cased as in OpenVLA's evaluation code."""
    return PROMPT_TEMPLATE.format(instruction=instruction.strip().lower())


@dataclass
class TextTokenizer:
    """The subset of a tokenizer OpenVLA needs: prompt ids with BOS and the separator, special ids."""

    backend: Any  # tokenizers.Tokenizer, or a transformers tokenizer for SentencePiece-only folders
    bos_token: str = "<s>"
    eos_token: str = "</s>"
    pad_token: str = "<PAD>"
    unk_token: str = "<unk>"

    def __post_init__(self) -> None:
        for name in ("bos_token", "eos_token", "pad_token"):
            if self.token_to_id(getattr(self, name)) is None:
                raise TokenizerError(f"tokenizer has no {name} {getattr(self, name)!r}")
        if self.token_to_id(SEPARATOR) is None:
            raise TokenizerError(f"tokenizer has no word-start token {SEPARATOR!r} (Llama-2 id 29871)")

    # --- ids -------------------------------------------------------------------------------------------------------
    def token_to_id(self, token: str) -> int | None:
        if hasattr(self.backend, "token_to_id"):
            return self.backend.token_to_id(token)
        i = self.backend.convert_tokens_to_ids(token)
        return None if i == self.backend.unk_token_id and token != self.backend.unk_token else i

    @property
    def vocab_size(self) -> int:
        """Base vocabulary without added tokens (32000 for Llama-2; ``<PAD>`` is the first id after it)."""
        if hasattr(self.backend, "get_vocab_size"):
            return self.backend.get_vocab_size(with_added_tokens=False)
        return self.backend.vocab_size

    @property
    def bos_token_id(self) -> int:
        return self.token_to_id(self.bos_token)  # type: ignore[return-value]

    @property
    def eos_token_id(self) -> int:
        return self.token_to_id(self.eos_token)  # type: ignore[return-value]

    @property
    def pad_token_id(self) -> int:
        return self.token_to_id(self.pad_token)  # type: ignore[return-value]

    @property
    def separator_id(self) -> int:
        return self.token_to_id(SEPARATOR)  # type: ignore[return-value]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        if hasattr(self.backend, "get_vocab_size"):
            return list(self.backend.encode(text, add_special_tokens=False).ids)
        return list(self.backend.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(list(ids))

    def prompt_ids(self, instruction: str) -> list[int]:
        """``[BOS] + ids(prompt) + [separator]``: what OpenVLA's ``predict_action`` feeds the language model.

        OpenVLA appends token 29871 when the tokenized prompt does not already end in it, which reproduces the
        training tokenization of ``"...Out: " + action tokens``.
        """
        ids = [self.bos_token_id, *self.encode(format_prompt(instruction))]
        if ids[-1] != self.separator_id:
            ids.append(self.separator_id)
        return ids

    # --- files -----------------------------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, path: str | Path) -> TextTokenizer:
        """Load from a checkpoint folder (``tokenizer.json``, else ``tokenizer.model`` via transformers)."""
        path = Path(path)
        special = _special_tokens(path)
        if (path / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            try:
                backend = Tokenizer.from_file(str(path / "tokenizer.json"))
            except Exception as e:  # tokenizers raises a bare Exception on a malformed file
                raise TokenizerError(f"{path / 'tokenizer.json'} cannot be read: {e}") from e
            return cls(backend, **special)
        if (path / "tokenizer.model").is_file():
            from vla_gen_bench._compat import ensure_torchvision

            ensure_torchvision()
            from transformers import AutoTokenizer

            return cls(AutoTokenizer.from_pretrained(str(path)), **special)
        raise TokenizerError(
            f"{path} has no tokenizer (expected tokenizer.json, or tokenizer.model); copy the tokenizer files of the "
            "checkpoint into the folder"
        )

    def save(self, path: str | Path) -> None:
        """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``special_tokens_map.json``.

        The config names ``PreTrainedTokenizerFast``, so ``transformers.AutoTokenizer`` loads the folder too (and the
        official ``PrismaticProcessor``, which gets ``input_ids`` and ``attention_mask`` from it, as from Llama's).
        """
        if not hasattr(self.backend, "save"):  # a transformers tokenizer (SentencePiece-only folders)
            self.backend.save_pretrained(str(path))
            f = Path(path) / "tokenizer.json"
            if f.is_file():
                d = json.loads(f.read_text(encoding="utf-8"))
                f.write_text(
                    json.dumps(string_merges(d), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
                )
            return
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "tokenizer.json").write_text(tokenizer_json(self.backend), encoding="utf-8")
        special = {
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "unk_token": self.unk_token,
            "pad_token": self.pad_token,
        }
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            **special,
            "add_bos_token": True,
            "add_eos_token": False,
            "padding_side": "left",
            "model_max_length": 2048,
            "clean_up_tokenization_spaces": False,
            # as Llama's tokenizer: no token_type_ids, which the official processor would pass on to generate()
            "model_input_names": ["input_ids", "attention_mask"],
        }
        (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        (path / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def _special_tokens(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        f = path / name
        if not f.is_file():
            continue
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise TokenizerError(f"{f} is not valid JSON: {e}") from e
        for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
            v = d.get(key)
            if isinstance(v, dict):  # AddedToken serialised as {"content": ...}
                v = v.get("content")
            if isinstance(v, str) and key not in out:
                out[key] = v
    return out


def tokenizer_json(backend: Any) -> str:
    """``tokenizer.json`` text of a ``tokenizers.Tokenizer``, with BPE merges as ``"a b"`` strings."""
    return json.dumps(string_merges(json.loads(backend.to_str())), indent=2, ensure_ascii=False) + "\n"


def string_merges(d: dict[str, Any]) -> dict[str, Any]:
    """Rewrite the BPE merges of a ``tokenizer.json`` dict as ``"a b"`` strings (in place; returns ``d``).

    Left as ``["a", "b"]`` pairs when a part is empty or holds a space, which the string form cannot express; such
    a file does not load in tokenizers 0.19 (:func:`~vla_gen_bench.models.checkpoint.official_format_problems` says
    so), and no Llama tokenizer has one.
    """
    model = d.get("model") or {}
    merges = model.get("merges")
    if model.get("type") != "BPE" or not merges:
        return d
    pairs = [m.split(" ") if isinstance(m, str) else list(m) for m in merges]
    if all(len(p) == 2 and all(x and " " not in x for x in p) for p in pairs):
        model["merges"] = [" ".join(p) for p in pairs]
    return d


# --- offline tokenizer ---------------------------------------------------------------------------------------------
_VERBS = ["put", "place", "move", "pick up", "lift", "push", "stack", "set", "drop", "bring", "slide", "grab"]
_COLORS = [
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "white", "black", "teal", "brown", "gray",
    "gold", "silver", "wooden", "metal", "plastic", "small", "large", "striped", "checkered", "dark", "light",
]  # fmt: skip
_OBJECTS = [
    "cube", "block", "ball", "sphere", "cylinder", "can", "mug", "cup", "bottle", "carrot", "banana", "apple",
    "eggplant", "spoon", "fork", "knife", "sponge", "box", "star block", "dumbbell", "arch", "pyramid", "cone",
    "ring", "triangle", "bowl", "toy", "lemon", "pepper", "corn", "towel", "marker", "pen", "bar", "disk",
]  # fmt: skip
_PLACES = [
    "plate", "tray", "placemat", "cutting board", "napkin", "frying pan", "board", "coaster", "dish", "towel",
    "tile", "notepad", "tablet", "chess board", "disk", "baking sheet", "mouse pad", "basket", "bowl", "table",
    "shelf", "drawer", "sink", "stove", "box", "pot", "pan", "left", "right", "front", "back", "center",
]  # fmt: skip
_PREPS = ["on", "onto", "in", "into", "to", "near", "next to", "on top of", "inside", "beside"]


def builtin_corpus() -> list[str]:
    """A few thousand instruction-like lines (deterministic), used to train the offline tokenizer."""
    lines = []
    for i, (verb, color, obj) in enumerate(itertools.product(_VERBS, _COLORS, _OBJECTS)):
        place = _PLACES[i % len(_PLACES)]
        prep = _PREPS[i % len(_PREPS)]
        pcolor = _COLORS[(i * 7) % len(_COLORS)]
        lines.append(format_prompt(f"{verb} the {color} {obj} {prep} the {pcolor} {place}") + " ")
    return lines


def build_tokenizer(vocab_size: int = 1024, n_action_bins: int = 256, learned: int = 4096) -> TextTokenizer:
    """Train a Llama-style BPE tokenizer offline (about 0.2 s).

    Args:
        vocab_size: base vocabulary (the action tokens are its last ``n_action_bins`` ids); 32000 gives Llama-2's
            special ids, action-id range and separator id (``"▁"`` = 29871), as the official OpenVLA code expects.
        n_action_bins: number of action tokens.
        learned: most entries the BPE trainer may use (specials, 256 bytes, characters and merges); the rest of the
            non-action vocabulary is ``<unused_*>`` filler.

    Returns:
        A tokenizer with ``<PAD>`` added at id ``vocab_size``.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    learned = min(learned, vocab_size - n_action_bins)
    if learned < len(specials) + len(byte_tokens) + 64:
        raise TokenizerError(f"vocab_size {vocab_size} is too small for {n_action_bins} action tokens")
    trainer = trainers.BpeTrainer(
        vocab_size=learned,
        special_tokens=specials + byte_tokens,
        initial_alphabet=[SEPARATOR],
        show_progress=False,
    )
    draft = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    draft.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SEPARATOR, prepend_scheme="first")
    draft.train_from_iterator(builtin_corpus(), trainer=trainer)
    state = json.loads(draft.to_str())["model"]
    vocab: dict[str, int] = dict(state["vocab"])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    n_text = len(vocab)
    for i in range(vocab_size - n_action_bins - n_text):
        vocab[f"<unused_{i}>"] = n_text + i
    for i in range(n_action_bins):
        vocab[f"<action_{i}>"] = vocab_size - n_action_bins + i
    if vocab_size == LLAMA2_VOCAB_SIZE and LLAMA2_SEPARATOR_ID < vocab_size - n_action_bins:
        # "▁" trades ids with the token at Llama-2's 29871 (a filler), where the official predict_action expects it
        filler = next(t for t, i in vocab.items() if i == LLAMA2_SEPARATOR_ID)
        vocab[filler], vocab[SEPARATOR] = vocab[SEPARATOR], LLAMA2_SEPARATOR_ID
    assert sorted(vocab.values()) == list(range(vocab_size))

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SEPARATOR, prepend_scheme="first")
    tok.decoder = decoders.Sequence(
        [
            decoders.Metaspace(replacement=SEPARATOR, prepend_scheme="first"),
            decoders.ByteFallback(),
            decoders.Fuse(),
        ]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_special_tokens([AddedToken("<PAD>", special=True, normalized=False)])
    # Llama's template: BOS first. TextTokenizer adds BOS itself; this is for transformers.AutoTokenizer users.
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    return TextTokenizer(tok)
