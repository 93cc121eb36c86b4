"""Crypto-shredding: personal fields encrypted under per-person data keys (design §9)."""
