"""The append-only, hash-chained audit log (GDPR Art. 5(2) accountability)."""
