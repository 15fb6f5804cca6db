"""Helpers for model tests: key files and small Hugging Face style model folders."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def pem_of(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_key_files(key: ec.EllipticCurvePrivateKey, where: Path) -> tuple[Path, Path]:
    """The private and public key as PEM files (what model_signing's CLI takes)."""
    private = where / "key.pem"
    public = where / "key.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(pem_of(key))
    return private, public


def safetensors(size: int) -> bytes:
    """A valid safetensors file of about ``size`` bytes: one random uint8 tensor."""
    header = json.dumps(
        {"weight": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}
    ).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + os.urandom(size)


def make_model(root: Path, *, big: int = 300_000, empty: bool = False) -> Path:
    """A small model folder laid out like a Hugging Face repository."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}\n')
    (root / "tokenizer.json").write_text('{"version": "1.0"}\n')
    (root / "model-00001-of-00002.safetensors").write_bytes(safetensors(big))
    (root / "model-00002-of-00002.safetensors").write_bytes(safetensors(big // 3 + 7))
    (root / "nested").mkdir(exist_ok=True)
    (root / "nested" / "generation_config.json").write_text('{"top_p": 0.9}\n')
    if empty:
        (root / "nested" / "empty.txt").write_bytes(b"")
    return root
