"""int8 models that keep the engine's guarantees: a recurrent step of MatMuls, scanned over time,
its activations quantized at fixed scales.

ONNX Runtime's dynamic quantization scales each activation by its range over the whole call, so a
row's logits depend on its batch neighbours and on how its prompt was chunked (on the bundled
model: 1.7e-1 and 1.8e-2), and a seed no longer repeats under load. Static quantization covers
MatMuls but not the fused LSTM/GRU/RNN ops, so this module rewrites an fp32 contract file:

- each recurrent layer becomes its step: one MatMul of [input, h] (two for a GRU, whose reset
  gate multiplies the recurrent half alone) and the gates, elementwise; the first layer's input
  MatMul is folded with the embedding into one table, read by `Gather`;
- the step is the body of a `Scan` over the time axis, so priming a prompt and decoding one token
  run the same arithmetic, and the file keeps the contract (`tokens`, `state` in; `logits`,
  `state_out` out; any batch and time);
- every MatMul's input is a hidden state, which every cell keeps in [-1, 1]: it is quantized to
  uint8 (zero point 128) at a fixed scale, calibrated on training text when given (its largest
  |value| / 127; else the bound 1 / 127), its weights to int8 per output column, and
  `MatMulInteger` multiplies them exactly in integers before one fixed rescale.

No scale depends on the call, and each element of each row goes through the same operations
whatever its neighbours: a row's logits are independent of its batch and of chunking (tests:
exactly equal). Speed and loss against fp32 are measured in `bench/generation.py --int8`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from exporter.errors import ExportError

OPSET = 17
# MatMulIntegerToFloat is one of ONNX Runtime's contrib ops (domain com.microsoft).
OPSETS = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
#: The zero point of quantized activations: uint8 centred on 0, as MatMulInteger runs fastest
#: with uint8 activations and int8 weights.
ZERO_POINT = 128
#: The bound of every hidden state (LSTM: o * tanh(c); GRU: a mix of tanh and the previous h;
#: RNN: tanh), the quantization range used when no calibration text is given.
STATE_BOUND = 1.0
CALIBRATION_STREAMS = 16
CALIBRATION_STEPS = 512
# Gates per layer (ONNX's order: LSTM i, o, f, c; GRU z, r, h; RNN one).
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@dataclass(frozen=True)
class Layer:
    w: np.ndarray  # (gates * H, input) input weights
    r: np.ndarray  # (gates * H, H) recurrent weights
    wb: np.ndarray  # (gates * H,) input bias
    rb: np.ndarray  # (gates * H,) recurrent bias


@dataclass(frozen=True)
class Network:
    cell: str  # "LSTM", "GRU" or "RNN", as ONNX names the op
    embedding: np.ndarray  # (V, E)
    layers: tuple[Layer, ...]
    head_w: np.ndarray  # (H, V)
    head_b: np.ndarray  # (V,)

    @property
    def hidden(self) -> int:
        return int(self.layers[0].r.shape[1])

    @property
    def state_names(self) -> list[str]:
        """The body's state inputs, in the contract's order: every h, then (LSTM) every c."""
        names = [f"h{i}" for i in range(len(self.layers))]
        return names + [f"c{i}" for i in range(len(self.layers))] if self.cell == "LSTM" else names


def read_network(proto: onnx.ModelProto, source: Path) -> Network:
    """The weights of an fp32 contract file as `exporter.onnx_export` writes it."""
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    nodes = proto.graph.node
    recurrent = [n for n in nodes if n.op_type in GATES]
    embed = next((n for n in nodes if n.op_type == "Gather" and n.input[0] in weights), None)
    head = next(
        (n for n in nodes if n.op_type == "MatMul" and n.input[1] in weights), None
    )  # the output projection; its bias is the Add that follows
    bias = next(
        (n for n in nodes if n.op_type == "Add" and head and head.output[0] in n.input), None
    )
    if not recurrent or embed is None or head is None or bias is None:
        raise ExportError(f"{source} is not a charbot fp32 export: cannot rewrite it for int8")
    cell = recurrent[0].op_type
    for node in recurrent:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        unsupported = set(attrs) - {"hidden_size", "linear_before_reset", "direction"}
        activations = [
            a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])
        ]
        if unsupported - {"activations"} or activations not in ([], ["Tanh"]):
            raise ExportError(f"{source}: its {cell} layers have options int8 cannot rewrite")
        if cell == "GRU" and attrs.get("linear_before_reset") != 1:
            raise ExportError(f"{source}: only GRUs with linear_before_reset (PyTorch's) rewrite")
    layers = []
    for node in recurrent:
        w, r, b = (weights[name][0] for name in node.input[1:4])
        half = w.shape[0]
        layers.append(Layer(w, r, b[:half], b[half:]))
    bias_name = next(name for name in bias.input if name in weights)
    return Network(
        cell, weights[embed.input[0]], tuple(layers), weights[head.input[1]], weights[bias_name]
    )


class _Graph:
    """Nodes and initializers of the step body, with MatMuls fp32 or quantized."""

    def __init__(self, scales: Mapping[str, float] | None) -> None:
        self.scales = scales
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.matmul_inputs: dict[str, str] = {}  # MatMul name -> its activation input

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op: str, inputs: Sequence[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], **attrs))
        return output

    def matmul(self, name: str, x: str, w: np.ndarray, bias: np.ndarray | None = None) -> str:
        """x (B, K) @ w (K, N) (+ bias): in fp32, or (with scales) uint8 x int8 multiplied in
        int32 and rescaled once (`MatMulIntegerToFloat`, bias included)."""
        self.matmul_inputs[name] = x
        if self.scales is None:
            out = self.op("MatMul", [x, self.const(name, w.astype(np.float32))], name + "_mm")
            if bias is None:
                return out
            return self.op(
                "Add", [out, self.const(name + "_b", bias.astype(np.float32))], name + "_out"
            )
        sw = np.abs(w).max(axis=0) / 127.0  # (N,) per output column
        sw[sw == 0] = 1.0
        wq = np.clip(np.round(w / sw), -127, 127).astype(np.int8)
        sx = self.const(name + "_sx", np.array(max(self.scales[name], 1e-6) / 127.0, np.float32))
        zero = self.const(name + "_zero", np.array(ZERO_POINT, np.uint8))
        xq = self.op("QuantizeLinear", [x, sx, zero], name + "_xq")
        inputs = [
            xq,
            self.const(name + "_wq", wq),
            sx,
            self.const(name + "_sw", sw.astype(np.float32)),
            zero,
        ]
        if bias is not None:
            inputs += ["", self.const(name + "_b", bias.astype(np.float32))]
        return self.op("MatMulIntegerToFloat", inputs, name + "_out", domain="com.microsoft")

    def split(self, x: str, parts: int, size: int, name: str) -> list[str]:
        if parts == 1:
            return [x]
        outputs = [f"{name}_{i}" for i in range(parts)]
        sizes = self.const(name + "_sizes", np.full(parts, size, np.int64))
        self.nodes.append(helper.make_node("Split", [x, sizes], outputs, axis=1))
        return outputs


def step_body(net: Network, scales: Mapping[str, float] | None) -> tuple[onnx.GraphProto, _Graph]:
    """One time step: states (B, H) each and a token (B,) -> new states and logits (B, V)."""
    g, hidden, cell = _Graph(scales), net.hidden, net.cell
    first = net.layers[0]
    table = net.embedding.astype(np.float64) @ first.w.T.astype(np.float64) + first.wb
    if cell != "GRU":  # a GRU's recurrent bias of its candidate is gated by r: kept apart
        table = table + first.rb
    x = g.op("Gather", [g.const("table0", table.astype(np.float32)), "token"], "x0")
    outputs: list[str] = []
    cells: list[str] = []
    below = ""
    for i, layer in enumerate(net.layers):
        h, gates = f"h{i}", GATES[cell]
        if cell == "GRU":
            xp = x if i == 0 else g.matmul(f"w{i}", below, layer.w.T, layer.wb)
            hp = g.matmul(f"r{i}", h, layer.r.T, layer.rb)
            xz, xr, xn = g.split(xp, 3, hidden, f"xs{i}")
            hz, hr, hn = g.split(hp, 3, hidden, f"hs{i}")
            z = g.op("Sigmoid", [g.op("Add", [xz, hz], f"gz{i}")], f"update{i}")
            r = g.op("Sigmoid", [g.op("Add", [xr, hr], f"gr{i}")], f"reset{i}")
            n = g.op("Tanh", [g.op("Add", [xn, g.op("Mul", [r, hn], f"rh{i}")], f"gn{i}")], f"n{i}")
            # (1 - z) * n + z * h, written n + z * (h - n)
            mixed = g.op("Mul", [z, g.op("Sub", [h, n], f"hn{i}")], f"zh{i}")
            new_h = g.op("Add", [n, mixed], f"h{i}_out")
        else:
            if i == 0:
                gate = g.op("Add", [x, g.matmul(f"r{i}", h, layer.r.T)], f"g{i}")
            else:
                stacked = np.concatenate([layer.w.T, layer.r.T], axis=0)  # (H + H, gates * H)
                xh = g.op("Concat", [below, h], f"xh{i}", axis=1)
                gate = g.matmul(f"wr{i}", xh, stacked, layer.wb + layer.rb)
            if cell == "RNN":
                new_h = g.op("Tanh", [gate], f"h{i}_out")
            else:
                gi, go, gf, gc = g.split(gate, gates, hidden, f"gs{i}")
                c = f"c{i}"
                new_c = g.op(
                    "Add",
                    [
                        g.op("Mul", [g.op("Sigmoid", [gf], f"f{i}"), c], f"fc{i}"),
                        g.op(
                            "Mul",
                            [g.op("Sigmoid", [gi], f"i{i}"), g.op("Tanh", [gc], f"cc{i}")],
                            f"ic{i}",
                        ),
                    ],
                    f"c{i}_out",
                )
                tanh_c = g.op("Tanh", [new_c], f"tc{i}")
                new_h = g.op("Mul", [g.op("Sigmoid", [go], f"o{i}"), tanh_c], f"h{i}_out")
                cells.append(new_c)
        outputs.append(new_h)
        below = new_h
    logits = g.matmul("head", below, net.head_w, net.head_b)
    state = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", hidden]) for n in net.state_names
    ]
    state_out = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["B", hidden]) for n in outputs + cells
    ]
    vocab = int(net.head_w.shape[1])
    graph = helper.make_graph(
        g.nodes,
        "step",
        [*state, helper.make_tensor_value_info("token", TensorProto.INT64, ["B"])],
        [*state_out, helper.make_tensor_value_info(logits, TensorProto.FLOAT, ["B", vocab])],
        g.inits,
    )
    return graph, g


def scan_model(net: Network, body: onnx.GraphProto, source: onnx.ModelProto) -> onnx.ModelProto:
    """The contract graph around the step: split the state, Scan over time, stack it again."""
    count, hidden, vocab = len(net.state_names), net.hidden, int(net.head_w.shape[1])
    g = _Graph(None)
    parts = [f"state_{i}" for i in range(count)]
    sizes = g.const("state_sizes", np.ones(count, np.int64))
    g.nodes.append(helper.make_node("Split", ["state", sizes], parts, axis=0))
    axis = g.const("axis0", np.array([0], np.int64))
    initial = [g.op("Squeeze", [p, axis], p + "_2d") for p in parts]
    final = [f"final_{i}" for i in range(count)]
    g.nodes.append(
        helper.make_node(
            "Scan",
            [*initial, "tokens"],
            [*final, "logits"],
            body=body,
            num_scan_inputs=1,
            scan_input_axes=[1],
            scan_output_axes=[1],
        )
    )
    stacked = [g.op("Unsqueeze", [f, axis], f + "_3d") for f in final]
    g.nodes.append(helper.make_node("Concat", stacked, ["state_out"], axis=0))
    graph = helper.make_graph(
        g.nodes,
        "charbot",
        [
            helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "time"]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [count, "batch", hidden]),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "time", vocab]),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [count, "batch", hidden]),
        ],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=OPSETS)
    model.ir_version = source.ir_version
    model.metadata_props.extend(source.metadata_props)
    onnx.checker.check_model(model)
    return model


def calibrate(net: Network, ids: np.ndarray) -> dict[str, float]:
    """Each MatMul's largest |input| over up to CALIBRATION_STREAMS x CALIBRATION_STEPS tokens of
    `ids` (training text), read as contiguous streams with the state carried, in fp32."""
    import onnxruntime as ort

    body, g = step_body(net, None)
    probes = list(g.matmul_inputs.items())
    body.output.extend(helper.make_tensor_value_info(x, TensorProto.FLOAT, None) for _, x in probes)
    model = helper.make_model(body, opset_imports=OPSETS)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    streams = max(1, min(CALIBRATION_STREAMS, len(ids) // 2))
    steps = min(CALIBRATION_STEPS, len(ids) // streams)
    tokens = ids[: streams * steps].reshape(streams, steps).astype(np.int64)
    states = [np.zeros((streams, net.hidden), np.float32) for _ in net.state_names]
    peaks = dict.fromkeys(g.matmul_inputs, 0.0)
    for t in range(steps):
        feeds = dict(zip(net.state_names, states, strict=True)) | {"token": tokens[:, t]}
        out = session.run(None, feeds)
        states = out[: len(states)]
        for (name, _), value in zip(probes, out[len(states) + 1 :], strict=True):
            peaks[name] = max(peaks[name], float(np.abs(value).max()))
    return peaks


def static_int8(
    source: onnx.ModelProto, path: Path, calibration_ids: np.ndarray | None = None
) -> onnx.ModelProto:
    """The int8 rewrite of an fp32 contract model (read from `path`), its metadata kept."""
    net = read_network(source, path)
    if calibration_ids is not None and len(calibration_ids) >= 2:
        scales = calibrate(net, calibration_ids)
    else:
        _, g = step_body(net, None)
        scales = dict.fromkeys(g.matmul_inputs, STATE_BOUND)
    body, _ = step_body(net, scales)
    return scan_model(net, body, source)


def fp32_scan(source: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    """The same rewrite in fp32: the check that the step matches the fused ops (tests)."""
    net = read_network(source, path)
    body, _ = step_body(net, None)
    return scan_model(net, body, source)
