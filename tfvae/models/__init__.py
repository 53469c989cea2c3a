"""models: the probabilistic model and its parts, as Keras layers that return distributions.

  vae.py                  VAE: encoder, decoder, prior and objective composed into a keras.Model
  encoders.py             q(z|x): GaussianEncoder (diagonal, full covariance), IAFEncoder
  decoders.py             p(x|z): Bernoulli, continuous Bernoulli, Gaussian, discretized logistic, categorical
  priors.py               p(z): standard normal, mixture, VampPrior, flow
  hierarchical.py         top-down encoder and joint prior of a hierarchical VAE
  pixel_distributions.py  the discretized logistic bin over 8-bit values, and a mixture per channel value (0.3.0's)
  pixel_mixture.py        the discretized logistic mixture over whole pixels, channels coupled (the default)
  conditioning.py         a conditional part called without its condition: one error line
  moved_arguments.py      the arguments VAE took in tfvae 0.2: one error line naming their new home

May import: core, nn, objectives.
"""
