"""vidrec's model library: data contract, encoders, two-tower model, metrics, top-k.

Pure code: arrays and frames in, arrays and frames out. Heavy frameworks (TensorFlow,
PyTorch) are imported inside the functions that need them, never at module top level.
"""

__version__ = "0.1.0"
