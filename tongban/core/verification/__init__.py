"""Verification for remote offices (核验): what a service window asks, and the signed answer.

- :mod:`.identifiers` checks and normalizes what was presented (ID numbers, USCCs, license ids, names);
- :mod:`.purposes` the purposes (用证事由) a verification may name;
- :mod:`.status` what a record's status means (valid, expired, suspended, revoked, cancelled, moved);
- :mod:`.records` the one place records are looked up (swap it for the encrypted store's keyed lookup);
- :mod:`.compare` matches a presented claim against the stored record;
- :mod:`.attestation` signs an answer as a JWT (EdDSA) and checks one offline;
- :mod:`.statuslist` the signed list of records no longer valid, with deltas since a time;
- :mod:`.proof` a record's provenance: leaf, Merkle paths and signed manifests back to its issuer;
- :mod:`.offices` remote offices: hashed tokens, scopes, rate limits;
- :mod:`.scope` what an office may see and ask;
- :mod:`.service` one verification end to end (lookup, compare, mask, attest).
"""

from __future__ import annotations

from tongban.core.verification.errors import VerifyError

__all__ = ["VerifyError"]
