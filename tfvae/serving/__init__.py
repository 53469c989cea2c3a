"""serving: the SavedModel that TensorFlow Serving loads, and requests to it.

  export.py    the serving module (one signature per job), the model card, export_model
  warmup.py    TF Serving warm-up records
  requests.py  REST (row and columnar) and gRPC requests

May import: core, models, objectives.
"""
