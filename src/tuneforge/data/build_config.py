"""The config of `tuneforge data build` (and of the single data steps, which read its sections):
sources, generators, augmentation, filters, mix and the preference step."""

from __future__ import annotations

from dataclasses import dataclass, field

from tuneforge.config import SEED
from tuneforge.data.augment import AugmentConfig
from tuneforge.data.ds2 import DS2Config
from tuneforge.data.evol_instruct import EvolConfig
from tuneforge.data.idea_mcts import IdeaMCTSConfig
from tuneforge.data.preferences import PreferenceConfig
from tuneforge.data.self_instruct import SelfInstructConfig
from tuneforge.data.tool_questions import ToolSynthConfig
from tuneforge.llm.config import LLMConfig
from tuneforge.models import EMBEDDED_MODEL


@dataclass
class ManualConfig:
    files: list[str] = field(default_factory=list, metadata={"help": "files (any format) or seed specs to import"})
    rating_key: str = field(default="rating", metadata={"help": "meta key holding a human rating"})
    rating_threshold: float = field(default=0.0, metadata={"help": "τ: keep records rated ≥ τ (0 = keep all)", "ge": 0})


@dataclass
class DistillStep:
    prompts: str = field(default="", metadata={"help": "prompts to answer with the teacher ('' = off)"})


@dataclass
class SelfInstructStep(SelfInstructConfig):
    enabled: bool = field(default=False, metadata={"help": "run Self-Instruct"})
    seeds: str = field(default="seed:train", metadata={"help": "seed tasks (our data, or a Self-Instruct seed file)"})


@dataclass
class EvolStep(EvolConfig):
    enabled: bool = field(default=False, metadata={"help": "run Evol-Instruct"})
    seeds: str = field(default="seed:train", metadata={"help": "instructions to evolve"})
    limit: int = field(default=20, metadata={"help": "evolve the first N seeds", "ge": 1})


@dataclass
class IdeaMCTSStep(IdeaMCTSConfig):
    enabled: bool = field(default=False, metadata={"help": "run IDEA-MCTS (a tree search over rewrites)"})
    seeds: str = field(default="seed:train", metadata={"help": "instructions to root the trees at"})
    limit: int = field(default=5, metadata={"help": "one tree for each of the first N seeds", "ge": 1})


@dataclass
class DS2Step(DS2Config):
    enabled: bool = field(default=False, metadata={"help": "run DS²-Instruct"})
    domains: list[str] = field(
        default_factory=lambda: ["healthcare"], metadata={"help": "domains to synthesise", "min_len": 1}
    )


@dataclass
class FilterConfig:
    min_response_words: int = field(default=1, metadata={"help": "drop records with shorter responses", "ge": 0})
    max_response_words: int = field(
        default=0, metadata={"help": "drop records with longer responses (0 = off)", "ge": 0}
    )
    format: bool = field(
        default=True,
        metadata={
            "help": "drop records with no instruction, template tokens "
            "in the text, or a response that repeats the instruction"
        },
    )
    safety: bool = field(
        default=False,
        metadata={
            "help": "drop risky requests answered without refusal, caution or a referral (tuneforge.safety detectors)"
        },
    )
    dedup: bool = field(default=True, metadata={"help": "remove exact and near duplicates"})
    dedup_threshold: float = field(default=0.7, metadata={"help": "Jaccard of word 5-grams", "ge": 0, "le": 1})
    decontaminate: list[str] = field(
        default_factory=lambda: ["seed:test"], metadata={"help": "evaluation sets to protect ([] = off)"}
    )
    ngram: int = field(default=13, metadata={"help": "decontamination n-gram length", "ge": 1})
    near_threshold: float = field(
        default=0.0,
        metadata={
            "help": "also find paraphrases of evaluation prompts: MiniLM cosine ≥ this is a near match, listed "
            "in the manifest (0 = off; 0.8 catches rewordings, see data/README.md)",
            "ge": 0,
            "le": 1,
        },
    )
    near_remove: bool = field(default=False, metadata={"help": "remove near matches instead of only reporting them"})
    score_sources: list[str] = field(
        default_factory=list,
        metadata={"help": "sources the judge and IFD score, e.g. [ds2, self_instruct] ([] = all; others pass)"},
    )
    judge: bool = field(default=False, metadata={"help": "LLM-judge quality scoring (uses llm.*)"})
    judge_threshold: float = field(
        default=6.0, metadata={"help": "keep records the judge rates ≥ this (1-10)", "ge": 1, "le": 10}
    )
    judge_drop_unparsed: bool = field(default=False, metadata={"help": "also drop records whose verdict is unreadable"})
    ifd: bool = field(default=False, metadata={"help": "IFD selection: loss with instruction ÷ loss without"})
    ifd_model: str = field(default=EMBEDDED_MODEL, metadata={"help": "causal LM that scores IFD"})
    ifd_max: float = field(default=1.0, metadata={"help": "drop records with IFD ≥ this", "gt": 0})
    ifd_top: float = field(
        default=1.0, metadata={"help": "then keep this fraction with the highest IFD", "gt": 0, "le": 1}
    )


@dataclass
class MixConfig:
    weights: dict[str, float] = field(
        default_factory=dict, metadata={"help": "source → weight ({} = keep all as they are)", "ge": 0}
    )
    ratio: float = field(default=1.0, metadata={"help": "α: keep M = α·N records after mixing", "gt": 0})
    seed: int = field(default=0, metadata={"help": "mixing seed", **SEED})


@dataclass
class BuildConfig:
    output_dir: str = field(default="runs/data", metadata={"help": "dataset directory"})
    llm: LLMConfig = field(default_factory=LLMConfig)
    manual: ManualConfig = field(default_factory=ManualConfig)
    distill: DistillStep = field(default_factory=DistillStep)
    self_instruct: SelfInstructStep = field(default_factory=SelfInstructStep)
    evol: EvolStep = field(default_factory=EvolStep)
    idea_mcts: IdeaMCTSStep = field(default_factory=IdeaMCTSStep)
    ds2: DS2Step = field(default_factory=DS2Step)
    tool_synth: ToolSynthConfig = field(default_factory=ToolSynthConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    preferences: PreferenceConfig = field(default_factory=PreferenceConfig)
