"""Every benchmark script runs end to end with tiny settings and prints the figures it promises.

(train, evaluate, sample, export and serving_client are run by the tests of what they do:
test_training, test_factory, test_export, test_serving_requests.)
"""

import json
import os
import re

from conftest import run_script

import tfvae

TINY_TRAINING = ["--train_examples=512", "--hidden_units=16", "--latent_dim=4", "--batch_size=64",
                 "--steps_per_execution=4"]


def test_benchmark_prints_throughputs_ratios_memory_and_evaluation_time(fashion_mnist_dir):
    result = run_script("benchmark.py", *TINY_TRAINING, "--benchmark_steps=16", "--repeats=1",
                        "--eval_examples=20", "--eval_importance_samples=10", "--colour_image_size=8",
                        "--colour_hidden_units=4,8", "--colour_latent_dim=2", "--colour_batch_size=8",
                        "--colour_components=2", "--colour_steps=4", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    rates = re.findall(r"^\s+(tfvae|handwritten tf.function \+ XLA|handwritten tf.function)\s+(\d+) examples/s\s+"
                       r"tfvae / this = +([\d.]+)$", result.stdout, re.M)
    assert len(rates) == 6, result.stdout  # three contenders, MLP and conv
    assert all(float(rate) > 0 for _, rate, _ in rates)
    assert [float(ratio) for name, _, ratio in rates if name == "tfvae"] == [1.0, 1.0]
    assert "colour likelihoods, conv 4,8 latent 2, 8x8x3, batch 8, 1 rounds of 4 steps (median):" in result.stdout
    colour = re.findall(r"^  (gaussian|discretized_logistic M=2|discretized_logistic M=2 per_channel \(0\.3\.0\)) +"
                        r"([\d.]+) ms/step   this / gaussian = +([\d.]+)$", result.stdout, re.M)
    assert [name for name, *_ in colour] == ["gaussian", "discretized_logistic M=2",
                                             "discretized_logistic M=2 per_channel (0.3.0)"], result.stdout
    gaussian_ms = float(colour[0][1])
    for _, ms, ratio in colour:
        assert float(ms) > 0 and abs(float(ms) / gaussian_ms / float(ratio) - 1) < 0.05  # ms printed to 0.1
    assert re.search(r"peak memory \(max RSS\): \d+ MiB", result.stdout)
    assert re.search(r"IWAE bound k=10 over 10000 test images: \d+ s \(measured on 20, extrapolated\)", result.stdout)
    pass_rate, decoder_rate, ratio = re.search(
        r"IWAE pass (\d+) latent samples/s; bare decoder forward \+ log p\(x\|z\) (\d+)/s; ratio ([\d.]+)",
        result.stdout).groups()
    assert abs(int(pass_rate) / int(decoder_rate) - float(ratio)) < 0.01 and float(ratio) > 0
    heads = re.findall(r"^one-channel likelihood head, (forward|forward \+ backward), \d+x28x28x\d+: Conv2D ([\d.]+) ms, "
                       r"OneChannelConv2D ([\d.]+) ms; Conv2D / this = ([\d.]+)$", result.stdout, re.M)
    assert [kind for kind, *_ in heads] == ["forward", "forward + backward"], result.stdout
    for _, plain, head, ratio in heads:
        assert float(head) > 0 and abs(float(plain) / float(head) / float(ratio) - 1) < 0.05


def test_benchmark_distribute_prints_a_row_per_device_count(fashion_mnist_dir):
    result = run_script("benchmark_distribute.py", *TINY_TRAINING, "--devices_list=1,2", "--benchmark_steps=10",
                        "--repeats=1", "--variants=on:4,off:1", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "XLA on, 4 steps/call" in result.stdout and "XLA off, 1 steps/call" in result.stdout
    rows = re.findall(r"^\s+([12])\s+((?:\d+ \(\s*[\d.]+x\)\s*){2})$", result.stdout, re.M)
    assert [count for count, _ in rows] == ["1", "2"], result.stdout
    assert re.findall(r"\(([\d.]+)x\)", rows[0][1]) == ["1.00"] * 2


def test_benchmark_families_trains_evaluates_and_tabulates_each_row(tmp_path, fashion_mnist_dir):
    workdir = tmp_path / "families"
    result = run_script("benchmark_families.py", *TINY_TRAINING, f"--workdir={workdir}", "--rows=gaussian,iwae,hierarchical",
                        "--epochs=1", "--jit_compile=off", "--eval_examples=20", "--num_importance_samples=10", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(("| gaussian", "| iwae", "| hierarchical"))]
    assert len(lines) == 3, result.stdout
    saved = json.loads((workdir / "families.json").read_text())
    assert set(saved) == {"gaussian", "iwae", "hierarchical"}
    for metrics in saved.values():
        assert metrics["num_examples"] == 20 and metrics["log_likelihood"] >= metrics["elbo"] - 5.0
    assert tfvae.load_model(str(workdir / "iwae")).objective == tfvae.IWAE(num_samples=5)
    assert tfvae.load_model(str(workdir / "hierarchical")).latent_dims == [32, 16]


def test_benchmark_serving_prints_latency_and_throughput_per_signature(tmp_path):
    from conftest import small_export, small_vae

    class Factory:
        def mktemp(self, name):
            path = tmp_path / name
            path.mkdir()
            return path

    export = small_export(small_vae(), Factory())
    result = run_script("benchmark_serving.py", f"--export={export}", "--calls=10", "--batch_size=4",
                        "--num_importance_samples=5")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = re.findall(r"^\s+(\w+)\s+([\d.]+)\s+([\d.]+)\s+(\d+)$", result.stdout, re.M)
    assert sorted(name for name, *_ in rows) == sorted(tfvae.export.SIGNATURES), result.stdout
    assert all(float(median) <= float(p99) for _, median, p99, _ in rows)
    assert os.path.isdir(export)


def test_benchmark_input_prints_streamed_against_in_memory_throughput_and_peak_memory(tmp_path, tiny_idx_dir):
    result = run_script("benchmark_input.py", "--dataset=idx", f"--data_dir={tiny_idx_dir}", "--hidden_units=8",
                        "--latent_dim=2", "--batch_size=16", "--steps_per_execution=2", "--benchmark_steps=10",
                        "--repeats=1", "--include_conv=false", "--memory_sets_gb=0.001", "--memory_steps=2", "--memory_hidden_units=4,4",
                        f"--scratch_dir={tmp_path / 'sets'}", timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    rates = dict(re.findall(r"^\s+(in memory|streamed)\s+(\d+) examples/s$", result.stdout, re.M))
    ratio = float(re.search(r"streamed / in memory = ([\d.]+)", result.stdout).group(1))
    assert set(rates) == {"in memory", "streamed"} and abs(int(rates["streamed"]) / int(rates["in memory"]) - ratio) < 0.01
    assert re.search(r"256 records, [\d.]+ GB of shards \([\d.]+ GB decoded\): 2 streamed conv training steps, peak "
                     r"RSS \d+ MiB, \d+ examples/s", result.stdout), result.stdout
    assert re.search(r"^CPU: .+", result.stdout, re.M)


def test_gpu_check_without_a_gpu_runs_every_check_on_the_cpu_and_says_so():
    result = run_script("gpu_check.py", "--settings=tiny", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if " | " in line][1:]
    checks = [row.split(" | ")[0].strip() for row in rows]
    for expected in ("devices: physical GPUs", "step time: conv, XLA on, steps_per_execution 2",
                     "float32 log-probs under mixed_float16", "overflow on one of two replicas",
                     "deterministic resume", "IWAE evaluation, conv, k=20"):
        assert expected in checks, (expected, checks)
    assert all(" | CPU (tiny settings) | " in row for row in rows), rows
    results = " ".join(rows)
    assert "FAILED" not in results and "DIFFERENT" not in results and "NOT FINITE" not in results, results
    assert "bitwise equal" in results and "both skipped" in results


def test_benchmark_noise_prints_a_row_per_scheme_and_xla_setting():
    result = run_script("benchmark_noise.py", "--global_batch=8", "--replicas=2", "--data_shape=4,4,1",
                        "--latent_dim=2", "--steps=2", "--repeats=1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(r"^\s+(global_batch|per_example)\s+(on|off)\s+([0-9.]+)\s+([0-9.]+)$", result.stdout, re.M)
    assert sorted((scheme, jit) for scheme, jit, _, _ in rows) == [
        ("global_batch", "off"), ("global_batch", "on"), ("per_example", "off"), ("per_example", "on")]
    for _, _, one, all_replicas in rows:
        assert float(one) > 0 and abs(float(all_replicas) - 2 * float(one)) < 0.02
