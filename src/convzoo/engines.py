"""Other inference engines, running the ONNX file `convzoo export` writes: what `convzoo bench --against` times
convzoo's own paths against.

    runner = engine_runner("onnxruntime", "resnet50.onnx", threads=1, input_shape=(8, 3, 224, 224))
    runner(images)                     # images: a float32 numpy array of that shape

Each engine is an optional extra (`pip install convzoo[onnxruntime]`, `convzoo[openvino]`); `missing(name)`
says in one line why one cannot run here, so a comparison skips it instead of failing. Both engines get the
same thread count as PyTorch (onnxruntime's intra-op threads, OpenVINO's INFERENCE_NUM_THREADS), one stream,
their highest graph optimisation, and a session made for the shape timed (OpenVINO's model reshaped to it:
its CPU plugin compiles static shapes, as inductor does).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable, Sequence

ENGINES = ("onnxruntime", "openvino")
_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def missing(engine: str) -> str | None:
    """None where `engine` can run here, else one line saying why not and how to install it."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")
    if importlib.util.find_spec(_PACKAGES[engine]) is None:
        return f"{engine} is not installed: skipped (pip install 'convzoo[{engine}]')"
    return None


def engine_runner(engine: str, onnx_file: str | Path, threads: int, input_shape: Sequence[int],
                  input_name: str = "images") -> Callable[[object], object]:
    """A function running one batch (a float32 numpy array of `input_shape`) through `engine` on `onnx_file`
    with `threads` intra-op threads; returns the engine's outputs."""
    if engine == "onnxruntime":
        return _onnxruntime(onnx_file, threads, input_name)
    if engine == "openvino":
        return _openvino(onnx_file, threads, input_shape)
    raise ValueError(f"unknown engine {engine!r}: choose from {', '.join(ENGINES)}")


def _onnxruntime(onnx_file: str | Path, threads: int, input_name: str) -> Callable[[object], object]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {input_name: images})


def _openvino(onnx_file: str | Path, threads: int, input_shape: Sequence[int]) -> Callable[[object], object]:
    import openvino

    core = openvino.Core()
    model = core.read_model(str(onnx_file))
    model.reshape(list(input_shape))
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                                 "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda images: request.infer([images])
