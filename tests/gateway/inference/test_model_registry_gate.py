"""A gateway model backed by the model registry is served only while the registry allows it:
registered and verified, not quarantined; a quarantine takes effect within a second."""

from __future__ import annotations

import time
from pathlib import Path

import openai
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from inference_support import StackFactory

from tsuba.models.registry import Registry, register_model
from tsuba.models.sign import PrivateKeySigner


def _model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"architectures": ["Demo"], "hidden_size": 8}')
    (path / "weights.bin").write_bytes(bytes(range(256)) * 64)
    return path


def test_quarantine_stops_traffic_within_a_second(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    stack = make_stack(gateway={"models": {
        "demo": {"upstream": "demo", "routes": ["chat"], "registry": "demo-weights:1.0"},
        "demo-restricted": {"upstream": "demo"},
    }})
    client = openai.OpenAI(base_url=stack.v1, api_key=stack.keys["alice"], max_retries=0)

    def ask() -> str:
        reply = client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "hello"}])
        return reply.choices[0].message.content or ""

    with pytest.raises(openai.PermissionDeniedError, match=r"not registered|no registered"):
        ask()  # not in the registry yet: refused
    registry = Registry(stack.platform.engine, actor="test", emit=stack.platform.record)
    signer = PrivateKeySigner(ec.generate_private_key(ec.SECP256R1()), ref="test key")
    register_model(registry, "demo-weights", "1.0", _model_dir(tmp_path / "m"), signer=signer)
    deadline = time.monotonic() + 3
    while True:
        try:
            assert ask()
            break
        except openai.PermissionDeniedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    registry.quarantine("demo-weights:1.0", "suspicious drift")
    start = time.monotonic()
    while True:
        try:
            ask()
        except openai.PermissionDeniedError as exc:
            assert "quarantined" in str(exc)
            break
        assert time.monotonic() - start < 2, "quarantine not applied within a second"
        time.sleep(0.05)
