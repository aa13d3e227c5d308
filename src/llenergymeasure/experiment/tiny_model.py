"""A small random-weight Llama-style causal LM, built offline, for tests, demos and benchmarks.

Its figures measure the harness, not any real model. The tokenizer is a byte-level BPE trained
here on a built-in corpus; weights come from a seeded initialisation, so a seed gives the same
model every time.

Run: `python -m llenergymeasure.experiment.tiny_model DEST [--layers N --hidden N]`
(`--context N`: its max_position_embeddings, 4096 by default).
"""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

_CORPUS = """\
Energy is the capacity to do work and is measured in joules. A watt is one joule per second.
Large language models generate text one token at a time; every step reads the weights again.
The measured window starts after the model is loaded and warmed up, and ends when the device
has finished the last batch. Throughput counts output tokens per second; latency counts the
time a request waits. The first token arrives after the prompt has been processed in one pass.
Temperature, clocks and power limits change how much energy the same work needs on a given day.
A fresh container per experiment keeps one configuration from leaking into the next, and the
image digest names exactly the software that ran. Cycles repeat the grid so that drift shows.
Batches of prompts share the weights read from memory, so larger batches cost less per token,
until the cache for keys and values fills the memory and the batch no longer fits at all.
The quick brown fox jumps over the lazy dog while the river runs past the old mill and hills.
Numbers such as 0 1 2 3 4 5 6 7 8 9 10 100 1000 appear in tables, dates and measurements too.
"""

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
DEFAULT_VOCAB = 512


# Role markers in plain text: enough for a server to apply a template to chat requests.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def _train_tokenizer(vocab: int, context: int):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeating the corpus lets merges reach the requested vocabulary on so little text.
    tok.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        padding_side="left",
        model_max_length=context,
    )


def _make_readable(root: Path) -> None:
    """chmod a+rX: containers run as another uid and must read what the host built."""
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        if path.is_dir():
            extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        os.chmod(path, mode | extra)


def make_tiny_model(
    dest: Path,
    *,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    vocab: int = DEFAULT_VOCAB,
    context: int = 4096,
    seed: int = 0,
) -> Path:
    """Build and save the model and tokenizer into `dest`; returns `dest`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab, context)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(dest)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(dest)
    _make_readable(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a random-weight Llama-style model offline.")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=DEFAULT_VOCAB)
    parser.add_argument("--context", type=int, default=4096, help="max_position_embeddings")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = make_tiny_model(
        args.dest,
        layers=args.layers,
        hidden=args.hidden,
        heads=args.heads,
        vocab=args.vocab,
        context=args.context,
        seed=args.seed,
    )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
