"""A linear-Gaussian latent variable model whose evidence is known in closed form.

  p(z) = N(0, I_d),  p(x|z) = N(W z + b, sigma^2 I_D)
  =>  p(x) = N(b, W W^T + sigma^2 I_D)
  exact posterior: p(z|x) = N(M^-1 W^T (x - b) / sigma^2, M^-1),  M = I + W^T W / sigma^2

With a Gaussian q(z|x) = N(m, diag(s^2)) the ELBO is also closed form:

  ELBO = log N(x; W m + b, sigma^2 I) - tr(W diag(s^2) W^T) / (2 sigma^2) - KL(q || p(z)).
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


class FixedLinearEncoder(keras.layers.Layer):
    """q(z|x) = N(x A + c, diag(scale^2)) with fixed A, c, scale."""

    def __init__(self, weight, bias, scale, **kwargs):
        super().__init__(**kwargs)
        self.weight = tf.constant(weight, tf.float32)
        self.bias_ = tf.constant(bias, tf.float32)
        self.scale = tf.constant(scale, tf.float32)

    def call(self, x):
        loc = tf.matmul(x, self.weight) + self.bias_
        return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.broadcast_to(self.scale, tf.shape(loc)))


class FixedLinearDecoder(keras.layers.Layer):
    """p(x|z) = Independent(Normal(z W^T + b, sigma), 1)."""

    def __init__(self, weight, bias, sigma, **kwargs):
        super().__init__(**kwargs)
        self.weight = tf.constant(weight, tf.float32)
        self.bias_ = tf.constant(bias, tf.float32)
        self.sigma = float(sigma)
        self.data_shape = [int(weight.shape[0])]

    def call(self, z):
        loc = tf.matmul(z, self.weight, transpose_b=True) + self.bias_
        return tfd.Independent(tfd.Normal(loc=loc, scale=self.sigma), reinterpreted_batch_ndims=1)


class LinearGaussianProblem:
    """Random W, b, sigma and data x drawn from the model."""

    def __init__(self, data_dim=5, latent_dim=2, sigma=0.5, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(size=(data_dim, latent_dim)).astype(np.float64)
        self.b = rng.normal(size=data_dim)
        self.sigma = sigma
        self.latent_dim = latent_dim
        z = rng.normal(size=(4, latent_dim))
        self.x = (z @ self.W.T + self.b + sigma * rng.normal(size=(4, data_dim))).astype(np.float32)

    def log_evidence(self, x):
        cov = self.W @ self.W.T + self.sigma**2 * np.eye(len(self.b))
        return tfd.MultivariateNormalFullCovariance(self.b, cov).log_prob(np.asarray(x, np.float64)).numpy()

    def exact_posterior(self):
        """(A, c, Sigma) with posterior mean x A + c and covariance Sigma (data-independent)."""
        precision = np.eye(self.latent_dim) + self.W.T @ self.W / self.sigma**2
        cov = np.linalg.inv(precision)
        A = (cov @ self.W.T / self.sigma**2).T
        c = -self.b @ A
        return A, c, cov

    def closed_form_elbo(self, x, A, c, scale):
        x = np.asarray(x, np.float64)
        m = x @ A + c
        mean_x = m @ self.W.T + self.b
        D = len(self.b)
        log_lik = (-0.5 * np.sum((x - mean_x) ** 2, 1) / self.sigma**2
                   - D * np.log(self.sigma) - 0.5 * D * np.log(2 * np.pi))
        trace = np.trace(self.W @ np.diag(scale**2) @ self.W.T)
        kl = 0.5 * np.sum(m**2 + scale**2 - 1 - 2 * np.log(scale), 1)
        return log_lik - trace / (2 * self.sigma**2) - kl

    def make_vae(self, A, c, scale, **kwargs):
        import tfvae

        return tfvae.VAE(
            encoder=FixedLinearEncoder(A, c, scale),
            decoder=FixedLinearDecoder(self.W, self.b, self.sigma),
            prior=tfvae.StandardNormalPrior(self.latent_dim),
            **kwargs,
        )
