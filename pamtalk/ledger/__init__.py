"""The tamper-evident transaction ledger.

Every committed transaction is appended, in the same database transaction, to a hash chain
(:mod:`record` says what is hashed, :mod:`chain` appends). Every N entries or M minutes a
Merkle root over the new entries is sealed into an anchor and handed to an anchor sink
(:mod:`merkle`, :mod:`anchors`), here or through the ``blockchain_transactions`` queue to a
worker (:mod:`handover`, :mod:`tasks`). :mod:`proof` builds and checks a transaction's inclusion
proof; :mod:`verify` recomputes the whole chain and its anchors from the database.
"""
