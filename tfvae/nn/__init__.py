"""nn: the networks inside encoders, decoders and priors.

  networks.py  MLP and conv trunks, the one-channel likelihood head
  resnet.py    residual conv trunks (architecture="resnet")
  flows.py     MADE and coupling networks, and the TFP bijectors built on them

May import: core.
"""
