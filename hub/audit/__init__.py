"""The audit log (GDPR Art. 5(2) accountability): leaves appended without a lock, a Merkle tree
built by one sequencer, signed checkpoints that also leave the database (RFC 9162, C2SP)."""
