"""An LLM client over a transformers model in this process (the embedded SmolLM2 by default).

Batched generation with a KV cache and left padding; prompts are sorted by length so a batch wastes
little compute on padding; `n` samples per prompt via num_return_sequences; stop strings cut the
completion (transformers' `stop_strings` ends decoding early, the cut makes it exact).
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from tuneforge.fingerprint import model_digest
from tuneforge.generation import generate_batch
from tuneforge.llm.client import Conversation, Sampling, cut_at_stop


class LocalLLM:
    def __init__(self, model, tokenizer, name: str, batch_size: int = 16):
        self.model, self.tokenizer, self.name, self.batch_size = model, tokenizer, name, batch_size
        self.model.eval()
        self.dtype = str(model.dtype).removeprefix("torch.")
        # Cache identity: the weights themselves (a retrained model at the same path answers
        # differently) and their dtype (bf16 and fp32 round differently).
        self.cache_id = f"{name}@{self.dtype}#{model_digest(model)}"

    @classmethod
    def load(
        cls, name: str = "smollm2-135m-instruct", dtype: str = "auto", device: str = "auto", batch_size: int = 16
    ) -> LocalLLM:
        from tuneforge.models import load_model

        model, tok = load_model(name, dtype, "sdpa", device)
        return cls(model, tok, name, batch_size)

    def chat(self, conversations: list[Conversation], sampling: Sampling) -> list[list[str]]:
        if sampling.tools or any("tool_calls" in m or m.get("role") == "tool" for c in conversations for m in c):
            from tuneforge.chat_template import render_chat
            from tuneforge.records import Message

            prompts = [
                render_chat(
                    self.tokenizer, [Message.from_dict(m) for m in c], sampling.tools, add_generation_prompt=True
                )
                for c in conversations
            ]
        else:
            prompts = [
                self.tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations
            ]
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out: list[list[str]] = [[] for _ in prompts]
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            for i, texts in zip(idx, self._generate([prompts[i] for i in idx], sampling)):
                out[i] = texts
        return out

    @torch.inference_mode()
    def choice_probs(self, conversations: list[Conversation], prefix: str, choices: list[str]) -> list[list[float]]:
        """P(next token = choice) after the assistant turn has been started with `prefix`, for each
        conversation (not renormalised: the sum says how much the model meant to pick a choice).
        Each choice must be one token of this tokenizer."""
        from tuneforge.errors import ConfigError

        tok = self.tokenizer
        ids = [tok(c, add_special_tokens=False).input_ids for c in choices]
        if any(len(i) != 1 for i in ids):
            raise ConfigError(f"choices {choices} are not single tokens of {self.name}'s tokenizer")
        ids = [i[0] for i in ids]
        prompts = [
            tok.apply_chat_template(
                c + [{"role": "assistant", "content": prefix}], tokenize=False, continue_final_message=True
            )
            for c in conversations
        ]
        out: list[list[float]] = []
        side, tok.padding_side = tok.padding_side, "left"
        try:
            for s in range(0, len(prompts), self.batch_size):
                enc = tok(
                    prompts[s : s + self.batch_size], return_tensors="pt", padding=True, add_special_tokens=False
                ).to(self.model.device)
                probs = self.model(**enc).logits[:, -1].float().softmax(-1)
                out += probs[:, ids].tolist()
        finally:
            tok.padding_side = side
        return out

    def _generate(self, prompts: list[str], sampling: Sampling) -> list[list[str]]:
        if sampling.temperature > 0:
            decode: dict[str, Any] = dict(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            torch.manual_seed(sampling.seed)
        else:
            decode = dict(do_sample=False, temperature=None, top_p=None, top_k=None)
        n = sampling.n
        with tqdm(
            total=len(prompts) * n, desc=f"  decoding ({self.name})", unit="seq", leave=False, disable=None
        ) as bar:
            texts, _ = generate_batch(
                self.model,
                self.tokenizer,
                prompts,
                sampling.max_new_tokens,
                decode,
                n=n,
                stop_strings=sampling.stop or None,
                bar=bar,
                repetition_penalty=sampling.repetition_penalty,
            )
        texts = [cut_at_stop(t, sampling.stop).strip() for t in texts]
        return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]
