"""IDX, .npz and CSV files under --memory_budget_mb: claims checked from headers before anything is read or inflated."""

import gzip
import io
import os
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from conftest import write_idx, write_idx_dataset

import tfvae
from tfvae import data
from tfvae.data import idx_files, limits


def _traced_peak(function, *args, **kwargs):
    """(what ``function`` returned or raised, peak bytes of Python and NumPy allocations meanwhile)."""
    tracemalloc.start()
    try:
        outcome = function(*args, **kwargs)
    except data.DataError as e:
        outcome = e
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, peak


def _gzipped_idx(path, shape, data_bytes: int):
    """A gzipped IDX file whose header claims ``shape`` (uint8) followed by ``data_bytes`` zeros, written in chunks."""
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape))
        for start in range(0, data_bytes, 2**22):
            f.write(bytes(min(2**22, data_bytes - start)))
    return str(path)


def test_an_idx_gz_claiming_400_mb_is_refused_from_its_header_before_it_is_inflated(tmp_path):
    # The file: 389 kB of gzip that inflate to 400 MB. Refused from the header's claim; nothing inflated.
    path = _gzipped_idx(tmp_path / "train-images-idx3-ubyte.gz", (500, 800, 1000), 400_000_000)
    assert os.path.getsize(path) < 400_000
    error, peak = _traced_peak(idx_files.read_idx, path, limits.MemoryBudget(100))
    assert isinstance(error, data.DataError)
    assert str(error) == (f"{path}: IDX header shape [500, 800, 1000] of uint8 needs 400,000,000 bytes (381.5 MiB), "
                          "more than the memory budget (--memory_budget_mb=100); these files are read into memory "
                          "whole: pass a larger --memory_budget_mb if the machine has the memory")
    assert peak < 2**20


def test_gzipped_idx_data_is_inflated_only_up_to_the_claim(tmp_path):
    # The header claims 1000 bytes; the stream holds 64 MiB of zeros: reading stops one byte past the claim.
    path = _gzipped_idx(tmp_path / "x.gz", (10, 10, 10), 64 * 2**20)
    error, peak = _traced_peak(idx_files.read_idx, path, limits.MemoryBudget(16))
    assert str(error) == (f"{path}: IDX data has trailing bytes: header shape [10, 10, 10] needs 1,000 bytes, "
                          "file has more")
    assert peak < 4 * 2**20, peak
    short = _gzipped_idx(tmp_path / "short.gz", (10, 10, 10), 999)
    with pytest.raises(data.DataError, match=r"IDX data is truncated: header shape \[10, 10, 10\] needs 1,000 bytes, "
                                             r"file has 999$"):
        idx_files.read_idx(short)


def test_forged_idx_sizes_do_not_overflow_into_negative_byte_counts(tmp_path):
    path = tmp_path / "forged"
    # 2^32-1 x 2^32-1 x 2^31 elements: NumPy's int64 product wraps (the old message printed a negative count).
    path.write_bytes(bytes([0, 0, 0x0E, 3]) + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**31) + b"\0" * 16)
    with pytest.raises(data.DataError, match=r"forged: IDX header shape \[4294967295, 4294967295, 2147483648\] is too "
                                             r"large for an array$"):
        idx_files.read_idx(str(path))
    # The same with the dtype's size: 0 x 65535 x (2^31 - 1) x 16385 int32 (a 10-minute fuzzing run found it).
    path.write_bytes(bytes.fromhex("00000c04 00000000 0000ffff 7fffffff 00004001"))
    with pytest.raises(data.DataError, match=r"is too large for an array$"):
        idx_files.read_idx(str(path))
    # 2^31 x (2^31 - 1) bytes: counted exactly, compared with the file, then with the budget.
    path.write_bytes(bytes([0, 0, 0x08, 2]) + struct.pack(">II", 2**31, 2**31 - 1) + b"\0" * 16)
    with pytest.raises(data.DataError, match=r"needs 4,611,686,016,279,904,256 bytes, file has 16$"):
        idx_files.read_idx(str(path))
    path.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(data.DataError, match=r"of uint8 needs 4,611,686,016,279,904,256 bytes \(4398046509056.0 MiB\), "
                                             r"more than the memory budget"):
        idx_files.read_idx(str(path))


def test_claims_of_any_size_are_described_exactly():
    with pytest.raises(data.DataError, match=r"^x needs 1,267,650,600,228,229,401,496,703,205,376 bytes \("
                                             r"1,208,925,819,614,629,174,706,176 MiB\), more than the memory budget"):
        limits.MemoryBudget(1).claim(2**100, "x")
    assert limits.describe_bytes(2**1100).endswith(f"({2**1100 // 2**20:,} MiB)")  # past a float: an OverflowError
    assert limits.describe_bytes(47_040_000) == "47,040,000 bytes (44.9 MiB)"                 # before (fuzzing)


def test_the_budget_covers_all_files_of_a_data_set_and_comes_from_the_config(tmp_path):
    directory = write_idx_dataset(str(tmp_path / "idx"), num_train=5000, num_test=1000, shape=(20, 20))
    loaded = data.load_dataset("idx", directory, memory_budget_mb=3)  # 2,000,000 + 400,000 + 6,000 bytes of labels
    assert loaded.train_images.shape == (5000, 20, 20, 1)
    with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte.gz: IDX header shape \[1000, 20, 20\] of uint8 "
                                             r"needs 400,000 bytes .* \(--memory_budget_mb=2, 2,005,000 bytes \(1.9 "
                                             r"MiB\) of it taken by the files before\)"):
        data.prepare_data(tfvae.TrainConfig(dataset="idx", data_dir=directory, memory_budget_mb=2))


def test_make_tfrecords_reads_idx_npz_and_csv_under_its_budget_too(tmp_path):
    from tfvae.data import conversion

    directory = write_idx_dataset(str(tmp_path / "idx"), num_train=3000, num_test=10, shape=(20, 20))
    with pytest.raises(data.DataError, match=r"needs 1,200,000 bytes .* \(--memory_budget_mb=1\)"):
        conversion.write_tfrecords("idx", directory, str(tmp_path / "out"), 2, memory_budget_mb=1)
    assert not os.path.exists(tmp_path / "out")
    written = conversion.write_tfrecords("idx", directory, str(tmp_path / "out"), 2, memory_budget_mb=2)
    assert len(written["train"]) == 2


def _npy(header: str, payload: bytes = b"") -> bytes:
    header += " " * ((-(len(header) + 11)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + payload


def _npz(path, members: dict, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, contents in members.items():
            archive.writestr(name + ".npy", contents)
    return str(path)


def test_an_npz_header_claiming_a_terabyte_is_refused_before_allocation(tmp_path):
    def saved(array):
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()

    x_test = saved(np.zeros((2, 4, 4), np.uint8))
    huge = _npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000, 1000), }", b"\0" * 64)
    path = _npz(tmp_path / "huge.npz", {"x_train": huge, "x_test": x_test})
    error, peak = _traced_peak(data.load_npz, path, memory_budget_mb=64)
    assert str(error).startswith(f"{path}[x_train]: .npy data is truncated or has trailing bytes: header shape "
                                 "[1000000, 1000, 1000] of float64 needs 8,000,000,000,000 bytes, the archive stores 64")
    assert peak < 2**20
    # A consistent member (its zip entry stores exactly what the header claims) over the budget: the budget speaks.
    big = saved(np.zeros((300, 100, 100), np.uint8))
    path = _npz(tmp_path / "big.npz", {"x_train": big, "x_test": saved(np.zeros((2, 100, 100), np.uint8))})
    error, peak = _traced_peak(data.load_npz, path, memory_budget_mb=2)
    assert "needs 3,000,000 bytes (2.9 MiB), more than the memory budget (--memory_budget_mb=2)" in str(error)
    assert peak < 2**20
    assert data.load_npz(path, memory_budget_mb=4).train_images.shape == (300, 100, 100, 1)


def test_npz_members_not_asked_for_are_never_read_and_bad_headers_are_one_line(tmp_path):
    good = {"x_train": _npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2, 2), }", bytes(8)),
            "x_test": _npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2, 2), }", bytes(4))}
    junk = _npy("{'descr': '|O', 'fortran_order': False, 'shape': (10000000000,), }")
    assert data.load_npz(_npz(tmp_path / "a.npz", {**good, "junk": junk})).train_images.shape == (2, 2, 2, 1)
    cases = {
        "object": ({**good, "y_train": junk}, r"\[y_train\]: data must be integer or float arrays; got dtype object"),
        "negative": ({**good, "x_test": _npy("{'descr': '|u1', 'fortran_order': False, 'shape': (-1, 2), }")},
                     r"\[x_test\]: .npy header has a negative size in shape \[-1, 2\]"),
        "token": ({**good, "x_test": _npy(")")}, r"cannot read .npz file \("),  # numpy's parser raises TokenError
        "version": ({**good, "x_test": b"\x93NUMPY\x07\x00" + bytes(20)}, r"format version \(7, 0\) is not read"),
    }
    for name, (members, message) in cases.items():
        with pytest.raises(data.DataError, match=message):
            data.load_npz(_npz(tmp_path / f"{name}.npz", members))
    (tmp_path / "not.npz").write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(data.DataError, match=r"not.npz: missing array x_train \(found \[\]\)"):
        data.load_npz(str(tmp_path / "not.npz"))
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(data.DataError, match=r"text.npz: cannot read .npz file \(File is not a zip file\)"):
        data.load_npz(str(tmp_path / "text.npz"))


def test_csv_values_are_counted_and_budgeted_before_parsing(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n" + "0.5,0.25,1\n" * 500_000)  # 1,500,000 values: 12 MB as float64
    assert data.load_csv(str(path), memory_budget_mb=16).train_images.shape[1] == 2
    error, peak = _traced_peak(data.load_csv, str(path), memory_budget_mb=8)
    assert "a CSV file of up to 1,500,004 values (float64) needs 12,000,032 bytes (11.4 MiB), more than the memory " \
           "budget (--memory_budget_mb=8)" in str(error)
    assert peak < 3 * 2**20, peak  # chunks of 1 MiB counted, nothing parsed
    path.write_text("x" * (3 * 2**20))  # one line of 3 MiB, no comma
    with pytest.raises(data.DataError, match=r"t.csv: the first line is longer than the memory budget"):
        data.load_csv(str(path), memory_budget_mb=1)


def test_csv_labels_and_values_out_of_range_are_refused_without_wrapping(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,label\n0.5,1\n0.5,1e12\n")
    with pytest.raises(data.DataError, match=r"column 'label' must hold whole numbers within int32"):
        data.load_csv(str(path))
    path.write_text("a,b\n0,1e300\n0,1\n")
    with pytest.raises(data.DataError, match=r"integer data must lie in \[0, 255\]; got values in \[0, 1e\+300\]"):
        data.load_csv(str(path))
    path.write_text(",label")
    with pytest.raises(data.DataError, match=r"t.csv: no rows of values"):  # an IndexError before (found by fuzzing)
        data.load_csv(str(path))


def test_read_idx_of_a_plain_file_checks_the_size_before_allocating(tmp_path):
    path = os.path.join(tmp_path, "x")
    write_idx(path, np.zeros((4, 3, 3)), gzipped=False)
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(data.DataError, match=r"needs 36 bytes, file has 37$"):
        idx_files.read_idx(path)
