"""Each format: benign files made by the real libraries are clean; malicious, truncated,
empty, huge-header and malformed files get a finding (never a crash, never clean)."""

from __future__ import annotations

import io
import json
import pickle as P
import struct
from pathlib import Path

import pytest
from scan_builders import gguf, npy, pb_field, reduce_call, safetensors, torch_like_zip, zip_bytes

from tsuba.models.scan import Severity, scan_bytes, scan_path

np = pytest.importorskip("numpy")


def clean(data: bytes, name: str = "f") -> None:
    result = scan_bytes(data, name)
    assert result.max_severity is None or result.max_severity <= Severity.INFO, [
        f.to_dict() for f in result.findings]


def flagged(data: bytes, name: str = "f", at_least: Severity = Severity.MEDIUM) -> set[str]:
    result = scan_bytes(data, name)
    assert result.max_severity is not None and result.max_severity >= at_least, [
        f.to_dict() for f in result.findings]
    return {f.rule for f in result.findings}


def truncations(data: bytes) -> list[bytes]:
    cuts = sorted({1, 2, 7, 8, 9, 12, 16, 40, len(data) // 3, len(data) // 2, len(data) - 1})
    return [data[:c] for c in cuts if 0 < c < len(data)]


# -- PyTorch ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():  # type: ignore[no-untyped-def]
    return pytest.importorskip("torch")


def _torch_bytes(torch, obj, **kw) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    torch.save(obj, buf, **kw)
    return buf.getvalue()


def test_real_torch_checkpoints_are_clean(torch) -> None:  # type: ignore[no-untyped-def]
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    for obj in (net.state_dict(), {"epoch": 3, "model": net.state_dict(),
                                   "opt": torch.optim.SGD(net.parameters(), 0.1).state_dict()},
                [torch.zeros(3, dtype=torch.bfloat16), torch.arange(4).view(2, 2).t()]):
        clean(_torch_bytes(torch, obj), "model.pt")
        clean(_torch_bytes(torch, obj, _use_new_zipfile_serialization=False), "legacy.pt")


def test_full_module_pickle_is_clean_and_formats_are_named(torch) -> None:  # type: ignore[no-untyped-def]
    data = _torch_bytes(torch, torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh()))
    result = scan_bytes(data, "model.pt")
    assert result.format == "pytorch-zip" and result.max_severity is None
    legacy = _torch_bytes(torch, {"w": torch.ones(2)}, _use_new_zipfile_serialization=False)
    assert scan_bytes(legacy).format == "pytorch-legacy"


def test_torch_storage_checks(torch) -> None:  # type: ignore[no-untyped-def]
    pkl = P.dumps(0)  # no storages needed
    data_pkl = _torch_bytes(torch, {"w": torch.ones(4)})
    import zipfile

    z = zipfile.ZipFile(io.BytesIO(data_pkl))
    members = {i.filename: z.read(i.filename) for i in z.infolist()}
    short = {k: (v[:4] if "/data/" in k else v) for k, v in members.items()}
    assert "torch.storage" in flagged(zip_bytes(short), "model.pt")
    missing = {k: v for k, v in members.items() if "/data/" not in k}
    assert "torch.storage" in flagged(zip_bytes(missing), "model.pt")
    assert pkl


def test_torchscript_archive_is_flagged(torch) -> None:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), buf)
    assert "torch.torchscript" in flagged(buf.getvalue(), "model.pt")


def test_torch_truncations_are_findings(torch) -> None:  # type: ignore[no-untyped-def]
    for data in (_torch_bytes(torch, {"w": torch.ones(3)}),
                 _torch_bytes(torch, {"w": torch.ones(3)}, _use_new_zipfile_serialization=False)):
        for cut in truncations(data):
            result = scan_bytes(cut, "model.pt")
            assert result.max_severity is not None and result.max_severity >= Severity.LOW, len(cut)


def test_malicious_pickle_in_a_storage_record_is_found() -> None:
    data = torch_like_zip(P.dumps({}, 2), storages={"0": reduce_call("os", "system", "id")})
    assert flagged(data, "model.pt", Severity.CRITICAL)


# -- numpy ------------------------------------------------------------------------------------


def _np_save(arr, **kw) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def test_real_numpy_files_are_clean(tmp_path: Path) -> None:
    for arr in (np.arange(10.0), np.zeros((3, 4), dtype="<U7"), np.ones(5, dtype=[("a", "<f4"),
                                                                                   ("b", "<i8")]),
                np.array([1, "x", None], dtype=object)):
        clean(_np_save(arr, allow_pickle=True), "a.npy")
    np.savez(tmp_path / "z.npz", a=np.arange(3), b=np.ones(2))
    np.savez_compressed(tmp_path / "zc.npz", a=np.arange(3))
    report = scan_path(tmp_path)
    assert report.max_severity is None
    assert {r.format for r in report.files} == {"npz"}


def test_numpy_object_array_with_payload_and_bad_headers() -> None:
    evil = npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
               reduce_call("os", "system", "id", protocol=3))
    assert "pickle.dangerous-import" in flagged(evil, "a.npy", Severity.CRITICAL)
    assert flagged(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (10,), }",
                       b"\0" * 16), "a.npy")  # truncated data
    assert flagged(npy("__import__('os').system('id')", b""), "a.npy")  # not a literal
    huge = b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + b"{"
    assert flagged(huge, "a.npy")
    for cut in truncations(_np_save(np.arange(8.0))):
        flagged(cut, "a.npy", Severity.LOW) if cut[:6] == b"\x93NUMPY" else None


# -- joblib / scikit-learn --------------------------------------------------------------------


def test_real_sklearn_joblib_models_are_clean(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    pytest.importorskip("sklearn")
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.random.default_rng(0).random((40, 3))
    y = (x[:, 0] > 0.5).astype(int)
    models = [LogisticRegression().fit(x, y), RandomForestClassifier(n_estimators=3).fit(x, y),
              make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)]
    for i, model in enumerate(models):
        joblib.dump(model, tmp_path / f"m{i}.joblib")
        joblib.dump(model, tmp_path / f"m{i}.z.joblib", compress=3)
        joblib.dump({"m": model, "o": np.array([1, "a"], dtype=object)}, tmp_path / f"o{i}.pkl")
    report = scan_path(tmp_path)
    assert report.max_severity is None, report.to_text()


def test_joblib_object_array_payload_is_found(tmp_path: Path) -> None:
    joblib = pytest.importorskip("joblib")
    import os

    class Evil:  # pickled by reference only; the file is never loaded
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return os.system, ("id",)

    obj = np.empty(1, dtype=object)
    obj[0] = Evil()
    joblib.dump({"a": np.arange(100.0), "o": obj, "b": np.ones(3)}, tmp_path / "m.joblib")
    report = scan_path(tmp_path / "m.joblib")
    assert report.max_severity is Severity.CRITICAL
    assert report.files[0].format == "joblib"


# -- safetensors ------------------------------------------------------------------------------


def test_real_safetensors_is_clean() -> None:
    st = pytest.importorskip("safetensors.numpy")
    data = st.save({"a": np.zeros((3, 4), dtype=np.float32), "b": np.ones(2, dtype=np.int64)},
                   metadata={"format": "pt"})
    clean(data, "model.safetensors")


@pytest.mark.parametrize(
    ("header", "data"),
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),  # overlap
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 16),  # gap at end
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),  # size
        ({"a": {"dtype": "X99", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),  # dtype
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8),  # shape
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8),  # order
        ({"__metadata__": {"k": 1}}, b""),  # metadata values must be strings
        (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": 1}', b"\0" * 4),
        (b"{not json", b""),
    ],
)
def test_malformed_safetensors_headers(header: object, data: bytes) -> None:
    assert "format.unparseable" in flagged(safetensors(header, data), "m.safetensors")  # type: ignore[arg-type]


def test_safetensors_header_length_lies() -> None:
    assert flagged(struct.pack("<Q", 200_000_000) + b"{" + b" " * 100, "m.safetensors")
    assert flagged(struct.pack("<Q", 50) + b'{"a": 1}', "m.safetensors")


# -- GGUF -------------------------------------------------------------------------------------


def test_gguf_benign_and_malformed() -> None:
    template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"
                "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    good = gguf({"general.architecture": "llama", "general.alignment": 32,
                 "tokenizer.chat_template": template}, [("w", [8], 0, 0)], b"\0" * 32)
    clean(good, "m.gguf")
    assert flagged(gguf({"a": "b"}, [("w", [8], 0, 64)], b"\0" * 32), "m.gguf")  # outside data
    huge = b"GGUF" + struct.pack("<IQQ", 3, 0, 1 << 62)
    assert flagged(huge, "m.gguf")
    for cut in truncations(good):
        flagged(cut, "m.gguf") if len(cut) >= 4 else None
    include = gguf({"tokenizer.chat_template": "{% include 'x' %}"})
    assert "gguf.chat-template" in flagged(include, "m.gguf", Severity.HIGH)


# -- Keras ------------------------------------------------------------------------------------


def _keras(config: object) -> bytes:
    return zip_bytes({"config.json": json.dumps(config).encode(),
                      "metadata.json": b'{"keras_version": "3.8.0"}'})


DENSE = {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
         "config": {"units": 4, "activation": "relu", "kernel_initializer": {
             "module": "keras.initializers", "class_name": "GlorotUniform", "config": {}}}}


def test_keras_zip_benign_and_custom_objects() -> None:
    seq = {"module": "keras", "class_name": "Sequential", "config": {"layers": [DENSE]}}
    clean(_keras(seq), "m.keras")
    custom = {"module": "keras", "class_name": "Sequential", "config": {"layers": [
        {"module": "my_layers", "class_name": "Fancy", "registered_name": "Custom>Fancy",
         "config": {}}]}}
    assert "keras.custom-object" in flagged(_keras(custom), "m.keras")
    vocab = {"module": "keras.layers", "class_name": "StringLookup",
             "config": {"vocabulary": "/etc/passwd"}}
    assert "keras.external-path" in flagged(_keras(vocab), "m.keras", Severity.HIGH)
    assert flagged(zip_bytes({"config.json": b"{broken", "metadata.json": b"{}"}), "m.keras")


def test_keras_h5_lambda_with_h5py(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    config = {"class_name": "Sequential", "config": {"layers": [{
        "class_name": "Lambda", "config": {"function": ["4wEAAAAA", None, None]}}]}}
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        f.attrs["keras_version"] = "2.15.0"
    report = scan_path(tmp_path / "m.h5")
    assert "keras.lambda" in {x.rule for x in report.findings}
    assert report.max_severity is Severity.CRITICAL
    with h5py.File(tmp_path / "ok.h5", "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential",
                                              "config": {"layers": [DENSE]}})
    assert scan_path(tmp_path / "ok.h5").max_severity is None


# -- ONNX and TensorFlow ----------------------------------------------------------------------


def test_real_onnx_model_is_clean_and_custom_domain_is_flagged() -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def model(domain: str) -> bytes:
        node = helper.make_node("Relu" if not domain else "Evil", ["x"], ["y"], domain=domain)
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
            [helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])])
        opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)]
                                                  if domain else [])
        return helper.make_model(graph, opset_imports=opsets).SerializeToString()

    clean(model(""), "m.onnx")
    assert "onnx.custom-domain" in flagged(model("com.evil"), "m.onnx")
    broken = model("")
    assert onnx is not None
    for cut in truncations(broken)[-3:]:
        result = scan_bytes(cut, "m.onnx")
        assert result.max_severity is not None and result.max_severity >= Severity.LOW


def test_tensorflow_saved_model_ops() -> None:
    def node(name: str, op: str) -> bytes:
        return pb_field(1, name.encode()) + pb_field(2, op.encode())

    graph = pb_field(1, node("x", "Placeholder")) + pb_field(1, node("f", "ReadFile"))
    lib = pb_field(2, pb_field(1, pb_field(1, pb_field(1, b"fn")) + pb_field(3, node("p",
                                                                                     "PyFunc"))))
    saved = pb_field(1, 1) + pb_field(2, pb_field(2, graph + lib))
    result = scan_bytes(saved, "saved_model.pb")
    assert result.format == "tf-savedmodel"
    ops = {f.detail.get("op") for f in result.findings}
    assert {"ReadFile", "PyFunc"} <= ops
    assert result.max_severity is Severity.CRITICAL
    benign = pb_field(1, 1) + pb_field(2, pb_field(2, pb_field(1, node("x", "MatMul"))))
    clean(benign, "saved_model.pb")


# -- empty and unknown ------------------------------------------------------------------------


def test_empty_and_unrecognized_files(tmp_path: Path) -> None:
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "weird.pt").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    (tmp_path / "README.md").write_text("# a model\n")
    report = scan_path(tmp_path)
    by = {Path(r.path).name: r for r in report.files}
    assert {f.rule for f in by["empty.pt"].findings} == {"format.empty"}
    assert {f.rule for f in by["weird.pt"].findings} == {"format.unrecognized"}
    assert by["README.md"].findings == []
