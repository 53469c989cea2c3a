"""core: the pieces every other folder stands on.

  sampling.py        the one seed convention: stateless seeds, a replica's position, posterior draws
  counter_noise.py   counter-based (Philox) noise: a replica draws only its own examples', the same bits everywhere
  distribute.py      tf.distribute strategies from a name, replica mechanics (global batch)
  latents.py         latent structure in one place: a flat latent or a joint list of layers, asked the same way
  optimizer_step.py  OptimizerStep, a training step's mechanics after the gradients: replica reduction,
                     loss scaling, clipping, the spike guard, a step applied or skipped on every replica alike
  gradient_guard.py  the gradient spike guard
  files.py           atomic writes
  errors.py          DataError
  xla.py             tf.function that tells the code it traces whether XLA compiles it
  serialisable.py    the base of plain-Python parts that Keras serialises
  choices.py         the names a setting may take, registered by the module that implements them

May import: nothing else in tfvae.
"""
