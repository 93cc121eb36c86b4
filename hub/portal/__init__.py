"""„Mein Verfahren“: the client's own view of their case and of who used their data."""
