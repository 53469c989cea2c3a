"""A 16-bit --precision the processors would emulate is named in a warning by training and by loading a run."""

import logging

import pytest

import tfvae
from tfvae.train import hardware, optimizers

AVX2_ONLY = frozenset({"fpu", "sse2", "avx", "avx2", "fma", "f16c"})  # an AMD EPYC (Zen 3) seen here


def test_cpu_flags_reads_the_x86_flags_and_arm_features_lines_and_is_none_without_the_file(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n"
                   "flags\t\t: fpu\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd asimdhp bf16\n")
    assert hardware.cpu_flags(str(x86)) == {"fpu", "avx2", "avx512_bf16"}
    assert hardware.cpu_flags(str(arm)) == {"fp", "asimd", "asimdhp", "bf16"}
    assert hardware.cpu_flags(str(tmp_path / "absent")) is None


def test_every_16_bit_precision_has_its_native_instructions_listed():
    assert set(hardware.NATIVE_CPU_FLAGS) == set(optimizers.PRECISIONS) - {"float32"}


@pytest.mark.parametrize("precision,cpu,gpus,emulated", [
    ("mixed_bfloat16", AVX2_ONLY, (), True),
    ("mixed_bfloat16", AVX2_ONLY | {"avx512f", "avx512_bf16"}, (), False),
    ("mixed_bfloat16", AVX2_ONLY | {"amx_bf16"}, (), False),
    ("mixed_bfloat16", frozenset({"fp", "asimd", "bf16"}), (), False),
    ("mixed_float16", AVX2_ONLY | {"avx512_bf16"}, (), True),  # bfloat16 instructions do not make float16 native
    ("mixed_float16", AVX2_ONLY | {"avx512_fp16"}, (), False),
    ("float32", AVX2_ONLY, (), False),
    ("mixed_bfloat16", None, (), False),  # unknown CPU: no claim
    ("mixed_bfloat16", AVX2_ONLY, ((8, 0),), False),  # the networks run on the GPU
    ("mixed_bfloat16", AVX2_ONLY | {"avx512_bf16"}, ((8, 6), (7, 5)), True),
    ("mixed_float16", AVX2_ONLY, ((7, 0),), False),
    ("mixed_float16", AVX2_ONLY, ((6, 1),), True),
    ("mixed_float16", AVX2_ONLY, None, False),  # GPUs of unknown capability: no claim
])
def test_emulation_warning_is_given_exactly_when_no_processor_in_use_has_the_16_bit_instructions(
        precision, cpu, gpus, emulated):
    message = hardware.emulation_warning(precision, cpu, gpus)
    assert (message is not None) == emulated, message
    if emulated:
        assert message.startswith(f"--precision={precision} is emulated on ") and "--precision=float32" in message
        assert "\n" not in message


def test_emulation_warning_names_the_missing_instructions_or_the_slow_gpus():
    assert "without amx_bf16 or avx512_bf16 or bf16 instructions" in hardware.emulation_warning(
        "mixed_bfloat16", AVX2_ONLY)
    assert "GPU compute capability 7.5 (native from 8.0)" in hardware.emulation_warning(
        "mixed_bfloat16", AVX2_ONLY, ((8, 6), (7, 5)))


def test_only_the_gpus_a_run_computes_on_are_judged():
    visible = ["/physical_device:GPU:0", "/physical_device:GPU:1", "/physical_device:GPU:2"]
    capability = {"/physical_device:GPU:0": (7, 5), "/physical_device:GPU:1": (8, 0), "/physical_device:GPU:2": (8, 6)}

    def details(gpu):
        return {"compute_capability": capability[gpu]}

    def judged(devices):
        return hardware.gpu_capabilities(devices, visible, details)

    assert judged(None) == ((7, 5), (8, 0), (8, 6))
    assert judged(("/job:localhost/replica:0/task:0/device:GPU:1", "/job:localhost/replica:0/task:0/device:GPU:2")) \
        == ((8, 0), (8, 6))
    assert hardware.emulation_warning("mixed_bfloat16", AVX2_ONLY, judged(("/device:GPU:1", "/device:GPU:2"))) is None
    assert hardware.emulation_warning("mixed_bfloat16", AVX2_ONLY, judged(None)) is not None  # the T4-like GPU:0
    # A run placed on the CPU of a GPU machine is judged by its CPU.
    assert judged(("/job:localhost/replica:0/task:0/device:CPU:0",)) == ()
    assert hardware.emulation_warning("mixed_bfloat16", AVX2_ONLY, judged(("/device:CPU:0",))) is not None
    assert hardware.gpu_capabilities(("/device:GPU:0",), visible, lambda gpu: {}) is None  # unknown: no claim


def test_training_and_loading_a_bfloat16_run_warn_on_a_cpu_without_bfloat16_instructions(
        tmp_path, tiny_idx_dir, monkeypatch, caplog):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: AVX2_ONLY)
    monkeypatch.setattr(hardware, "_gpu_capabilities", lambda device_names=None: ())
    config = tfvae.TrainConfig(dataset="idx", data_dir=tiny_idx_dir, hidden_units=(8,), latent_dim=2, epochs=1,
                               batch_size=32, validation_examples=0, precision="mixed_bfloat16")
    expected = hardware.emulation_warning("mixed_bfloat16", AVX2_ONLY)
    for action in (lambda: tfvae.train_and_evaluate(config, str(tmp_path / "run"), verbose=0),
                   lambda: tfvae.load_model(str(tmp_path / "run"))):
        hardware.warn_if_emulated.cache_clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="absl"):
            action()
        assert expected in [record.getMessage() for record in caplog.records], caplog.text
    hardware.warn_if_emulated.cache_clear()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: AVX2_ONLY | {"avx512_bf16"})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="absl"):
        tfvae.load_model(str(tmp_path / "run"))
    assert "is emulated" not in caplog.text
    hardware.warn_if_emulated.cache_clear()
