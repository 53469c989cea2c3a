"""Hostile data seen from outside the process: an exit status that is never a signal, and peak memory under a stated
bound (the child limits its own address space with resource.setrlimit and reports its peak RSS)."""

import gzip
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
from builders import png, write_shards
from conftest import REPO, last_error_line, run_script, write_idx

from tfvae.data import framing, records

# What a child may add to its address space (RLIMIT_AS, set after its imports) and to its peak RSS while it reads
# the hostile input: far below what the input claims (400 MB, 2^24 shuffle slots), far above what reading it needs.
ADDRESS_SPACE_MARGIN = 256 * 2**20
RSS_BOUND = 150 * 2**20


def _run_child(body: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs ``body`` in a fresh Python after ``import resource``; its helpers ``limit_address_space()`` (RLIMIT_AS =
    what is mapped now + ADDRESS_SPACE_MARGIN) and ``peak_rss()`` (bytes) are defined."""
    prelude = textwrap.dedent(f"""
        import resource
        def limit_address_space(margin={ADDRESS_SPACE_MARGIN}):
            pages = int(open("/proc/self/statm").read().split()[0])
            limit = pages * resource.getpagesize() + margin
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        def peak_rss():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    """)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(body)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def _forged_shard(path):
    """The issue's 150-byte shard: a good record, then a length field claiming 2^40 bytes whose CRC holds."""
    field = struct.pack("<Q", 2**40)
    forged = field + struct.pack("<I", framing.masked_crc32c(field))
    good = framing.frame_record(records.serialize_example(png(np.zeros((4, 4, 1), np.uint8)), 0))
    path.write_bytes((good + forged + bytes(150))[:150])


def test_train_py_on_a_shard_claiming_2_to_the_40_bytes_exits_1_with_one_line_not_sigsegv(tmp_path):
    write_shards(tmp_path / "data", np.zeros((8, 4, 4, 1), np.uint8), num_shards=1)
    shard = tmp_path / "data" / "train-00000-of-00001.tfrecord"
    _forged_shard(shard)
    result = run_script("train.py", "--dataset=tfrecord", f"--data_dir={tmp_path / 'data'}",
                        f"--model_dir={tmp_path / 'run'}", "--hidden_units=4", "--latent_dim=2", "--batch_size=2",
                        "--epochs=1", timeout=300)
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])  # was -11 (SIGSEGV)
    assert last_error_line(result) == (f"train.py: error: {shard}: record 1 claims 1,099,511,627,776 bytes "
                                       "(1048576.0 MiB), more than the 268,435,456 bytes (256.0 MiB) limit of one record")


def test_train_py_with_a_shuffle_buffer_of_2_to_the_63_exits_with_one_line_not_sigsegv(tmp_path):
    write_shards(tmp_path / "data", np.zeros((8, 4, 4, 1), np.uint8), num_shards=2)
    result = run_script("train.py", "--dataset=tfrecord", f"--data_dir={tmp_path / 'data'}", "--input_mode=stream",
                        f"--model_dir={tmp_path / 'run'}", "--hidden_units=4", "--latent_dim=2", "--batch_size=2",
                        "--epochs=1", "--shuffle_buffer=9223372036854775807", timeout=300)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])  # was -11 (SIGSEGV)
    assert "shuffle_buffer must be an int in [1, 16777216] (records); got 9223372036854775807" in \
        last_error_line(result)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_streaming_300_records_with_the_largest_shuffle_buffer_stays_under_the_rss_bound(tmp_path):
    # Before: tf.data's buffer got the flag's value; 2^24 slots cost ~380 MB here (10^9: 20 GB, killed by the kernel).
    write_shards(tmp_path, np.zeros((300, 4, 4, 1), np.uint8), num_shards=3)
    result = _run_child(f"""
        from tfvae.data import limits, sources, streaming
        source = sources.tfrecord_source({str(tmp_path)!r}, "train")
        before = peak_rss()
        batches = streaming.train_dataset(source, 30, seed=0, epoch=0, steps=10,
                                          shuffle_buffer=limits.MAX_SHUFFLE_BUFFER)
        print(sum(1 for _ in batches), peak_rss() - before)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    batches, growth = (int(v) for v in result.stdout.split())
    assert batches == 10 and growth < RSS_BOUND, growth


def _idx_bomb(directory):
    """IDX files whose training images are a 389 kB .gz claiming (and inflating to) 400 MB of zeros."""
    os.makedirs(directory)
    with gzip.open(os.path.join(directory, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + struct.pack(">III", 500, 800, 1000))
        for _ in range(100):
            f.write(bytes(4_000_000))
    write_idx(os.path.join(directory, "t10k-images-idx3-ubyte.gz"), np.zeros((2, 800, 1000), np.uint8))
    return directory


def test_a_forged_idx_gz_is_refused_under_an_address_space_limit(tmp_path):
    directory = _idx_bomb(str(tmp_path / "idx"))
    result = _run_child(f"""
        import tfvae
        from tfvae import data
        config = tfvae.TrainConfig(dataset="idx", data_dir={directory!r}, memory_budget_mb=64)
        limit_address_space()  # what the process maps now + {ADDRESS_SPACE_MARGIN // 2**20} MiB
        try:
            data.prepare_data(config)
            print("loaded")
        except data.DataError as e:
            print("refused:", e)
        except MemoryError:
            print("out of memory")
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("refused: ") and "needs 400,000,000 bytes" in result.stdout, result.stdout
