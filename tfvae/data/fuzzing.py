"""Fuzzing the parsers of untrusted bytes: the property each must hold, its inputs, and a timed runner.

The property, for every target: any input gives data or the project's
one-line ``DataError``, never another exception, never a crash (a signal),
and never more than ``MEMORY_BOUND`` bytes of Python and NumPy allocations
(traced with ``tracemalloc``) whatever sizes the input claims. Inputs are
structure-aware mutations of valid files (``fuzz_inputs``): header fields,
lengths and claimed sizes changed, truncations, flipped, inserted and
deleted bytes, GZIP wrapping.

  idx            idx_files.read_idx (gzipped or not), then validate_images / class_indices
  npz            loaders.load_npz, then class_indices and num_classes of its labels
  csv            loaders.load_csv, then class_indices and num_classes of its labels
  image_header   image_headers.image_shape, which must agree with TensorFlow's decoder
                 whenever both give a shape; then image_folders.image_sizes
  tfrecord       framing.check_framing, then records.count_records (TensorFlow's reader)
  example        tf.train.Example records through sources.tfrecord_source and num_classes

``tests/data/test_fuzz_parsers.py`` runs every target for a few seconds
(derandomized), after the inputs that once broke it
(``fuzz_inputs.regressions``); ``scripts/fuzz.py`` runs them for minutes (``fuzz``) and
writes each failing input to a folder. ``hypothesis`` (a test dependency)
is imported only when a target runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
import traceback
import tracemalloc
from collections.abc import Callable

import tensorflow as tf

from tfvae.core.errors import DataError
from tfvae.data import (
    classes,
    framing,
    fuzz_inputs,
    idx_files,
    image_folders,
    image_headers,
    limits,
    loaders,
    records,
    sources,
)

__all__ = ["FUZZ_BUDGET_MB", "MEMORY_BOUND", "TARGETS", "FuzzReport", "Target", "check_input", "fuzz",
           "fuzz_targets", "property_test"]

FUZZ_BUDGET_MB = 4  # --memory_budget_mb of the in-memory formats while fuzzing
MEMORY_BOUND = 64 * 2**20  # traced Python and NumPy bytes one input may take


@dataclasses.dataclass(frozen=True)
class Target:
    """A parser under fuzzing: ``inputs()`` builds the hypothesis strategy of its input bytes; ``parse(path,
    workdir)`` runs it on a file holding them (returns anything; DataError is an accepted outcome)."""

    name: str
    inputs: Callable
    parse: Callable[[str, str], object]
    suffix: str = ".bin"


def _idx(path, workdir):
    array = idx_files.read_idx(path, limits.MemoryBudget(FUZZ_BUDGET_MB))
    if array.ndim == 1:
        return classes.class_indices(array, path)
    return loaders.validate_images(array, path)


def _labels_of(loaded, source):
    found = [classes.class_indices(y, source) for y in (loaded.train_labels, loaded.test_labels) if y is not None]
    if found and all(len(y) for y in found):
        classes.num_classes(int(max(y.max() for y in found)), sum(len(y) for y in found), source)
    return loaded


def _npz(path, workdir):
    return _labels_of(loaders.load_npz(path, memory_budget_mb=FUZZ_BUDGET_MB), path)


def _csv(path, workdir):
    return _labels_of(loaders.load_csv(path, validation_split=0.5, memory_budget_mb=FUZZ_BUDGET_MB), path)


_DECODE_PIXEL_LIMIT = 2**20  # decode to compare only images this small (the comparison, not the property)


def _image_header(path, workdir):
    with open(path, "rb") as file:
        shape = image_headers.image_shape(file)
    if shape is None:
        return None
    if shape[0] * shape[1] <= _DECODE_PIXEL_LIMIT:
        with open(path, "rb") as file:
            contents = file.read()
        try:
            decoded = tuple(int(d) for d in tf.io.decode_image(contents, expand_animations=False).shape)
        except tf.errors.OpError:
            decoded = None  # the decoder refuses the file: the header's shape is never used
        if decoded is not None and decoded != shape:
            raise AssertionError(f"header says {shape}, TensorFlow decodes {decoded}")
    return image_folders.image_sizes([path])


def _tfrecord(path, workdir):
    count = framing.check_framing(path)
    if count <= 64:  # TensorFlow's reader after the check: records that are not Examples give DataError
        records.count_records(path)
    return count


def _example(path, workdir):
    directory = os.path.join(workdir, "shards")
    os.makedirs(directory)
    os.replace(path, os.path.join(directory, "train-00000-of-00001.tfrecord"))
    source = sources.tfrecord_source(directory, "train")
    if source.has_labels:
        return classes.num_classes(source.max_label, source.num_examples, source.name)
    return sources.tfrecord_source(directory, "train", require_label=True)  # names the record without a label


TARGETS = {
    "idx": Target("idx", fuzz_inputs.idx_files, _idx),
    "npz": Target("npz", fuzz_inputs.npz_files, _npz, ".npz"),
    "csv": Target("csv", fuzz_inputs.csv_files, _csv, ".csv"),
    "image_header": Target("image_header", fuzz_inputs.image_files, _image_header, ".img"),
    "tfrecord": Target("tfrecord", fuzz_inputs.tfrecord_files, _tfrecord, ".tfrecord"),
    "example": Target("example", fuzz_inputs.example_records, _example, ".tfrecord"),
}


def check_input(target: Target, contents: bytes) -> None:
    """The property on one input: data or a one-line DataError, within ``MEMORY_BOUND``; AssertionError (or the
    unexpected exception itself) otherwise."""
    workdir = tempfile.mkdtemp(prefix=f"fuzz_{target.name}_")
    path = os.path.join(workdir, "input" + target.suffix)
    with open(path, "wb") as f:
        f.write(contents)
    tracemalloc.start()
    try:
        target.parse(path, workdir)
    except DataError as e:
        message = str(e)
        assert message and "\n" not in message, f"a DataError must be one line; got {message!r}"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert peak <= MEMORY_BOUND, f"{target.name}: {peak:,} bytes traced, more than {MEMORY_BOUND:,}"


def property_test(target: Target, max_examples: int, derandomize: bool = True, seed: int | None = None,
                  before: Callable[[bytes], None] | None = None, failed: Callable[[bytes, str], None] | None = None):
    """The hypothesis test of ``target``'s property: call it to run ``max_examples`` inputs.

    ``before(contents)`` is called ahead of each input (``fuzz`` saves it, so
    a crash leaves it behind); ``failed(contents, traceback)`` after each
    failing one (hypothesis then shrinks it: the last one is the smallest).
    """
    import hypothesis

    @hypothesis.settings(max_examples=max_examples, derandomize=derandomize, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck), print_blob=False)
    @hypothesis.given(target.inputs())
    def test(contents):
        if before:
            before(contents)
        try:
            check_input(target, contents)
        except Exception:
            if failed:
                failed(contents, traceback.format_exc())
            raise

    for contents in fuzz_inputs.regressions().get(target.name, []):
        test = hypothesis.example(contents=contents)(test)  # run ahead of the drawn inputs
    return hypothesis.seed(seed)(test) if seed is not None else test


class _TimeUp(BaseException):
    """Raised ahead of an input once ``fuzz``'s time is over: it ends the round (hypothesis does not shrink a
    BaseException that is not an Exception; it lets it through)."""


@dataclasses.dataclass
class FuzzReport:
    """What ``fuzz`` tried on one target: inputs run, seconds, and the files of the failing inputs found."""

    target: str
    inputs: int = 0
    seconds: float = 0.0
    failures: list[str] = dataclasses.field(default_factory=list)


def fuzz(target_name: str, seconds: float, out_dir: str, seed: int = 0, round_examples: int = 200) -> FuzzReport:
    """Runs ``target_name``'s property on fresh inputs for ``seconds`` (rounds of ``round_examples``, seeds
    ``seed``, ``seed`` + 1, ...), writing each failing input, shrunk, to ``out_dir``/<target>-<sha1>.bin with its
    traceback in a .txt beside it. The input being run is kept in ``out_dir``/<target>.current, so a crash by a
    signal leaves it there (it is removed at the end). When the time runs out while hypothesis shrinks a failing
    input, the smallest failing input so far is written."""
    if target_name not in TARGETS:
        raise ValueError(f"target must be one of {sorted(TARGETS)}; got {target_name!r}")
    os.makedirs(out_dir, exist_ok=True)
    report, current = FuzzReport(target_name), os.path.join(out_dir, f"{target_name}.current")
    last_failing = []

    start = None  # the clock starts at the first input, after hypothesis and the parser have been imported

    def before(contents):
        nonlocal start
        start = start or time.monotonic()
        if time.monotonic() - start > seconds:
            raise _TimeUp  # the rest of the round is skipped, not failed
        report.inputs += 1
        with open(current, "wb") as f:
            f.write(contents)

    round_seed = seed
    while start is None or time.monotonic() - start < seconds:
        test = property_test(TARGETS[target_name], round_examples, derandomize=False, seed=round_seed,
                             before=before, failed=lambda contents, trace: last_failing.append((contents, trace)))
        round_seed += 1
        try:
            test()
        except _TimeUp:
            pass
        except Exception:  # noqa: BLE001 - a property failure of any kind is what fuzzing looks for
            pass
        if last_failing:
            saved = _save_failure(out_dir, target_name, *last_failing[-1])
            if saved not in report.failures:  # a later round may shrink to the same input
                report.failures.append(saved)
            last_failing.clear()
    report.seconds = time.monotonic() - start
    if os.path.exists(current):
        os.remove(current)
    return report


def fuzz_targets(names, minutes: float, out_dir: str, seed: int = 0) -> list[FuzzReport]:
    """``fuzz`` of each target of ``names`` (all of ``TARGETS`` if empty) for ``minutes`` each, in order."""
    names = list(names) or list(TARGETS)
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        raise ValueError(f"targets must be among {sorted(TARGETS)}; got {unknown}")
    if not minutes > 0:
        raise ValueError(f"minutes must be > 0; got {minutes}")
    return [fuzz(name, 60.0 * minutes, out_dir, seed) for name in names]


def _save_failure(out_dir: str, target_name: str, contents: bytes, trace: str) -> str:
    path = os.path.join(out_dir, f"{target_name}-{hashlib.sha1(contents).hexdigest()[:12]}.bin")
    with open(path, "wb") as f:
        f.write(contents)
    with open(path[: -len(".bin")] + ".txt", "w") as f:
        f.write(trace)
    return path
