"""The ledger's proof document, for OpenAPI (its rules: pamtalk.ledger.proof)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

Hash = Annotated[
    str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, 64 lower-case hex digits")
]


class ProofAnchor(BaseModel):
    first: int = Field(description="the first entry under the anchor")
    last: int = Field(description="the last entry under the anchor")
    root: Hash
    receipt: dict[str, Any] | None = Field(description="the anchor sink's receipt; null: pending")


class LedgerProof(BaseModel):
    format: str = Field(description="pamtalk-ledger-proof/1")
    transaction_id: int
    record: str = Field(description="the transaction's canonical record (sorted compact JSON)")
    position: int = Field(description="the entry's place in the chain, from 1")
    prev_hash: Hash
    hash: Annotated[Hash, Field(description="SHA-256(prev_hash || record)")]
    anchor: ProofAnchor
    path: list[str] = Field(description="RFC 6962 audit path from the entry to the root")
