"""Model signing and verification in the OpenSSF model signing format (key-based flavour).

``sign_path(path, signer)`` hashes a model folder or file, signs the manifest and writes a
Sigstore bundle; ``verify_path(path, keys)`` checks it and names every file modified, added,
removed or renamed.  Signatures interoperate with the ``model_signing`` tool in both
directions.
"""

from tsuba.models.sign.bundle import KeyStoreSigner, PrivateKeySigner, Signer, TrustedKey
from tsuba.models.sign.hashing import HashSpec
from tsuba.models.sign.keys import DEFAULT_SIGNING_KEY, key_store_keys, public_key_files
from tsuba.models.sign.manifest import Manifest
from tsuba.models.sign.signing import SignResult, hash_spec, sign_path
from tsuba.models.sign.verify import Change, ModelIntegrityError, VerifyReport, verify_path

__all__ = [
    "DEFAULT_SIGNING_KEY",
    "Change",
    "HashSpec",
    "KeyStoreSigner",
    "Manifest",
    "ModelIntegrityError",
    "PrivateKeySigner",
    "SignResult",
    "Signer",
    "TrustedKey",
    "VerifyReport",
    "hash_spec",
    "key_store_keys",
    "public_key_files",
    "sign_path",
    "verify_path",
]
