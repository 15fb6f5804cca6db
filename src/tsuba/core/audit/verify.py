"""Check exported audit proofs with nothing but the log's public key (PEM) and the JSON.

No database, no settings: this module needs only ``cryptography`` and the standard library,
so an auditor can check proofs away from the system that produced them.  Failures raise
:class:`tsuba.core.errors.IntegrityError` (the proof or signature is wrong) or
:class:`tsuba.core.errors.InputError` (the JSON is malformed).

Encodings: hashes, log ids, key ids and signatures are lowercase hex; entry bytes are
standard base64 with padding.  Every object carries a ``format`` with a version; a reader
refuses formats it does not know and fields it does not expect.

Signed tree head, ``"format": "tsuba-audit-sth/v1"``: see :mod:`tsuba.core.audit.treehead`
for the fields and the exact signed bytes.

Inclusion proof, ``"format": "tsuba-audit-inclusion/v1"``::

    {"format": "tsuba-audit-inclusion/v1", "log_id": "<hex>", "leaf_index": 41,
     "tree_size": 1000, "entry": "<base64 of the entry bytes, verbatim>",
     "leaf_hash": "<hex>", "inclusion_path": ["<hex>", ...],
     "consistency_path": ["<hex>", ...],     # optional: tree_size -> sth.tree_size
     "sth": {...signed tree head...}}        # optional: the head the proof ties to

``inclusion_path`` is RFC 9162 ``PATH(leaf_index, D[tree_size])``.  When ``tree_size`` is
below the signed head's size, ``consistency_path`` is ``PROOF(tree_size, D[sth.tree_size])``
and the verifier checks it against the root the inclusion proof yields.

Consistency proof, ``"format": "tsuba-audit-consistency/v1"``::

    {"format": "tsuba-audit-consistency/v1", "log_id": "<hex>", "first_size": 500,
     "second_size": 1000, "first_root": "<hex>", "second_root": "<hex>",
     "path": ["<hex>", ...],                  # RFC 9162 PROOF(first_size, D[second_size])
     "first_sth": {...}, "second_sth": {...}} # optional: signed heads at those sizes

A tree head passed as an argument takes precedence over one embedded in the proof: pass
the head you saved earlier to check the log against your own record of it.
"""

from __future__ import annotations

from tsuba.core.audit import merkle
from tsuba.core.audit._fields import JsonInput, load_object
from tsuba.core.audit.proofs import ConsistencyProof, InclusionProof
from tsuba.core.audit.treehead import SignedTreeHead, load_public_key
from tsuba.core.errors import InputError, IntegrityError

__all__ = ["verify_consistency", "verify_inclusion", "verify_tree_head"]


def verify_tree_head(sth_json: JsonInput, public_key_pem: bytes | str) -> SignedTreeHead:
    """The signed tree head, once its signature verifies under ``public_key_pem``."""
    sth = SignedTreeHead.from_dict(load_object(sth_json, "signed tree head"))
    sth.check(load_public_key(public_key_pem))
    return sth


def _head_for(
    given: JsonInput | None, embedded: SignedTreeHead | None, size_hint: str
) -> SignedTreeHead:
    if given is not None:
        return SignedTreeHead.from_dict(load_object(given, "signed tree head"))
    if embedded is not None:
        return embedded
    raise InputError(f"no signed tree head for {size_hint}: pass the one you hold")


def verify_inclusion(
    proof_json: JsonInput, sth_json: JsonInput | None, public_key_pem: bytes | str
) -> InclusionProof:
    """The proof, once its entry is shown to be in the log the signed head commits to."""
    proof = InclusionProof.from_dict(load_object(proof_json, "inclusion proof"))
    sth = _head_for(sth_json, proof.sth, f"the proof (tree size {proof.tree_size})")
    sth.check(load_public_key(public_key_pem))
    if sth.log_id != proof.log_id:
        raise IntegrityError("inclusion proof and signed tree head belong to different logs")
    leaf = merkle.leaf_hash(proof.entry)
    if leaf != proof.leaf_hash:
        raise IntegrityError(f"entry {proof.leaf_index}: bytes do not hash to the leaf hash")
    if proof.tree_size > sth.tree_size:
        raise IntegrityError(
            f"inclusion proof is for tree size {proof.tree_size}, beyond the signed head's "
            f"{sth.tree_size}"
        )
    try:
        root = merkle.root_from_inclusion_proof(
            proof.leaf_index, proof.tree_size, leaf, proof.inclusion_path
        )
    except merkle.ProofError as exc:
        raise IntegrityError(f"inclusion proof does not verify: {exc}") from exc
    if proof.tree_size == sth.tree_size:
        if proof.consistency_path:
            raise IntegrityError("inclusion proof carries a consistency path it cannot use")
        if root != sth.root_hash:
            raise IntegrityError(
                f"inclusion proof of entry {proof.leaf_index} does not verify against the "
                f"signed root of size {sth.tree_size}"
            )
    elif not merkle.verify_consistency(
        proof.tree_size, sth.tree_size, root, sth.root_hash, proof.consistency_path
    ):
        raise IntegrityError(
            f"inclusion proof of entry {proof.leaf_index} at size {proof.tree_size} does not "
            f"extend to the signed head of size {sth.tree_size}"
        )
    return proof


def verify_consistency(
    proof_json: JsonInput,
    first_sth_json: JsonInput | None,
    second_sth_json: JsonInput | None,
    public_key_pem: bytes | str,
) -> ConsistencyProof:
    """The proof, once the first signed head is shown to be a prefix of the second."""
    proof = ConsistencyProof.from_dict(load_object(proof_json, "consistency proof"))
    key = load_public_key(public_key_pem)
    first = _head_for(first_sth_json, proof.first_sth, f"size {proof.first_size}")
    second = _head_for(second_sth_json, proof.second_sth, f"size {proof.second_size}")
    for sth in (first, second):
        sth.check(key)
        if sth.log_id != proof.log_id:
            raise IntegrityError("consistency proof and signed tree head belong to different logs")
    if (first.tree_size, second.tree_size) != (proof.first_size, proof.second_size):
        raise IntegrityError(
            f"consistency proof is from size {proof.first_size} to {proof.second_size}, the "
            f"signed heads are of sizes {first.tree_size} and {second.tree_size}"
        )
    if (first.root_hash, second.root_hash) != (proof.first_root, proof.second_root):
        raise IntegrityError("consistency proof names roots other than the signed heads'")
    if not merkle.verify_consistency(
        proof.first_size, proof.second_size, first.root_hash, second.root_hash, proof.path
    ):
        raise IntegrityError(
            f"log of size {proof.second_size} is not an extension of the log of size "
            f"{proof.first_size}: consistency proof does not verify"
        )
    return proof
