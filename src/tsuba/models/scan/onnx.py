"""ONNX models, read from the protobuf wire format (no ``onnx`` package needed): operators
from custom domains (they need a native library registered by the loader) and external data
paths that leave the model's folder (CVE-2024-27318, CVE-2024-5187).

Protobuf files that are not ONNX are handed to the TensorFlow scanner.
"""

from __future__ import annotations

from types import ModuleType

from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.report import Severity
from tsuba.models.scan.view import View
from tsuba.models.scan.wire import LEN, VARINT, Field, WireError, by_number, fields

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training",
                              "ai.onnx.preview.training", "com.microsoft",
                              "com.microsoft.nchwc", "com.microsoft.experimental",
                              "org.pytorch.aten", "ai.onnx.contrib"})
_MAX_DEPTH = 32


def is_onnx(top: dict[int, list[Field]]) -> bool:
    graph = top.get(7, [])
    return bool(graph) and graph[0].wire_type == LEN and (
        any(f.wire_type == VARINT for f in top.get(1, [])) or 8 in top
    )


def scan_protobuf(ctx: ScanContext, view: View, location: str, depth: int,
                  tensorflow: ModuleType) -> str:
    try:
        top = by_number(view)
    except WireError:
        return "unknown"
    if is_onnx(top):
        try:
            _model(ctx, view, top, location)
        except WireError as exc:
            ctx.unparseable(location, f"ONNX model does not parse: {exc}", exc.offset - view.start)
        return "onnx"
    result: str = tensorflow.scan_tf_protobuf(ctx, view, top, location)
    return result


def _model(ctx: ScanContext, view: View, top: dict[int, list[Field]], location: str) -> None:
    for opset in top.get(8, []):
        domain = _string(view, opset.view(view), 1)
        if domain not in STANDARD_DOMAINS:
            ctx.add_once(f"opset:{domain}", "onnx.custom-domain", Severity.MEDIUM,
                         f"imports operator set {domain!r}: its kernels come from a native "
                         "library the loader must register", location, domain=domain)
    for graph in top.get(7, []):
        _graph(ctx, view, graph.view(view), location, 0)
    for function in top.get(25, []):  # FunctionProto: node = 7
        for node in by_number(function.view(view)).get(7, []):
            _node(ctx, view, node.view(view), location, 0)


def _graph(ctx: ScanContext, view: View, graph: View, location: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise WireError("subgraphs nested too deep", graph.start)
    parts = by_number(graph)
    for node in parts.get(1, []):
        _node(ctx, view, node.view(view), location, depth)
    for tensor in parts.get(5, []) + parts.get(15, []):
        _tensor(ctx, view, tensor.view(view), location)


def _node(ctx: ScanContext, view: View, node: View, location: str, depth: int) -> None:
    parts = by_number(node)
    op = _string_of(view, parts, 4)
    domain = _string_of(view, parts, 7)
    if domain not in STANDARD_DOMAINS:
        ctx.add_once(f"op:{domain}:{op}", "onnx.custom-domain", Severity.MEDIUM,
                     f"operator {op!r} from custom domain {domain!r} runs native code from a "
                     "library the loader registers", location, domain=domain, op=op)
    for attr in parts.get(5, []):  # AttributeProto: t = 5, g = 6, tensors = 10, graphs = 11
        sub = by_number(attr.view(view))
        for g in sub.get(6, []) + sub.get(11, []):
            _graph(ctx, view, g.view(view), location, depth + 1)
        for t in sub.get(5, []) + sub.get(10, []):
            _tensor(ctx, view, t.view(view), location)


def _tensor(ctx: ScanContext, view: View, tensor: View, location: str) -> None:
    parts = by_number(tensor)
    external = any(f.value == 1 for f in parts.get(14, []) if f.wire_type == VARINT)
    for entry in parts.get(13, []):  # external_data: StringStringEntryProto
        kv = by_number(entry.view(view))
        key = _string_of(view, kv, 1)
        value = _string_of(view, kv, 2)
        if key != "location":
            continue
        norm = value.replace("\\", "/")
        if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or \
                ".." in norm.split("/"):
            ctx.add("onnx.external-data", Severity.HIGH,
                    f"external data location {value!r} leaves the model folder "
                    "(arbitrary file read, CVE-2024-27318)", location, path=value)
        elif external:
            ctx.add_once(f"ext:{value}", "onnx.external-data", Severity.INFO,
                         f"weights stored in external file {value!r}", location, path=value)


def _string_of(view: View, parts: dict[int, list[Field]], number: int) -> str:
    values = parts.get(number, [])
    return values[-1].text(view) if values else ""


def _string(view: View, message: View, number: int) -> str:
    return _string_of(view, by_number(message), number)


def all_fields(message: View) -> list[Field]:
    return list(fields(message))
