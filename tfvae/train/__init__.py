"""train: a training run, from its config to its run directory.

  config.py       TrainConfig: six sections, read and written flat by setting name (flags, config.json)
  sections.py     the sections (data, model, loss, optimization, distribution, run), each setting documented
  settings.py     setting(): a field's default, help (the flag's), choices and range, declared together
  rules.py        the rules between settings, each with its one-line error
  factory.py      config -> VAE parts and objective
  training.py     train_and_evaluate, the recipe;   loops.py  the compiled training blocks
  data_defaults.py  defaults fitted to the data;   run_summary.py  the run's summary and warnings
  optimizers.py   the optimizer and precision;   hardware.py  whether a 16-bit precision is native, XLA
  checkpoints.py  save, restore, damaged and failed checkpoints
  rundir.py       the run directory's one layout;   runlock.py  one trainer per run directory
  preemption.py   SIGTERM/SIGINT;   summaries.py  TensorBoard
  loading.py      load_model;   cli.py  flags <-> TrainConfig for the scripts
  warm_start.py   --init_from: a new run starts from another model's weights (fine-tuning)
  device_check.py the accelerator path's acceptance check (scripts/gpu_check.py)

May import: core, nn, objectives, data, models, evaluation.
"""
