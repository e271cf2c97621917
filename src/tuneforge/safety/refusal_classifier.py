"""The learned refusal / caution detector: the embedded sentence encoder (MiniLM) with a LoRA adapter
and a linear head over the (prompt, answer) pair plus the phrase rules' verdict, trained on the
hand-labelled answers — the calibration set and the independent set's `dev` split — and scored on
the independent set's `selection` and `test` splits, which it never saw (data/safety/README.md).

Why: phrase rules plateaued near 0.8 precision/recall on every fresh set of real answers, because
each set brought new wordings of the same decline. A classifier reads the whole opening and learns
those wordings from labelled answers; the rules' verdict is one of its inputs, so it starts from
what they get right.

    input   [CLS] prompt (first 400 chars) [SEP] answer [SEP], at most `max_length` (256) tokens:
            whole answers of 128 new tokens, so a closing referral is read
    encoder all-MiniLM-L6-v2 + LoRA (r, on every linear layer)   -> (B, T, 384)
    pool    mean over the attention mask                         -> (B, 384)
    head    Linear(384 + 3 -> 3) over [pooled, one-hot rule verdict]  -> logits (B, 3)

Trained on the one training loop (`train.loop.train_loop`) with a class-weighted cross-entropy
`Objective`. The shipped classifier (data/safety/refusal_classifier/) was made by
`tuneforge safety train-detector` with the defaults below; its `meta.json` names the digest of the
labelled rows and of the encoder it was trained on, and loading refuses a different encoder (a
stale head on other features would classify silently wrong).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from tuneforge.config import SEED
from tuneforge.embedded import EMBEDDED_ENCODER
from tuneforge.errors import ConfigError, DataError
from tuneforge.files import check_output_dir
from tuneforge.fingerprint import model_digest
from tuneforge.hardware import cpu_info
from tuneforge.models import load_encoder
from tuneforge.paths import shipped
from tuneforge.safety.refusal import classify
from tuneforge.train.loop import Objective, TrainConfig, train_loop

LABELS = ("refusal", "caution", "comply")
DETECTORS = ("classifier", "rules")
WEIGHTS_FILE = "classifier.safetensors"
MIN_ANSWER = 16  # answer tokens kept however long the prompt
META_FILE = "meta.json"


@dataclass
class DetectorTrainConfig:
    epochs: int = field(default=4, metadata={"help": "passes over the labelled answers", "ge": 1})
    batch_size: int = field(default=16, metadata={"help": "answers per optimizer step", "ge": 1})
    lr: float = field(default=5e-4, metadata={"help": "peak learning rate (LoRA and head)", "gt": 0})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank on every linear layer of the encoder", "ge": 1})
    max_length: int = field(default=256, metadata={"help": "tokens of prompt + answer (the answer is cut)", "ge": 1})
    class_weight_power: float = field(
        default=0.0, metadata={"help": "class weights (n / (3 n_c)) ** power; 0 = unweighted", "ge": 0}
    )
    seed: int = field(default=0, metadata={"help": "initialisation and data-order seed", **SEED})
    tail_tokens: int = field(
        default=0,
        metadata={
            "help": "also read the answer's last N tokens as a second sequence (0 = off): referrals come last",
            "ge": 0,
        },
    )

    def __post_init__(self):
        for name in ("epochs", "batch_size", "lora_r", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be ≥ 1, got {getattr(self, name)}")
        if self.tail_tokens < 0:
            raise ConfigError(f"tail_tokens must be ≥ 0, got {self.tail_tokens}")


@dataclass
class LabelledAnswer:
    prompt: str
    answer: str
    label: str  # refusal | caution | comply


def rows_digest(examples: list[LabelledAnswer]) -> str:
    """sha256 of the labelled rows, in order: names the exact data a classifier was trained on."""
    h = hashlib.sha256()
    for e in examples:
        h.update(json.dumps([e.prompt, e.answer, e.label], ensure_ascii=False).encode())
    return h.hexdigest()


class RefusalClassifier(torch.nn.Module):
    """Encoder + LoRA + head; `predict(prompts, answers)` gives one of LABELS per answer."""

    def __init__(self, encoder, tokenizer, cfg: DetectorTrainConfig):
        super().__init__()
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.encoder = get_peft_model(
            encoder,
            LoraConfig(
                r=cfg.lora_r,
                lora_alpha=2 * cfg.lora_r,
                target_modules=["query", "key", "value", "dense"],
                lora_dropout=0.1,
            ),
        )
        views = 2 if cfg.tail_tokens else 1
        self.head = torch.nn.Linear(views * encoder.config.hidden_size + len(LABELS), len(LABELS))

    def encode(self, prompts: list[str], answers: list[str]) -> dict[str, torch.Tensor]:
        # [CLS] prompt [SEP] answer [SEP], the answer cut to fit max_length (the tokenizer's
        # only_second truncation), built by hand because a prompt that alone fills max_length makes
        # the tokenizer raise: such a prompt keeps its first max_length - 3 - MIN_ANSWER tokens.
        tok, limit = self.tokenizer, self.cfg.max_length
        cls, sep, pad = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
        p_ids = tok([p[:400] for p in prompts], add_special_tokens=False)["input_ids"]
        a_ids = tok(answers, add_special_tokens=False)["input_ids"]
        rows, types = [], []
        for p, a in zip(p_ids, a_ids):
            p = p[: max(1, limit - 3 - MIN_ANSWER)]
            a = a[: max(0, limit - 3 - len(p))]
            rows.append([cls, *p, sep, *a, sep])
            types.append([0] * (len(p) + 2) + [1] * (len(a) + 1))
        ids, mask = _padded(rows, pad)  # (B, T)
        # the phrase rules' verdict, one-hot (B, 3)
        rules = torch.tensor([[float(classify(a, "", p) == lab) for lab in LABELS] for p, a in zip(prompts, answers)])
        out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": _padded(types, 0)[0], "rules": rules}
        if self.cfg.tail_tokens:  # [CLS] last tail_tokens tokens of the answer [SEP]: where referrals sit
            out["tail_ids"], out["tail_mask"] = _padded([[cls, *a[-self.cfg.tail_tokens :], sep] for a in a_ids], pad)
        return out

    def _pool(self, input_ids, attention_mask, token_type_ids=None) -> torch.Tensor:
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state  # (B, T, H)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, H)

    def forward(self, input_ids, attention_mask, token_type_ids, rules, tail_ids=None, tail_mask=None) -> torch.Tensor:
        views = [self._pool(input_ids, attention_mask, token_type_ids)]  # (B, H)
        if self.cfg.tail_tokens:
            views.append(self._pool(tail_ids, tail_mask))  # (B, H)
        return self.head(torch.cat([*views, rules.to(views[0].dtype)], -1))  # (B, 2H + 3) or (B, H + 3) -> (B, 3)

    @torch.no_grad()
    def probabilities(self, prompts: list[str], answers: list[str], batch_size: int = 32) -> torch.Tensor:
        """(N, 3) class probabilities, in LABELS order (fp32, eval mode)."""
        self.eval()
        device = self.head.weight.device  # trained on an accelerator, the model may still be there
        out = [
            self(
                **{
                    k: v.to(device)
                    for k, v in self.encode(prompts[i : i + batch_size], answers[i : i + batch_size]).items()
                }
            )
            .float()
            .softmax(-1)
            .cpu()
            for i in range(0, len(answers), batch_size)
        ]
        return torch.cat(out) if out else torch.zeros(0, len(LABELS))

    def predict(self, prompts: list[str], answers: list[str], batch_size: int = 32) -> list[str]:
        if len(prompts) != len(answers):
            raise ValueError(f"{len(prompts)} prompts for {len(answers)} answers")
        return [LABELS[k] for k in self.probabilities(prompts, answers, batch_size).argmax(-1).tolist()]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {n: p.detach().cpu().contiguous() for n, p in self.named_parameters() if p.requires_grad}


def _padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) ids and their attention mask."""
    width = max(map(len, rows))
    return (
        torch.tensor([r + [pad] * (width - len(r)) for r in rows]),
        torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
    )


def _batches(model: RefusalClassifier, examples: list[LabelledAnswer], cfg: DetectorTrainConfig) -> Iterator[dict]:
    """Endless, deterministic: one shuffle per epoch from `cfg.seed`."""
    rng = random.Random(cfg.seed)
    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        for i in range(0, len(order), cfg.batch_size):
            part = [examples[j] for j in order[i : i + cfg.batch_size]]
            enc = model.encode([e.prompt for e in part], [e.answer for e in part])
            yield {
                **enc,
                "labels": torch.tensor([LABELS.index(e.label) for e in part]),
                "num_tokens": enc["attention_mask"].sum(),
            }


def _objective(weights: torch.Tensor) -> Objective:
    def loss(model, batch: dict) -> torch.Tensor:
        logits = model(**{k: v for k, v in batch.items() if k not in ("labels", "num_tokens")})
        return torch.nn.functional.cross_entropy(
            logits.float(), batch["labels"], weight=weights.to(logits.device), reduction="sum"
        )

    return Objective("refusal-classifier", loss, lambda b: int(b["labels"].numel()))


def _check(examples: list[LabelledAnswer]) -> None:
    for k, e in enumerate(examples, 1):
        if e.label not in LABELS:
            raise DataError(f"example {k}: label {e.label!r} is not one of {LABELS}", field="refusal")
    missing = [lab for lab in LABELS if not any(e.label == lab for e in examples)]
    if missing:
        raise DataError(f"no labelled example of {missing}: the classifier needs each of {LABELS}")


def train_refusal_classifier(
    examples: list[LabelledAnswer],
    out_dir: str | Path,
    cfg: DetectorTrainConfig | None = None,
    sources: str = "",
    overwrite: bool = False,
) -> RefusalClassifier:
    """Train on `examples`, save the adapter + head and meta.json (data and encoder digests, the
    settings, time and CPU) to `out_dir`, and return the model. A directory that already holds a
    classifier is refused unless `overwrite`."""
    cfg = cfg or DetectorTrainConfig()
    _check(examples)
    out = Path(out_dir)
    # a folder of other files is refused before 20 minutes of training, not written into
    check_output_dir(out, "safety train-detector", adopt=[WEIGHTS_FILE, META_FILE, "train_log.jsonl"])
    if (out / META_FILE).exists():
        if not overwrite:
            raise ConfigError(
                f"{out} already holds a refusal classifier. Choose another --out, or pass --overwrite to replace it"
            )
        (out / META_FILE).unlink()  # until the new one is complete, the directory is no classifier
    st = load_encoder(EMBEDDED_ENCODER)
    encoder, tokenizer = st[0].auto_model, st.tokenizer
    encoder_digest = model_digest(encoder)
    model = RefusalClassifier(encoder, tokenizer, cfg)
    counts = [sum(e.label == lab for e in examples) for lab in LABELS]
    weights = torch.tensor([(len(examples) / (len(LABELS) * c)) ** cfg.class_weight_power for c in counts])
    steps = cfg.epochs * math.ceil(len(examples) / cfg.batch_size)
    loop_cfg = TrainConfig(
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=0.01,
        warmup_ratio=0.05,
        schedule="linear",
        precision="fp32",  # the same numbers on every CPU: the encoder is small, bf16 would gain little
        seed=cfg.seed,
        log_every=max(1, steps // 10),
    )
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    result = train_loop(model, _batches(model, examples, cfg), _objective(weights), loop_cfg, out / "train_log.jsonl")
    from safetensors.torch import save_file

    save_file(model.trainable_state(), str(out / WEIGHTS_FILE))
    meta = {
        "labels": list(LABELS),
        "config": asdict(cfg),
        "encoder": EMBEDDED_ENCODER,
        "encoder_digest": encoder_digest,
        "data_digest": rows_digest(examples),
        "data_sources": sources,
        "n_examples": len(examples),
        "label_counts": dict(zip(LABELS, counts)),
        "steps": steps,
        "final_loss": result.final_loss,
        "seconds": round(time.time() - start, 1),
        "cpu": cpu_info().model,
        "torch": torch.__version__,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return model.eval()


def shipped_classifier_dir() -> Path:
    return shipped("safety", "refusal_classifier")


def read_meta(path: str | Path | None = None) -> dict:
    d = Path(path) if path else shipped_classifier_dir()
    f = d / META_FILE
    if not f.exists():
        raise DataError(
            f"{d} is not a refusal classifier (no {META_FILE}). Train one with `tuneforge safety train-detector --out DIR`",
            path=str(d),
        )
    return json.loads(f.read_text(encoding="utf-8"))


def load_refusal_classifier(path: str | Path | None = None) -> RefusalClassifier:
    """The classifier saved in `path` (default: the shipped one). Refuses an encoder other than the
    one it was trained on."""
    from safetensors.torch import load_file

    d = Path(path) if path else shipped_classifier_dir()
    meta = read_meta(d)
    st = load_encoder(meta["encoder"])
    encoder = st[0].auto_model
    digest = model_digest(encoder)
    if digest != meta["encoder_digest"]:
        raise DataError(
            f"the refusal classifier in {d} was trained on encoder weights {meta['encoder_digest']}, but "
            f"{meta['encoder']} now loads as {digest}. Retrain it: `tuneforge safety train-detector --out DIR`",
            path=str(d / META_FILE),
            field="encoder_digest",
        )
    model = RefusalClassifier(encoder, st.tokenizer, DetectorTrainConfig(**meta["config"]))
    state = load_file(str(d / WEIGHTS_FILE))
    expected = set(model.trainable_state())
    if set(state) != expected:
        raise DataError(
            f"{d / WEIGHTS_FILE} holds {len(state)} tensors, the classifier expects {len(expected)} "
            f"(missing e.g. {sorted(expected - set(state))[:2]}). Retrain it",
            path=str(d / WEIGHTS_FILE),
        )
    model.load_state_dict(state, strict=False)
    return model.eval()


def _stamp(d: Path) -> tuple[int, int]:
    """When and how big the weights file is: a classifier retrained into the same directory is a new one."""
    st = (d / WEIGHTS_FILE).stat()
    return st.st_mtime_ns, st.st_size


@lru_cache(maxsize=4)
def _cached(path: str, stamp: tuple[int, int]) -> RefusalClassifier:
    return load_refusal_classifier(path)


def check_detector(detector: str) -> None:
    if detector not in DETECTORS and not (Path(detector) / META_FILE).exists():
        raise ConfigError(
            f"detector: {detector!r} is neither one of {DETECTORS} nor a directory holding a trained classifier "
            f"({META_FILE}). Use detector=classifier (the shipped one), detector=rules, or "
            "`tuneforge safety train-detector --out DIR` and detector=DIR"
        )


def refusal_verdicts(prompts: list[str], answers: list[str], detector: str = "classifier") -> list[str]:
    """refusal / caution / comply per answer: `rules` (the phrase rules, `refusal.classify`),
    `classifier` (the shipped learned detector) or the directory of one trained with
    `train_refusal_classifier`."""
    check_detector(detector)
    if detector == "rules":
        return [classify(a, "", p) for p, a in zip(prompts, answers)]
    d = (shipped_classifier_dir() if detector == "classifier" else Path(detector)).resolve()
    return _cached(str(d), _stamp(d)).predict(prompts, answers)


def detector_signature(detector: str = "classifier") -> str:
    """What a rate's detector was: `rules-v1`, or the classifier named by the digest of the data it
    was trained on (12 hex) and of its settings and weights (8 hex: other settings on the same data,
    e.g. max_length, give other verdicts and so another signature)."""
    if detector == "rules":
        return "tuneforge-rules-v1"
    d = shipped_classifier_dir() if detector == "classifier" else Path(detector)
    meta = read_meta(d)
    made = hashlib.sha256(
        (json.dumps(meta["config"], sort_keys=True) + _weights_digest(str(d / WEIGHTS_FILE), _stamp(d))).encode()
    ).hexdigest()
    return f"tuneforge-classifier-{meta['data_digest'][:12]}-{made[:8]}"


@lru_cache(maxsize=8)
def _weights_digest(path: str, stamp: tuple[int, int]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
