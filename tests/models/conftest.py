"""Shared by the model tests: loading this conftest puts tests/models on sys.path, so the
sign and registry tests import the same ``model_files`` helpers."""
