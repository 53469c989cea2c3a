"""The run configuration: one dataclass that describes a training run.

Scripts fill it from flags (one flag per field, whose help is the field's
entry under ``Attributes:`` below); the library never reads flags. Each list
of choices is defined by the module that implements it and only referred to
here (``CHOICES``). ``validate`` checks the values each field may take on its
own; rules between fields belong to the parts that own them and are checked
when ``factory.build_model`` builds them (``factory.check_config``).
"""

from __future__ import annotations

import dataclasses
import json
import re

from tfvae import data, objectives
from tfvae.core import distribute
from tfvae.data import sources, streaming
from tfvae.models import decoders, encoders, priors
from tfvae.nn import networks, resnet
from tfvae.objectives import losses, schedules
from tfvae.train import optimizers

__all__ = ["CHOICES", "JIT_COMPILE_MODES", "VERSION_KEY", "TrainConfig", "field_help", "uses_xla", "validate"]

JIT_COMPILE_MODES = ("auto", "on", "off")
VERSION_KEY = "tfvae_version"  # the entry of a run's config.json that records the tfvae version that wrote it


@dataclasses.dataclass
class TrainConfig:
    """Everything that defines a training run.

    Attributes:
      dataset: Data set: fashion_mnist (Debian's IDX files, else a keras.datasets download), mnist, idx (IDX
        files in --data_dir), npz (Keras-style .npz at --data_dir), image_folder (image files, class subfolders
        give labels), tfrecord (train-*.tfrecord and test-*.tfrecord shards of PNG/JPEG records, written by
        scripts/make_tfrecords.py), csv (vectors: train.csv and test.csv in --data_dir, or one .csv file) or
        tfds:NAME (TensorFlow Datasets, with the tensorflow-datasets package; --data_dir its data directory).
      data_dir: Where the data is: a directory of IDX files, images, shards or CSV files, or an .npz or .csv file.
      train_examples: Use only the first N training images (0 = all; data held in memory only).
      input_mode: How training reads its data: memory (decoded once and held on the device), stream (read from
        the files as it is needed, in bounded memory: image_folder, tfrecord and tfds:NAME data, and tf.data
        datasets given from Python) or auto (memory when the decoded training split fits in --memory_budget_mb,
        else stream).
      memory_budget_mb: --input_mode=auto: the most decoded training data, in MiB, to hold in memory; idx, npz
        and csv data (always read into memory whole): the most their headers may claim, over all their files
        (a larger claim is refused before anything is read).
      shuffle_buffer: Streaming: encoded records in the shuffle buffer (1 = read order; the shards' order is
        still drawn anew every epoch); at most 16777216, and in effect at most the records a worker reads.
      skip_bad_records: Leave out records and image files that do not decode (every record is decoded once up
        front; they are counted and logged); off: such a record stops the run, naming its file and index.
      image_size: Resize the images of image_folder and tfrecord data to H,W (a centred crop to that aspect ratio
        first, as Keras' crop_to_aspect_ratio); empty = as stored (then all must be alike).
      channels: Channels to decode images to: 1, 3 or 4 (converted), or 0 = as stored (then all must be alike).
      image_feature: tfds:NAME data: the image feature (empty: the first Image feature).
      label_feature: tfds:NAME data: the label feature (empty: the first ClassLabel feature, if any).
      validation_split: Test fraction of an image folder without train/ and test/ subfolders (drawn with --seed).
      label_column: csv data: the name of the column (in the header row) that holds the int class labels; it
        is not a feature. --conditional needs it.
      max_value: Integer data: the value that means 1.0 (integers are read as value / max_value; 255 for 8-bit
        pixels, e.g. 16 for scikit-learn's 8x8 digits). Data held in memory only.
      likelihood: p(x|z): bernoulli (dynamically binarized data), continuous_bernoulli or gaussian (intensities
        in [0, 1]), discretized_logistic (mixture) or categorical (256-way) (8-bit pixels).
      gaussian_scale: Scale of a gaussian likelihood: fixed, learned (one global) or per_pixel.
      mixture_components: Logistic components per pixel of a discretized_logistic likelihood.
      pixel_mixture: discretized_logistic: joint (one mixture per pixel over its channels, each channel's location
        linear in the channels before it, as PixelCNN++) or per_channel (an independent mixture per channel value:
        tfvae 0.3.0's likelihood, for its runs).
      posterior: q(z|x): diagonal or full (covariance Gaussian), or iaf (diagonal Gaussian + --flow_steps
        inverse autoregressive flow steps; KL by Monte Carlo).
      prior: p(z): standard_normal, mixture (learned Gaussian mixture), vamp (VampPrior) or flow (--flow chain
        on N(0, I)); all but standard_normal use a Monte Carlo KL.
      prior_components: Mixture components (mixture) or pseudo-inputs (vamp); 0 = 10 and 500.
      flow: Flow of --prior=flow: maf (masked autoregressive) or real_nvp (affine coupling).
      flow_steps: Steps of the flow prior or of the IAF posterior.
      flow_hidden_units: Hidden widths of each flow step's network (MADE or coupling), e.g. 256,256.
      conditional: Conditional VAE: feed the one-hot labels to encoder and decoder (needs labelled data).
      architecture: Encoder/decoder networks: mlp, conv (stride-2 convolutions) or resnet (residual blocks
        per resolution, halving it per level).
      hidden_units: Hidden layer widths (mlp) or channels per level (conv, resnet), encoder side first, e.g. 400
        or 32,64.
      blocks_per_level: resnet: residual blocks at each resolution (0: only the resampling convolutions).
      normalization: resnet: none, layer or group normalisation inside the residual blocks (no batch norm: it
        would make an example's loss depend on its batch, and so on the number of replicas).
      activation: Activation of the hidden layers (a Keras name).
      latent_dim: Size of the latent z (with --latent_dims: set to their total).
      latent_dims: Sizes of the stochastic layers of a hierarchical VAE with top-down inference, bottom (next
        to x) to top, e.g. 32,16 (empty or one entry: a single layer of --latent_dim); --prior is the top
        layer's, and the posterior must be diagonal.
      ladder_units: Width of the dense bottom-up and top-down layers between the stochastic layers of a
        hierarchical VAE.
      epochs: Passes over the training data (a resumed run continues to this total).
      batch_size: Global batch size: examples per optimizer step over all replicas.
      learning_rate: Adam learning rate.
      learning_rate_decay: none or cosine (to 1% of --learning_rate over the run).
      beta: Weight of the rate KL(q(z|x)||p(z)) in the loss (1 = the ELBO).
      kl_warmup_steps: Linear warm-up of the KL weight from 0 to --beta over this many steps (0 = none).
      kl_schedule: KL weight schedule: linear (one warm-up over --kl_warmup_steps) or cyclical (a warm-up at
        the start of every --kl_cycle_steps steps).
      kl_cycle_steps: Cycle length of --kl_schedule=cyclical.
      kl_method: KL estimator: auto (analytic where TFP has it), analytic or monte_carlo.
      free_bits: KL floor in nats per group of latent dimensions, per example (0 = none).
      free_bits_group_size: Latent dimensions per free-bits group (1 = per dimension; latent_dim = whole KL).
      objective: Training objective: elbo or iwae (importance weighted bound with --samples_per_example).
      samples_per_example: Posterior samples per example of the iwae objective (k).
      clip_global_norm: Clip the (all-replica) gradient to this global norm (0 = no clipping).
      gradient_spike_factor: Guard against gradient spikes: clip an update whose (all-replica) gradient norm
        exceeds this factor times the running mean of recent updates' norms to that level, and count it
        (train/gradient_spikes: the fraction of steps); 0 = off, else > 1.
      seed: Seed of the data order, binarization, initialization and sampling noise.
      strategy: tf.distribute strategy: default, one_device, mirrored (all local GPUs, or --devices, or the
        logical CPUs), multi_worker_mirrored (cluster from TF_CONFIG or Slurm) or tpu (a Cloud TPU found by
        TPUClusterResolver).
      devices: Devices for one_device/mirrored, e.g. /gpu:0,/gpu:1 (default: all local GPUs).
      logical_cpu_devices: Split the CPU into N logical devices (mirrored training without accelerators; 0 = no).
      precision: float32, mixed_bfloat16 or mixed_float16 (networks in 16 bits; log-probs, KL and loss in
        float32; float16 uses loss scaling).
      jit_compile: XLA compilation of the training and evaluation steps: on, off or auto (on, except for conv
        networks without a GPU, where XLA is slower).
      steps_per_execution: Optimizer steps run inside one compiled call.
      deterministic: Deterministic ops (tf.config.experimental.enable_op_determinism): a rerun or a resumed run
        repeats the same bits on the same device model and software stack (GPUs otherwise pick kernels and
        reduction orders that vary between runs), at some cost in speed.
      checkpoint_every_steps: Write a checkpoint every N steps (and at the end of every epoch).
      checkpoint_every_seconds: Also write one when this many seconds have passed since the last (checked
        after every compiled block of steps_per_execution steps); 0: off.
      max_checkpoints: Checkpoints kept on disk.
      summary_every_steps: Write training scalars to TensorBoard every N steps.
      eval_every_epochs: Evaluate the validation ELBO, KL per dimension, active units and image grids every N
        epochs.
      validation_examples: Test images used for validation during training (0 = all).
      test_binarization_seed: Seed of the one fixed binarization of the test set (bernoulli).
      early_stopping_patience: Stop when the validation loss (-ELBO) has not improved for N validations
        (keras.callbacks.EarlyStopping; 0 = never).
    """

    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    train_examples: int = 0
    input_mode: str = "auto"
    memory_budget_mb: int = 2048
    shuffle_buffer: int = 10000
    skip_bad_records: bool = False
    image_size: tuple[int, ...] = ()
    channels: int = 0
    image_feature: str = ""
    label_feature: str = ""
    validation_split: float = 0.1
    label_column: str = "label"
    max_value: int = 255
    likelihood: str = "bernoulli"
    gaussian_scale: str = "learned"
    mixture_components: int = 5
    pixel_mixture: str = "joint"
    posterior: str = "diagonal"
    prior: str = "standard_normal"
    prior_components: int = 0
    flow: str = "maf"
    flow_steps: int = 4
    flow_hidden_units: tuple[int, ...] = (256, 256)
    conditional: bool = False
    architecture: str = "mlp"
    hidden_units: tuple[int, ...] = (400,)
    blocks_per_level: int = 2
    normalization: str = "none"
    activation: str = "relu"
    latent_dim: int = 20
    latent_dims: tuple[int, ...] = ()
    ladder_units: int = 256
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    learning_rate_decay: str = "none"
    beta: float = 1.0
    kl_warmup_steps: int = 0
    kl_schedule: str = "linear"
    kl_cycle_steps: int = 0
    kl_method: str = "auto"
    free_bits: float = 0.0
    free_bits_group_size: int = 1
    objective: str = "elbo"
    samples_per_example: int = 1
    clip_global_norm: float = 0.0
    gradient_spike_factor: float = 0.0
    seed: int = 0
    strategy: str = "default"
    devices: tuple[str, ...] = ()
    logical_cpu_devices: int = 0
    precision: str = "float32"
    jit_compile: str = "auto"
    steps_per_execution: int = 50
    deterministic: bool = False
    checkpoint_every_steps: int = 2000
    checkpoint_every_seconds: float = 0.0
    max_checkpoints: int = 3
    summary_every_steps: int = 200
    eval_every_epochs: int = 1
    validation_examples: int = 2000
    test_binarization_seed: int = 0
    early_stopping_patience: int = 0

    def __post_init__(self):
        self.hidden_units = tuple(int(u) for u in self.hidden_units)
        self.flow_hidden_units = tuple(int(u) for u in self.flow_hidden_units)
        self.devices = tuple(str(d) for d in self.devices)
        self.latent_dims = tuple(int(d) for d in self.latent_dims)
        self.image_size = tuple(int(d) for d in self.image_size)
        if self.latent_dims:
            self.latent_dim = sum(self.latent_dims)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> TrainConfig:
        """The config of ``values``; a one-line ValueError names unknown fields and ``source``.

        A run's config.json also records the tfvae version that wrote it
        (``VERSION_KEY``): that entry is not a setting and is left out
        (``tfvae.load_config(model_dir)`` also checks the version). A
        discretized logistic config without ``pixel_mixture`` was written
        before that field existed, by tfvae 0.3.0, whose mixture is
        ``per_channel``.
        """
        values = {name: value for name, value in values.items() if name != VERSION_KEY}
        if "pixel_mixture" not in values and values.get("likelihood") == "discretized_logistic":
            values["pixel_mixture"] = "per_channel"
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source} has unknown fields {unknown}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """The config of a JSON object, e.g. a run's config.json: ``TrainConfig.from_json(open(path).read())``."""
        return cls.from_dict(json.loads(text), "config.json")


# Each field with a fixed set of values, and the module's tuple that defines it.
CHOICES = {
    "likelihood": decoders.LIKELIHOODS,
    "gaussian_scale": decoders.GAUSSIAN_SCALES,
    "pixel_mixture": decoders.PIXEL_MIXTURES,
    "posterior": encoders.POSTERIORS,
    "prior": priors.PRIORS,
    "flow": priors.PRIOR_FLOWS,
    "architecture": networks.ARCHITECTURES,
    "normalization": resnet.NORMALIZATIONS,
    "kl_schedule": schedules.SCHEDULES,
    "kl_method": objectives.KL_METHODS,
    "objective": losses.OBJECTIVES,
    "learning_rate_decay": optimizers.LEARNING_RATE_DECAYS,
    "precision": optimizers.PRECISIONS,
    "strategy": distribute.STRATEGIES,
    "jit_compile": JIT_COMPILE_MODES,
    "input_mode": data.INPUT_MODES,
}
_POSITIVE = ("memory_budget_mb", "shuffle_buffer", "latent_dim", "ladder_units", "epochs", "batch_size", "steps_per_execution", "checkpoint_every_steps",
             "max_checkpoints", "summary_every_steps", "eval_every_epochs", "mixture_components", "flow_steps",
             "samples_per_example", "learning_rate")
_NON_NEGATIVE = ("train_examples", "clip_global_norm", "gradient_spike_factor", "validation_examples", "logical_cpu_devices",
                 "prior_components", "early_stopping_patience", "checkpoint_every_seconds", "blocks_per_level")


def validate(config: TrainConfig) -> None:
    """Raises a one-line ValueError naming the first field whose value is out of its own range.

    Rules that relate several fields (free bits and the objective, the
    cyclical schedule's lengths, a conditional VampPrior, ...) belong to the
    parts that own them: ``factory.check_config`` builds the parts once to
    apply them.
    """
    for name, choices in CHOICES.items():
        if getattr(config, name) not in choices:
            raise ValueError(f"{name} must be one of {choices}; got {getattr(config, name)!r}")
    for name in _POSITIVE:
        if not getattr(config, name) > 0:
            raise ValueError(f"{name} must be > 0; got {getattr(config, name)}")
    for name in _NON_NEGATIVE:
        if not getattr(config, name) >= 0:
            raise ValueError(f"{name} must be >= 0; got {getattr(config, name)}")
    streaming.check_shuffle_buffer(config.shuffle_buffer)
    if 0 < config.gradient_spike_factor <= 1:
        raise ValueError(f"gradient_spike_factor must be 0 (off) or > 1; got {config.gradient_spike_factor}")
    if config.channels not in sources.CHANNELS:
        raise ValueError(f"channels must be one of {sources.CHANNELS} (0: as stored); got {config.channels}")
    if config.image_size and (len(config.image_size) != 2 or min(config.image_size) <= 0):
        raise ValueError(f"image_size must be empty or two positive ints H,W; got {list(config.image_size)}")
    if not 1 <= config.max_value <= 255:
        raise ValueError(f"max_value must be an int in [1, 255] (the value of integer data that means 1.0); got "
                         f"{config.max_value}")
    if not config.label_column.strip():
        raise ValueError(f"label_column must name a CSV column; got {config.label_column!r}")
    if not 0.0 < config.validation_split < 1.0:
        raise ValueError(f"validation_split must lie in (0, 1); got {config.validation_split}")
    if config.latent_dims and min(config.latent_dims) <= 0:
        raise ValueError(f"latent_dims must be positive ints; got {list(config.latent_dims)}")
    for name in ("hidden_units", "flow_hidden_units"):
        units = getattr(config, name)
        if not units or min(units) <= 0:
            raise ValueError(f"{name} must be a non-empty list of positive ints; got {list(units)}")


def field_help() -> dict[str, str]:
    """{field: help text} from the ``Attributes:`` section of TrainConfig's docstring (the flags' help)."""
    section = TrainConfig.__doc__.split("Attributes:", 1)[1]
    entries = re.findall(r"^ {6}(\w+): (.*?)(?=^ {6}\w+: |\Z)", section, flags=re.M | re.S)
    return {name: " ".join(text.split()) for name, text in entries}


def uses_xla(config: TrainConfig, gpu_available: bool) -> bool:
    """Whether the run compiles its steps with XLA.

    ``auto`` compiles everything except convolutions on CPU: XLA's CPU
    convolutions (in a fused multi-step loop above all) run far slower than
    TensorFlow's oneDNN kernels; see scripts/benchmark.py.
    """
    if config.jit_compile != "auto":
        return config.jit_compile == "on"
    return config.architecture not in networks.CONVOLUTIONAL or gpu_available
