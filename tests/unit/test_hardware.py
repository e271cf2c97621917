import json

import pytest

from tuneforge import hardware
from tuneforge.errors import UnknownNameError
from tuneforge.hardware import decide_precision, resolve_dtype, resolve_precision

AVX2_ONLY = ("avx2", "fma")  # AMD EPYC (Zen 2/3) or an older Intel laptop
SAPPHIRE_RAPIDS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
ZEN4 = ("avx2", "avx512f", "avx512_bf16")


def _never_called():
    raise AssertionError("the probe must not run when the flags already rule bf16 out")


def test_avx2_only_cpu_gets_fp32_without_probing():
    choice = decide_precision("cpu", AVX2_ONLY, probe=_never_called)
    assert (choice.dtype, choice.precision) == ("float32", "fp32")
    assert "no native bf16" in choice.reason


@pytest.mark.parametrize("flags", [SAPPHIRE_RAPIDS, ZEN4])
def test_native_bf16_cpu_gets_bf16_when_the_probe_confirms(flags):
    choice = decide_precision("cpu", flags, probe=lambda: (600.0, 150.0))
    assert (choice.dtype, choice.precision) == ("bfloat16", "bf16")
    assert "600 vs fp32 150" in choice.reason


def test_flags_that_promise_bf16_lose_to_a_probe_that_measures_it_slow():
    # e.g. ATEN_CPU_CAPABILITY=avx2 on a Sapphire Rapids: the flags say AMX, the kernels emulate.
    choice = decide_precision("cpu", SAPPHIRE_RAPIDS, probe=lambda: (1.3, 158.0))
    assert choice.precision == "fp32" and "1 vs fp32 158" in choice.reason


def test_gpu_rule_follows_bf16_support():
    assert decide_precision("cuda", cuda_bf16=True).precision == "bf16"
    old = decide_precision("cuda", cuda_bf16=False)
    assert (old.dtype, old.precision) == ("float32", "fp32")


def test_explicit_settings_win_over_auto(monkeypatch):
    monkeypatch.setattr(hardware, "auto_precision", lambda device="auto": pytest.fail("auto was consulted"))
    assert resolve_dtype("bf16") == "bfloat16" and resolve_dtype("float32") == "float32"
    assert resolve_precision("bf16") == "bf16" and resolve_precision("fp32") == "fp32"


def test_auto_resolves_through_the_decision(monkeypatch):
    fake = hardware.PrecisionChoice("cpu", "float32", "fp32", "test")
    monkeypatch.setattr(hardware, "auto_precision", lambda device="auto": fake)
    assert resolve_dtype("auto") == "float32" and resolve_precision("auto") == "fp32"


def test_unknown_dtype_is_an_error_with_a_suggestion():
    with pytest.raises(UnknownNameError, match="bfloat16"):
        resolve_dtype("bfloat61")


def test_probe_result_is_cached_on_disk_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_CACHE", str(tmp_path))
    calls = []
    monkeypatch.setattr(hardware, "matmul_gflops", lambda dtype, *a: calls.append(dtype) or 10.0)
    assert hardware._cpu_probe() == (10.0, 10.0) and len(calls) == 2
    assert hardware._cpu_probe() == (10.0, 10.0) and len(calls) == 2  # read back, not measured again
    data = json.loads((tmp_path / "hardware.json").read_text())
    assert list(data.values())[0]["cpu"] == hardware.cpu_info().model
    other = "default" if hardware.os.environ.get("ATEN_CPU_CAPABILITY") == "avx2" else "avx2"
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", other)  # other kernels: another key, measured again
    hardware._cpu_probe()
    assert len(calls) == 4


def test_cpu_info_reads_flags_and_cores():
    info = hardware.cpu_info()
    assert info.model and info.physical_cores >= 1 and info.logical_cpus >= info.physical_cores
    assert set(info.flags) <= set(hardware.ISA_FLAGS)


def test_tuneforge_env_prints_cpu_isa_and_auto_choice(capsys):
    from tuneforge.cli import main

    assert main(["env", "--no-measure"]) == 0
    out = capsys.readouterr().out
    choice = hardware.auto_precision("auto")
    assert f"CPU: {hardware.cpu_info().model}" in out
    assert "ISA flags:" in out and f"Precision auto: {choice.precision}" in out
    assert "transformers" in out and "torch threads" in out


def test_train_config_rejects_unknown_precision_with_suggestion():
    from tuneforge.errors import ConfigError
    from tuneforge.train.loop import TrainConfig

    with pytest.raises(ConfigError, match="Did you mean: auto"):
        TrainConfig(precision="atuo")


def test_the_auto_choice_is_printed_once_when_work_starts_and_never_for_explicit_settings(monkeypatch, capsys):
    monkeypatch.setattr(hardware, "_decided", set())
    monkeypatch.setattr(hardware, "_announced", set())
    hardware.announce_precision("cpu")  # nothing chose `auto` yet: silent
    resolve_dtype("float32", "cpu")
    hardware.announce_precision("cpu")
    assert capsys.readouterr().err == ""
    choice = hardware.auto_precision("cpu")
    assert capsys.readouterr().err == "", "choosing is silent: a refused command prints only its error"
    hardware.announce_precision("cpu")
    hardware.announce_precision("cpu")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"tuneforge: precision auto -> {choice.precision} (model dtype {choice.dtype}) on cpu: {choice.reason}"
    ]
