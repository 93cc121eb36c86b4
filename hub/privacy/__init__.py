"""Data protection across the features: erasure, retention and the Art. 15 access report.

They call every feature; the sealing the features call lives below them in ``hub.crypto``."""
