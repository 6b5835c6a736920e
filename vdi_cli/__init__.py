"""vdi: video moment retrieval with Visual-Dynamic Injection.

The core package is torch-free at import time: heavy libraries are imported inside the functions
that need them, so `vdi --help` and the listing commands stay fast.
"""

__version__ = "0.1.0"
