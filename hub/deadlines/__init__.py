"""Deadline clocks (design §10): period arithmetic on the NRW calendar and the pure clock rules.

``calendar`` does §§ 187-193 BGB date arithmetic; ``domain`` turns a referral's status history
into the state of each clock. No database, no Kafka: the engine around them lives elsewhere.
"""
