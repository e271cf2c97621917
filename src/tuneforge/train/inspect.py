"""`tuneforge train inspect`: training examples rendered as the model sees them, the target text
between «guillemets», with token and target counts."""

from __future__ import annotations

from tuneforge.chat_template import set_chat_template, tool_layout
from tuneforge.models import load_tokenizer
from tuneforge.ollama_json import ollama_tool
from tuneforge.records import Example, Message
from tuneforge.tokenisation import encode_examples, target_spans
from tuneforge.train.context import load_training_mix, one_source
from tuneforge.train.objectives import entry


def inspect_examples(
    examples: list[Example], tokenizer, mask: str = "assistant", max_length: int = 1024, reasoning: str = "train"
) -> str:
    """Render examples as the model sees them (tools, calls, results and traces in the layout
    `chat_template.tool_layout` names), target text between «guillemets», with counts."""
    out = []
    for ex in examples:
        text, spans = target_spans(ex, tokenizer, mask, reasoning)
        marked, last = [], 0
        for a, b in spans:
            marked += [text[last:a], "«", text[a:b], "»"]
            last = b
        marked.append(text[last:])
        enc, _ = encode_examples([ex], tokenizer, max_length, mask, reasoning)
        layout = tool_layout(tokenizer)
        tools = f", {len(ex.tools)} tools in the {layout} layout" if ex.tools else ""
        out.append(
            f"── {ex.id or 'example'}: {len(enc[0].input_ids)} tokens, {enc[0].n_targets} targets "
            f"(mask={mask}, reasoning={reasoning}{tools})\n{''.join(marked)}"
        )
        unshown = [k for t in ex.tools for k in ollama_tool(t)[1]] if layout == "hermes" else []
        if unshown:  # validated against, but not in the prompt: Ollama drops them too (ollama_json)
            out.append(f"   schema keys the Hermes layout does not show the model: {', '.join(sorted(set(unshown)))}")
    return "\n".join(out)


def inspect_run(cfg, n: int = 2) -> str:
    """The first `n` training examples of a TrainRunConfig as the model will see them (for an
    objective on preference pairs, the chosen conversation: its last answer is the target)."""
    from tuneforge.data.seed import load_pairs

    tok = set_chat_template(load_tokenizer(cfg.model.name), cfg.model.chat_template, cfg.model.eos_token)
    if entry(cfg.objective.name).data == "pairs":
        pairs = load_pairs(one_source(cfg.data.train))[:n]
        examples = [Example(messages=[*p.prompt, Message("assistant", p.chosen)], id=f"{p.id} (chosen)") for p in pairs]
        return inspect_examples(examples, tok, "last", cfg.train.max_length)
    return inspect_examples(
        load_training_mix(cfg.data, cfg.train.seed)[:n], tok, cfg.train.mask, cfg.train.max_length, cfg.train.reasoning
    )
