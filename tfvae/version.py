"""tfvae's version (read by setup.cfg and written into every run directory)."""

__version__ = "0.3.0"
