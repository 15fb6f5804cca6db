"""Model supply chain: scanning model files, signing and verification, registry, protection."""
