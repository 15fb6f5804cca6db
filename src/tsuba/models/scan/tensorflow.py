"""TensorFlow SavedModel (``saved_model.pb``), frozen GraphDefs and Keras ``keras_metadata.pb``,
decoded from the protobuf wire format without TensorFlow.

Graph operators that run Python or reach the file system are findings, wherever they sit:
in the main graph or in any function of the library.
"""

from __future__ import annotations

from tsuba.models.scan import keras
from tsuba.models.scan.context import ScanContext
from tsuba.models.scan.report import Severity
from tsuba.models.scan.view import View
from tsuba.models.scan.wire import LEN, VARINT, Field, WireError, by_number

# op -> (severity, why)
DANGEROUS_OPS: dict[str, tuple[Severity, str]] = {
    "PyFunc": (Severity.CRITICAL, "calls a Python function"),
    "PyFuncStateless": (Severity.CRITICAL, "calls a Python function"),
    "EagerPyFunc": (Severity.CRITICAL, "calls a Python function"),
    "ReadFile": (Severity.HIGH, "reads any file"),
    "WriteFile": (Severity.HIGH, "writes any file"),
    "MatchingFiles": (Severity.HIGH, "lists files"),
    "ImmutableConst": (Severity.HIGH, "maps a file into memory"),
    "PrintV2": (Severity.LOW, "prints, and can write to a file"),
    "LoadAndRemapMatrix": (Severity.MEDIUM, "reads a checkpoint from a path in the graph"),
    "DebugIdentityV2": (Severity.MEDIUM, "writes debug dumps to a path in the graph"),
    "CollectiveBcastRecvV2": (Severity.LOW, "network collective"),
}


def scan_tf_protobuf(ctx: ScanContext, view: View, top: dict[int, list[Field]],
                     location: str) -> str:
    try:
        if _is_saved_model(top):
            for meta in top.get(2, []):
                parts = by_number(meta.view(view))
                for graph in parts.get(2, []):
                    _graph(ctx, view, graph.view(view), location)
            return "tf-savedmodel"
        if _is_graph_def(view, top):
            _graph(ctx, view, view, location)
            return "tf-graphdef"
        if _is_keras_metadata(view, top):
            for node in top.get(1, []):
                for f in by_number(node.view(view)).get(4, []):
                    raw = f.bytes(view)
                    if b'"class_name"' in raw:
                        keras.scan_config_bytes(ctx, raw, location)
            return "keras-metadata"
    except WireError as exc:
        ctx.unparseable(location, f"TensorFlow protobuf does not parse: {exc}",
                        exc.offset - view.start)
        return "tf-protobuf"
    return "protobuf"


def _is_saved_model(top: dict[int, list[Field]]) -> bool:
    return bool(top.get(2)) and all(f.wire_type == LEN for f in top[2]) and \
        all(f.wire_type == VARINT for f in top.get(1, [])) and set(top) <= {1, 2}


def _is_graph_def(view: View, top: dict[int, list[Field]]) -> bool:
    nodes = top.get(1, [])
    if not nodes or not all(f.wire_type == LEN for f in nodes) or set(top) - {1, 2, 3, 4, 5}:
        return False
    try:
        first = by_number(nodes[0].view(view))
    except WireError:
        return False
    return bool(first.get(2)) and first[2][0].wire_type == LEN


def _is_keras_metadata(view: View, top: dict[int, list[Field]]) -> bool:
    nodes = top.get(1, [])
    return bool(nodes) and set(top) == {1} and all(f.wire_type == LEN for f in nodes)


def _graph(ctx: ScanContext, view: View, graph: View, location: str) -> None:
    parts = by_number(graph)
    for node in parts.get(1, []):
        _node(ctx, view, node.view(view), location)
    for library in parts.get(2, []):
        for function in by_number(library.view(view)).get(1, []):
            for node in by_number(function.view(view)).get(3, []):
                _node(ctx, view, node.view(view), location)


def _node(ctx: ScanContext, view: View, node: View, location: str) -> None:
    parts = by_number(node)
    ops = parts.get(2, [])
    if not ops:
        return
    op = ops[-1].text(view)
    hit = DANGEROUS_OPS.get(op)
    if hit is not None:
        name = parts[1][-1].text(view) if parts.get(1) else "?"
        ctx.add_once(op, "tensorflow.dangerous-op", hit[0],
                     f"graph uses operator {op} ({hit[1]}), e.g. node {name!r}", location, op=op)
