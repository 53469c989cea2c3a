"""The sections of the run config, each setting documented where it is declared.

  DataConfig          config.data          the data set, where it is, how it is read, the validation examples
  ModelConfig         config.model         likelihood, posterior, prior, networks, latents
  LossConfig          config.loss          the training objective: ELBO or IWAE, KL weight and schedule, free bits
  OptimizationConfig  config.optimization  epochs, batch, learning rate, clipping, the spike guard
  DistributionConfig  config.distribution  strategy, devices, precision, XLA, steps per compiled call
  RunConfig           config.run           seed, noise scheme, initial weights, checkpoints, summaries, validation,
                                           early stopping

A field's help is its flag's help (``--latent_dim``: ``ModelConfig.latent_dim``);
its choices are those its implementing module registered (``choices=True``);
its check is its range on its own. Rules between fields are in ``rules.py``.
Field names are unique over all sections: they are the flag names and the keys
of a run's config.json, which stay flat (``TrainConfig``).
"""

from __future__ import annotations

import dataclasses

from tfvae.data import limits
from tfvae.train.settings import (
    int_in,
    non_empty_positive_ints,
    non_negative,
    positive,
    positive_ints,
    setting,
)

__all__ = ["DataConfig", "DistributionConfig", "LossConfig", "ModelConfig", "OptimizationConfig", "RunConfig"]


def _off_or_above_one(name: str, value) -> str | None:
    if value < 0:
        return f"{name} must be >= 0; got {value}"
    return f"{name} must be 0 (off) or > 1; got {value}" if 0 < value <= 1 else None


def _height_and_width(name: str, value) -> str | None:
    ok = not value or (len(value) == 2 and min(value) > 0)
    return None if ok else f"{name} must be empty or two positive ints H,W; got {list(value)}"


def _a_column_name(name: str, value) -> str | None:
    return None if value.strip() else f"{name} must name a CSV column; got {value!r}"


def _a_fraction(name: str, value) -> str | None:
    return None if 0.0 < value < 1.0 else f"{name} must lie in (0, 1); got {value}"


@dataclasses.dataclass
class DataConfig:
    """The data: which data set, where it is, how it is read and decoded, and the validation examples."""

    dataset: str = setting(
        "fashion_mnist",
        "Data set: fashion_mnist (Debian's IDX files, else a keras.datasets download), mnist, idx (IDX "
        "files in --data_dir), npz (Keras-style .npz at --data_dir), image_folder (image files, class "
        "subfolders give labels), tfrecord (train-*.tfrecord and test-*.tfrecord shards of PNG/JPEG "
        "records, written by scripts/make_tfrecords.py), csv (vectors: train.csv and test.csv in "
        "--data_dir, or one .csv file) or tfds:NAME (TensorFlow Datasets, with the tensorflow-datasets "
        "package; --data_dir its data directory).")
    data_dir: str | None = setting(
        None,
        "Where the data is: a directory of IDX files, images, shards or CSV files, or an .npz or .csv "
        "file.")
    train_examples: int = setting(
        0,
        "Use only the first N training images (0 = all; data held in memory only).",
        check=non_negative)
    input_mode: str = setting(
        "auto",
        "How training reads its data: memory (decoded once and held on the device), stream (read from the "
        "files as it is needed, in bounded memory: image_folder, tfrecord and tfds:NAME data, and tf.data "
        "datasets given from Python) or auto (memory when the decoded training split fits in "
        "--memory_budget_mb, else stream).",
        choices=True)
    memory_budget_mb: int = setting(
        2048,
        "--input_mode=auto: the most decoded training data, in MiB, to hold in memory; idx, npz and csv "
        "data (always read into memory whole): the most their headers may claim, over all their files (a "
        "larger claim is refused before anything is read).",
        check=positive)
    shuffle_buffer: int = setting(
        10000,
        "Streaming: encoded records in the shuffle buffer (1 = read order; the shards' order is still "
        "drawn anew every epoch); at most 16777216, and in effect at most the records a worker reads.",
        check=int_in(1, limits.MAX_SHUFFLE_BUFFER, "(records)"))
    skip_bad_records: bool = setting(
        False,
        "Leave out records and image files that do not decode (every record is decoded once up front; "
        "they are counted and logged); off: such a record stops the run, naming its file and index.")
    image_size: tuple[int, ...] = setting(
        (),
        "Resize the images of image_folder and tfrecord data to H,W (a centred crop to that aspect ratio "
        "first, as Keras' crop_to_aspect_ratio); empty = as stored (then all must be alike).",
        check=_height_and_width)
    channels: int = setting(
        0,
        "Channels to decode images to: 1, 3 or 4 (converted), or 0 = as stored (then all must be alike).",
        choices=True)
    image_feature: str = setting(
        "",
        "tfds:NAME data: the image feature (empty: the first Image feature).")
    label_feature: str = setting(
        "",
        "tfds:NAME data: the label feature (empty: the first ClassLabel feature, if any).")
    validation_split: float = setting(
        0.1,
        "Test fraction of an image folder without train/ and test/ subfolders, or of one .csv file (drawn with "
        "--seed).",
        check=_a_fraction)
    label_column: str = setting(
        "label",
        "csv data: the name of the column (in the header row) that holds the int class labels; it is not "
        "a feature. --conditional needs it.",
        check=_a_column_name)
    max_value: int = setting(
        255,
        "Integer data: the value that means 1.0 (integers are read as value / max_value; 255 for 8-bit "
        "pixels, e.g. 16 for scikit-learn's 8x8 digits). Data held in memory only.",
        check=int_in(1, 255, "(the value of integer data that means 1.0)"))
    validation_examples: int = setting(
        2000,
        "Test images used for validation during training (0 = all).",
        check=non_negative)
    test_binarization_seed: int = setting(
        0,
        "Seed of the one fixed binarization of the test set (bernoulli).")

    def __post_init__(self):
        self.image_size = tuple(int(d) for d in self.image_size)


@dataclasses.dataclass
class ModelConfig:
    """The model: the likelihood p(x|z), the posterior q(z|x), the prior p(z), the networks and the latents."""

    likelihood: str = setting(
        "bernoulli",
        "p(x|z): bernoulli (dynamically binarized data), continuous_bernoulli or gaussian (intensities in "
        "[0, 1]), discretized_logistic (mixture) or categorical (256-way) (8-bit pixels).",
        choices=True)
    gaussian_scale: str = setting(
        "learned",
        "Scale of a gaussian likelihood: fixed, learned (one global) or per_pixel.",
        choices=True)
    mixture_components: int = setting(
        5,
        "Logistic components per pixel of a discretized_logistic likelihood.",
        check=positive)
    pixel_mixture: str = setting(
        "joint",
        "discretized_logistic: joint (one mixture per pixel over its channels, each channel's location "
        "linear in the channels before it, as PixelCNN++) or per_channel (an independent mixture per "
        "channel value: tfvae 0.3.0's likelihood, for its runs).",
        choices=True)
    posterior: str = setting(
        "diagonal",
        "q(z|x): diagonal or full (covariance Gaussian), or iaf (diagonal Gaussian + --flow_steps inverse "
        "autoregressive flow steps; KL by Monte Carlo).",
        choices=True)
    prior: str = setting(
        "standard_normal",
        "p(z): standard_normal, mixture (learned Gaussian mixture), vamp (VampPrior) or flow (--flow "
        "chain on N(0, I)); all but standard_normal use a Monte Carlo KL.",
        choices=True)
    prior_components: int = setting(
        0,
        "Mixture components (mixture) or pseudo-inputs (vamp); 0 = 10 and 500.",
        check=non_negative)
    flow: str = setting(
        "maf",
        "Flow of --prior=flow: maf (masked autoregressive) or real_nvp (affine coupling).",
        choices=True)
    flow_steps: int = setting(
        4,
        "Steps of the flow prior or of the IAF posterior.",
        check=positive)
    flow_hidden_units: tuple[int, ...] = setting(
        (256, 256),
        "Hidden widths of each flow step's network (MADE or coupling), e.g. 256,256.",
        check=non_empty_positive_ints)
    conditional: bool = setting(
        False,
        "Conditional VAE: feed the one-hot labels to encoder and decoder (needs labelled data).")
    architecture: str = setting(
        "mlp",
        "Encoder/decoder networks: mlp, conv (stride-2 convolutions) or resnet (residual blocks per "
        "resolution, halving it per level).",
        choices=True)
    hidden_units: tuple[int, ...] = setting(
        (400,),
        "Hidden layer widths (mlp) or channels per level (conv, resnet), encoder side first, e.g. 400 or "
        "32,64.",
        check=non_empty_positive_ints)
    blocks_per_level: int = setting(
        2,
        "resnet: residual blocks at each resolution (0: only the resampling convolutions).",
        check=non_negative)
    normalization: str = setting(
        "none",
        "resnet: none, layer or group normalisation inside the residual blocks (no batch norm: it would "
        "make an example's loss depend on its batch, and so on the number of replicas).",
        choices=True)
    activation: str = setting(
        "relu",
        "Activation of the hidden layers (a Keras name).")
    latent_dim: int = setting(
        20,
        "Size of the latent z (with --latent_dims: set to their total).",
        check=positive)
    latent_dims: tuple[int, ...] = setting(
        (),
        "Sizes of the stochastic layers of a hierarchical VAE with top-down inference, bottom (next to x) "
        "to top, e.g. 32,16 (empty or one entry: a single layer of --latent_dim); --prior is the top "
        "layer's, and the posterior must be diagonal.",
        check=positive_ints)
    ladder_units: int = setting(
        256,
        "Width of the dense bottom-up and top-down layers between the stochastic layers of a hierarchical "
        "VAE.",
        check=positive)

    def __post_init__(self):
        self.hidden_units = tuple(int(u) for u in self.hidden_units)
        self.flow_hidden_units = tuple(int(u) for u in self.flow_hidden_units)
        self.latent_dims = tuple(int(d) for d in self.latent_dims)
        if self.latent_dims:
            self.latent_dim = sum(self.latent_dims)


@dataclasses.dataclass
class LossConfig:
    """The training objective: ELBO or IWAE, the KL weight (beta and its schedule), the KL estimator, free bits.

    (The section is ``config.loss``: ``config.objective`` stays the --objective setting, elbo or iwae.)
    """

    objective: str = setting(
        "elbo",
        "Training objective: elbo or iwae (importance weighted bound with --samples_per_example).",
        choices=True)
    samples_per_example: int = setting(
        1,
        "Posterior samples per example of the iwae objective (k).",
        check=positive)
    beta: float = setting(
        1.0,
        "Weight of the rate KL(q(z|x)||p(z)) in the loss (1 = the ELBO).",
        check=non_negative)
    kl_warmup_steps: int = setting(
        0,
        "Linear warm-up of the KL weight from 0 to --beta over this many steps (0 = none).",
        check=non_negative)
    kl_schedule: str = setting(
        "linear",
        "KL weight schedule: linear (one warm-up over --kl_warmup_steps) or cyclical (a warm-up at the "
        "start of every --kl_cycle_steps steps).",
        choices=True)
    kl_cycle_steps: int = setting(
        0,
        "Cycle length of --kl_schedule=cyclical.",
        check=non_negative)
    kl_method: str = setting(
        "auto",
        "KL estimator: auto (analytic where TFP has it), analytic or monte_carlo.",
        choices=True)
    free_bits: float = setting(
        0.0,
        "KL floor in nats per group of latent dimensions, per example (0 = none).",
        check=non_negative)
    free_bits_group_size: int = setting(
        1,
        "Latent dimensions per free-bits group (1 = per dimension; latent_dim = whole KL).")


@dataclasses.dataclass
class OptimizationConfig:
    """The optimisation: how long, the batch, the learning rate and its decay, gradient clipping and the spike guard."""

    epochs: int = setting(
        10,
        "Passes over the training data (a resumed run continues to this total).",
        check=positive)
    batch_size: int = setting(
        128,
        "Global batch size: examples per optimizer step over all replicas.",
        check=positive)
    learning_rate: float = setting(
        0.001,
        "Adam learning rate.",
        check=positive)
    learning_rate_decay: str = setting(
        "none",
        "none or cosine (to 1% of --learning_rate over the run).",
        choices=True)
    clip_global_norm: float = setting(
        0.0,
        "Clip the (all-replica) gradient to this global norm (0 = no clipping).",
        check=non_negative)
    gradient_spike_factor: float = setting(
        0.0,
        "Guard against gradient spikes: clip an update whose (all-replica) gradient norm exceeds this "
        "factor times the running mean of recent updates' norms to that level, and count it "
        "(train/gradient_spikes: the fraction of steps); 0 = off, else > 1.",
        check=_off_or_above_one)


@dataclasses.dataclass
class DistributionConfig:
    """Where and how the steps run: the tf.distribute strategy and its devices, precision, XLA, steps per call."""

    strategy: str = setting(
        "default",
        "tf.distribute strategy: default, one_device, mirrored (all local GPUs, or --devices, or the "
        "logical CPUs), multi_worker_mirrored (cluster from TF_CONFIG or Slurm) or tpu (a Cloud TPU found "
        "by TPUClusterResolver).",
        choices=True)
    devices: tuple[str, ...] = setting(
        (),
        "Devices for one_device/mirrored, e.g. /gpu:0,/gpu:1 (default: all local GPUs).")
    logical_cpu_devices: int = setting(
        0,
        "Split the CPU into N logical devices (mirrored training without accelerators; 0 = no).",
        check=non_negative)
    precision: str = setting(
        "float32",
        "float32, mixed_bfloat16 or mixed_float16 (networks in 16 bits; log-probs, KL and loss in "
        "float32; float16 uses loss scaling).",
        choices=True)
    jit_compile: str = setting(
        "auto",
        "XLA compilation of the training and evaluation steps: on, off or auto (on, except for conv "
        "networks without a GPU, where XLA is slower).",
        choices=True)
    steps_per_execution: int = setting(
        50,
        "Optimizer steps run inside one compiled call.",
        check=positive)
    deterministic: bool = setting(
        False,
        "Deterministic ops (tf.config.experimental.enable_op_determinism): a rerun or a resumed run "
        "repeats the same bits on the same device model and software stack (GPUs otherwise pick kernels "
        "and reduction orders that vary between runs), at some cost in speed.")

    def __post_init__(self):
        self.devices = tuple(str(d) for d in self.devices)


@dataclasses.dataclass
class RunConfig:
    """The run's bookkeeping: its seed and noise scheme, the weights it starts from, checkpoints, TensorBoard
    summaries, validation cadence and early stopping."""

    seed: int = setting(
        0,
        "Seed of the data order, binarization, initialization and sampling noise.")
    noise_scheme: str = setting(
        "global_batch",
        "How training steps draw their binarization and posterior noise: global_batch (the default: every "
        "replica draws the whole global batch's noise and keeps its rows; keeps runs and published figures "
        "of tfvae 0.3 bitwise reproducible) or per_example (each replica draws only its own examples' "
        "noise, from a counter of (seed, step, example, sample, element): 1/R of the work on R replicas, and "
        "the same noise on any number of replicas, with or without XLA, on any device).",
        choices=True)
    init_from: str = setting(
        "",
        "Start from the weights of another model (fine-tuning): a tfvae run directory (its newest "
        "checkpoint) or a .keras file, whose network has the same weights as this run's (number, order "
        "and shapes). The optimizer, step and schedules start afresh under this run's settings; ignored "
        "once this run has a checkpoint (it resumes). Empty: initialize by --seed.")
    checkpoint_every_steps: int = setting(
        2000,
        "Write a checkpoint every N steps (and at the end of every epoch).",
        check=positive)
    checkpoint_every_seconds: float = setting(
        0.0,
        "Also write one when this many seconds have passed since the last (checked after every compiled "
        "block of steps_per_execution steps); 0: off.",
        check=non_negative)
    max_checkpoints: int = setting(
        3,
        "Checkpoints kept on disk.",
        check=positive)
    summary_every_steps: int = setting(
        200,
        "Write training scalars to TensorBoard every N steps.",
        check=positive)
    eval_every_epochs: int = setting(
        1,
        "Evaluate the validation ELBO, KL per dimension, active units and image grids every N epochs.",
        check=positive)
    early_stopping_patience: int = setting(
        0,
        "Stop when the validation loss (-ELBO) has not improved for N validations "
        "(keras.callbacks.EarlyStopping; 0 = never).",
        check=non_negative)
