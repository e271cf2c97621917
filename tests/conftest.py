"""Shared fixtures: a tiny random Llama + byte-level tokenizer built in-process, small records,
and the path of the real external data in ../shared/data (present on developer machines and CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneforge.records import Example, Message

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"{SHARED_DATA} is not present (it sits beside the checkout on CI and dev machines)")
    return SHARED_DATA


def make_examples(n: int = 8) -> list[Example]:
    domains = ["healthcare", "finance"]
    out = []
    for i in range(n):
        answer = " ".join(["Please consult a professional."] * (1 + i % 3))
        out.append(
            Example(
                messages=[Message("user", f"Question number {i}: what should I do?"), Message("assistant", answer)],
                id=f"ex-{i}",
                domain=domains[i % 2],
                source="test",
                meta={"kind": "fact"},
            )
        )
    return out


@pytest.fixture
def examples() -> list[Example]:
    return make_examples()


@pytest.fixture(scope="session")
def tiny_tok():
    from tuneforge.models import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture
def tiny_lm(tiny_tok):
    from tuneforge.models import tiny_model

    return tiny_model(tiny_tok, hidden=32, layers=2, seed=0)


@pytest.fixture(scope="session")
def native_bf16():
    """Skip a test of bf16 itself where this CPU would emulate bf16 (~70x slower than fp32)."""
    from tuneforge.hardware import auto_precision

    choice = auto_precision("cpu")
    if choice.precision != "bf16":
        pytest.skip(f"this CPU has no native bf16, so bf16 is not tested here: {choice.reason}")


@pytest.fixture
def tiny_demo(tmp_path, tiny_lm, tiny_tok):
    """`tiny_demo(*overrides)`: a demo run of the tiny model in seconds (fp32 on CPU, one step, one
    test item per domain, two new tokens); returns the run directory."""
    from tuneforge.config import load_config
    from tuneforge.demo import DemoConfig, run_demo

    tiny_lm.save_pretrained(tmp_path / "model")
    tiny_tok.save_pretrained(tmp_path / "model")

    def run(*overrides: str):
        base = [f"output_dir={tmp_path / 'run'}", f"model.name={tmp_path / 'model'}", "model.dtype=float32",
                "model.device=cpu", "train.steps=1", "train.precision=fp32", "data.test_per_domain=1",
                "generation.max_new_tokens=2"]  # fmt: skip
        return run_demo(load_config(DemoConfig, None, [*base, *overrides]))

    return run


@pytest.fixture(scope="session")
def external_calibration() -> dict:
    """`calibrate_external()` once per session: the learned detector on the independent set (~35 s on
    2 cores), which four tests read."""
    from tuneforge.safety.calibration import calibrate_external

    return calibrate_external()


@pytest.fixture(scope="session")
def calibration(external_calibration) -> dict:
    """`calibrate()`, its external part shared with `external_calibration`."""
    from tuneforge.safety.calibration import calibrate

    return {**calibrate(external=False), "external": external_calibration}
