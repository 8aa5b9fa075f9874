"""How fast the networks run on this machine, against the machine's own limit.

    convzoo bench --models resnet50 --batch-sizes 8 --input-sizes 224
    python -m convzoo.bench --models resnet18,mobilenet_v2 --backends eager --json bench.json

For each network, batch size and input size, and each way of running it:
- inference: plain eval mode in NCHW and in channels_last, and the inference path
  (`optimize_for_inference`: batch norms folded, channels_last), each eager and under torch.compile;
- training: a forward, backward and SGD step, in NCHW and in channels_last, eager and compiled;
the throughput in images/s is the batch size over the median time of `--repeats` timed runs, after `--warmup`
untimed runs (the first of which compiles, for torch.compile; that time is reported apart). The timed runs of
one network, batch and size go round-robin over its configurations, so a change in the machine's load touches
them all alike.

The limit: the float32 matrix-multiply rate of this machine, measured in the same run (the best of square
products of 1024, 2048 and 4096, at the start and again at the end; the higher figure counts). A network's
achieved rate is its multiply-accumulates (convolutions and linear layers, `convzoo.summary(...,
convention="conv_linear")`; x3 for a training step: the forward, and the backward's products for the inputs'
and the weights' gradients) per second, and `of_peak` is that over the matmul rate.

Peak memory is the process's resident set high-water mark during one more run of each configuration (Linux:
reset before it through /proc/self/clear_refs), and `extra_mb` what it rose above the resident size before it.
The load average at the start and the end is recorded: on a machine shared with other work the figures are
only as good as the load allows.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Hashable, Sequence

import torch
from torch import nn

from .argtypes import ArgumentParser, add_threads_argument, non_negative_int, out_file, positive_int
from .argtypes import threads as threads_type
from .engines import ENGINES
from .io import atomic_write_text
from .runtime import use_threads
from .protocol import main_output
from .training.speed import processor_name

MODES = ("inference", "training")
LAYOUTS = ("nchw", "channels_last")
BACKENDS = ("eager", "compile")
MATMUL_SIZES = (1024, 2048, 4096)
_TRAINING_MACS_FACTOR = 3


@dataclass
class BenchRow:
    model: str
    mode: str          # inference | training
    path: str          # plain | optimized (optimize_for_inference)
    layout: str        # nchw | channels_last
    backend: str       # eager | compile
    batch: int
    input_size: int
    images_per_s: float
    ms_per_batch: float
    gmacs_per_s: float
    of_peak: float
    peak_rss_mb: float
    extra_mb: float
    compile_s: float | None
    speedup: float | None = None  # over the same mode's eager NCHW plain run at the same batch and input size


def _median_seconds(step: Callable[[], object], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def matmul_peak(sizes: Sequence[int] = MATMUL_SIZES, repeats: int = 5) -> dict[str, float]:
    """The float32 matrix-multiply rate, GMAC/s, of square products of each size (median of `repeats` each)."""
    rates = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        seconds = _median_seconds(lambda: torch.mm(a, b), repeats)
        rates[str(n)] = n ** 3 / seconds / 1e9
    return rates


def _rss_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    peak = _rss_mb("VmHWM")
    if peak is not None:
        return peak
    import resource

    scale = 1024 if sys.platform != "darwin" else 1024 * 1024  # ru_maxrss: KiB on Linux, bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _macs_per_image(name: str, input_size: int) -> int:
    from .analysis import summary
    from .registry import model_card

    channels = model_card(name).input_size[0]
    return summary(name, input_size=(channels, input_size, input_size), convention="conv_linear").total_macs


def _build(name: str, mode: str, path: str, layout: str, backend: str) -> nn.Module:
    from .deploy import optimize_for_inference
    from .registry import create_model

    torch.manual_seed(0)
    model = create_model(name)
    if path == "optimized":
        return optimize_for_inference(model, compile=backend == "compile")
    model.train(mode == "training")
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if backend == "compile" else model


def _step(model: nn.Module, mode: str, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], object]:
    if mode == "inference":
        def infer() -> object:
            with torch.inference_mode():
                return model(images)
        return infer
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train_step() -> object:
        optimizer.zero_grad(set_to_none=True)
        output = main_output(model(images))
        if output.dim() == 4:  # segmentation: a label per pixel
            output = output.mean(dim=(2, 3))
        loss = nn.functional.cross_entropy(output, labels)
        loss.backward()
        optimizer.step()
        return loss
    return train_step


@dataclass
class _Prepared:
    """One configuration, built, compiled and warmed up, ready to be timed."""

    mode: str
    path: str
    layout: str
    backend: str
    step: Callable[[], object]
    compile_s: float | None
    seconds: list[float]


def _prepare(name: str, mode: str, path: str, layout: str, backend: str, batch: int, input_size: int,
             warmup: int) -> _Prepared:
    from .registry import model_card

    card = model_card(name)
    model = _build(name, mode, path, layout, backend)
    images = torch.randn(batch, card.input_size[0], input_size, input_size)
    if layout == "channels_last":
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, card.num_classes, (batch,))
    step = _step(model, mode, images, labels)
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        step()
    return _Prepared(mode, path, layout, backend, step, first if backend == "compile" else None, [])


def _peak_memory(step: Callable[[], object]) -> tuple[float, float]:
    """(resident-set high-water mark during one step, its rise over the resident size before it), in MB."""
    rss_before = _rss_mb("VmRSS") or 0.0
    _reset_peak_rss()
    step()
    peak = _peak_rss_mb()
    return peak, max(0.0, peak - rss_before)


def bench_group(name: str, configurations: Sequence[tuple[str, str, str, str]], batch: int, input_size: int,
                macs_per_image: int, peak_gmacs: float, warmup: int, repeats: int,
                say: Callable[[str], None] = lambda message: None) -> list[BenchRow]:
    """Time configurations (mode, path, layout, backend) of one network at one batch and input size.

    The timed runs go round-robin over the configurations (repeat 1 of each, then repeat 2 of each, ...), so
    a change in the machine's load touches every configuration alike rather than the ones that ran during it.
    Memory is measured afterwards, one configuration at a time."""
    prepared = []
    for mode, path, layout, backend in configurations:
        say(f"{name} {mode} {path} {layout} {backend} batch {batch} at {input_size}x{input_size}: warm-up")
        prepared.append(_prepare(name, mode, path, layout, backend, batch, input_size, warmup))
    say(f"{name} batch {batch} at {input_size}x{input_size}: {repeats} timed rounds of {len(prepared)} configurations")
    seconds = time_round_robin(list(enumerate(config.step for config in prepared)), warmup=1, repeats=repeats)
    for index, config in enumerate(prepared):
        config.seconds += seconds[index]
    rows = []
    for config in prepared:
        peak, extra = _peak_memory(config.step)
        seconds = statistics.median(config.seconds)
        macs = macs_per_image * batch * (_TRAINING_MACS_FACTOR if config.mode == "training" else 1)
        rows.append(BenchRow(
            model=name, mode=config.mode, path=config.path, layout=config.layout, backend=config.backend,
            batch=batch, input_size=input_size, images_per_s=batch / seconds, ms_per_batch=seconds * 1e3,
            gmacs_per_s=macs / seconds / 1e9, of_peak=macs / seconds / 1e9 / peak_gmacs, peak_rss_mb=peak,
            extra_mb=extra, compile_s=config.compile_s))
    del prepared
    torch._dynamo.reset()  # drop compiled graphs, which keep their models alive
    return rows


def _configurations(modes: Sequence[str], layouts: Sequence[str], backends: Sequence[str],
                    optimized: bool) -> list[tuple[str, str, str, str]]:
    configs = []
    for mode in modes:
        for backend in backends:
            configs += [(mode, "plain", layout, backend) for layout in layouts]
            if mode == "inference" and optimized:
                configs.append((mode, "optimized", "channels_last", backend))
    return configs


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def check_bench_memory(models: Sequence[str], batch_sizes: Sequence[int], input_sizes: Sequence[int | None],
                       configurations: Sequence[tuple[str, str, str, str]], force: bool = False) -> None:
    """Every (network, input size, batch) group's estimated peak memory, checked before anything runs: a group
    keeps each of its configurations built at once (a model, and in training its gradients and momentum, and
    an input batch each) and runs one step at a time (convzoo/memory.py)."""
    from .memory import Guard
    from .registry import model_card

    for name in models:
        card = model_card(name)
        estimate_at = _bench_estimator(name, card.input_size[0], configurations)
        for input_size in input_sizes:
            side = input_size or card.input_size[1]
            for batch in batch_sizes:
                Guard(estimate_at, batch_size=batch, size=(side, side), min_size=card.min_input_size,
                      batch_flag="--batch-sizes", size_flag="--input-sizes",
                      format_size=lambda size: str(size[0])).check(force=force)


def _bench_estimator(name: str, channels: int, configurations: Sequence[tuple[str, str, str, str]]):
    from .memory import MemoryEstimate, baseline_bytes, network_footprint

    cache: dict = {}

    def estimate_at(batch: int, size: tuple[int, int]) -> MemoryEstimate:
        if size not in cache:
            cache[size] = network_footprint(name, (channels, *size))
        net = cache[size]
        images = batch * channels * size[0] * size[1] * 4
        phases = {}
        for mode in MODES:
            count = sum(config[0] == mode for config in configurations)
            if not count:
                continue
            training = mode == "training"
            phases[mode] = {
                f"{count} models": count * (net.weight_bytes + (2 * net.param_bytes if training else 0)),
                "activations": batch * (net.inference_activation_bytes
                                        + (net.training_activation_bytes if training else 0)),
                f"{count} input batches": count * images}
            if mode == "inference" and net.winograd_bytes and any(
                    config[1] == "optimized" and config[3] == "compile" for config in configurations):
                phases[mode]["Winograd's transformed maps"] = batch * net.winograd_bytes
        return MemoryEstimate(what=f"benchmarking {name} at {size[0]}x{size[1]}, batch {batch}",
                              baseline=baseline_bytes(), phases=phases, batch_size=batch,
                              input_size=(channels, *size), largest_layer=net.largest_layer)

    return estimate_at


def run_benchmark(models: Sequence[str], batch_sizes: Sequence[int], input_sizes: Sequence[int | None],
                  modes: Sequence[str] = MODES, layouts: Sequence[str] = LAYOUTS,
                  backends: Sequence[str] = BACKENDS, optimized: bool = True, warmup: int = 3, repeats: int = 10,
                  matmul_sizes: Sequence[int] = MATMUL_SIZES, progress: Callable[[str], None] | None = None,
                  force: bool = False) -> dict:
    """Run every configuration; returns {"machine", "matmul_gmacs", "peak_gmacs", "load_average", "rows"}.
    An input size of None means the card's. Each group's memory is estimated first (`force` runs it anyway)."""
    from .registry import model_card

    if warmup < 1 or repeats < 1:
        raise ValueError("warmup and repeats must be at least 1")
    check_bench_memory(models, batch_sizes, input_sizes, _configurations(modes, layouts, backends, optimized),
                       force=force)
    say = progress or (lambda message: None)
    load_start = _load()
    say(f"measuring the float32 matmul rate ({torch.get_num_threads()} threads)")
    matmul_start = matmul_peak(matmul_sizes)
    peak = max(matmul_start.values())
    rows: list[BenchRow] = []
    for name in models:
        card = model_card(name)
        for input_size in input_sizes:
            size = input_size or card.input_size[1]
            macs = _macs_per_image(name, size)
            for batch in batch_sizes:
                configurations = _configurations(modes, layouts, backends, optimized)
                for mode in modes:  # training steps change the weights: never mixed with inference rounds
                    group = [config for config in configurations if config[0] == mode]
                    rows += bench_group(name, group, batch, size, macs, peak, warmup, repeats, say)
    matmul_end = matmul_peak(matmul_sizes)
    final_peak = max(peak, *matmul_end.values())
    for row in rows:
        row.of_peak = row.gmacs_per_s / final_peak
        base = next((r for r in rows if (r.model, r.mode, r.batch, r.input_size) == (row.model, row.mode, row.batch,
                     row.input_size) and (r.path, r.layout, r.backend) == ("plain", "nchw", "eager")), None)
        row.speedup = row.images_per_s / base.images_per_s if base else None
    return {
        "machine": {"cpu": processor_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
                    "python": platform.python_version()},
        "matmul_gmacs": {"start": matmul_start, "end": matmul_end},
        "peak_gmacs": final_peak,
        "load_average": {"start": load_start, "end": _load()},
        "rows": [asdict(row) for row in rows],
    }


# convzoo's own inference paths in `run_against`: plain eval mode (NCHW), optimize_for_inference eager, compiled.
OWN_PATHS = ("eager", "fast eager", "compiled")
# Each as `run_benchmark`'s (mode, path, layout, backend), for the memory estimate.
_AGAINST_CONFIGURATIONS = {"eager": ("inference", "plain", "nchw", "eager"),
                           "fast eager": ("inference", "optimized", "channels_last", "eager"),
                           "compiled": ("inference", "optimized", "channels_last", "compile")}


@dataclass
class AgainstRow:
    model: str
    runner: str        # eager | fast eager | compiled | an engine's name
    batch: int
    input_size: int
    threads: int
    images_per_s: float
    ms_per_batch: float
    setup_s: float     # building (and for compiled, compiling; for an engine, making its session) plus the first run
    vs_best_engine: float | None = None  # images/s over the fastest engine's at the same network, batch, threads


def _against_runners(name: str, onnx_file: Path, paths: Sequence[str], engines: Sequence[str], batch: int,
                     input_size: int, threads: int) -> list[tuple[str, Callable[[], object], float]]:
    """(runner name, one timed step, setup seconds) for each of convzoo's paths and each engine, at `threads`
    (PyTorch's threads are set before the compiled path compiles: inductor's kernels take the count then)."""
    from .deploy import optimize_for_inference
    from .engines import engine_runner
    from .registry import create_model, model_card

    torch.set_num_threads(threads)
    channels = model_card(name).input_size[0]
    torch.manual_seed(0)
    images = torch.randn(batch, channels, input_size, input_size)
    array = images.numpy()
    runners = []
    for runner in (*paths, *engines):
        start = time.perf_counter()
        if runner in OWN_PATHS:
            torch.manual_seed(0)
            model = create_model(name).eval()
            if runner != "eager":
                model = optimize_for_inference(model, compile=runner == "compiled")

            def step(model=model) -> object:
                with torch.inference_mode():
                    return model(images)
        else:
            run = engine_runner(runner, onnx_file, threads, tuple(array.shape))

            def step(run=run) -> object:
                return run(array)
        step()
        runners.append((runner, step, time.perf_counter() - start))
    return runners


# The pause before each timed run when runners use more than one thread. A runtime's worker threads spin for a
# while after its call returns, waiting for more work: PyTorch's OpenMP threads and onnxruntime's and OpenVINO's
# pools alike. Timed right after another runtime, a runner found its second core taken by the other's spinning
# threads: ResNet-50 at batch 1 with two threads took 85 ms a call compiled and 51 ms in onnxruntime timed
# back to back, 47.5 and 43 ms with this pause between them, 46 and 41 ms each alone.
SETTLE_S = 0.1


def time_round_robin(steps: Sequence[tuple[Hashable, Callable[[], object]]], warmup: int, repeats: int,
                     settle_s: float = 0.0) -> dict[Hashable, list[float]]:
    """Each step's seconds over `repeats` rounds that run every step once in turn, after `warmup - 1` untimed
    rounds; with `settle_s`, a pause of that long (untimed) before each run, so the threads of the runtime
    that ran before it are idle when it starts."""
    for _ in range(warmup - 1):
        for _, step in steps:
            time.sleep(settle_s)
            step()
    seconds: dict[Hashable, list[float]] = {name: [] for name, _ in steps}
    for _ in range(repeats):
        for name, step in steps:
            time.sleep(settle_s)
            start = time.perf_counter()
            step()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def run_against(models: Sequence[str], engines: Sequence[str], batch_sizes: Sequence[int] = (1, 8),
                thread_counts: Sequence[int] = (1, 2), input_size: int | None = None,
                paths: Sequence[str] = OWN_PATHS, warmup: int = 2,
                repeats: int = 5, work_dir: str | Path | None = None,
                progress: Callable[[str], None] | None = None, force: bool = False) -> dict:
    """convzoo's eager, fast eager (optimize_for_inference) and compiled paths against other inference engines
    running the ONNX file `convzoo.export` writes (`paths`: which of convzoo's, all three by default), for each network, batch size and thread count (PyTorch's and
    the engine's threads alike); the timed runs of one (network, batch, threads) go round-robin over its
    runners. An engine that is not installed is skipped, with its reason in "skipped". Returns {"machine",
    "load_average", "skipped", "rows"}, each row with its images/s and its ratio to the fastest engine."""
    import tempfile

    from .engines import missing
    from .export import export
    from .registry import model_card

    if warmup < 1 or repeats < 1:
        raise ValueError("warmup and repeats must be at least 1")
    unknown = [path for path in paths if path not in OWN_PATHS]
    if unknown:
        raise ValueError(f"unknown path {unknown[0]!r}: convzoo's paths are {', '.join(OWN_PATHS)}")
    say = progress or (lambda message: None)
    skipped = {engine: reason for engine in engines if (reason := missing(engine))}
    for reason in skipped.values():
        say(reason)
    engines = [engine for engine in engines if engine not in skipped]
    check_bench_memory(models, batch_sizes, [input_size], [_AGAINST_CONFIGURATIONS[path] for path in paths],
                       force=force)
    load_start = _load()
    threads_before = torch.get_num_threads()
    rows: list[AgainstRow] = []
    with tempfile.TemporaryDirectory(dir=work_dir) as folder:
        for name in models:
            card = model_card(name)
            size = input_size or card.input_size[1]
            onnx_file = Path(folder) / f"{name}.onnx"
            if engines:
                say(f"{name}: convzoo export to ONNX at {size}x{size}")
                export(name, format="onnx", out=onnx_file, input_size=(card.input_size[0], size, size), check=False)
            for batch in batch_sizes:
                for threads in thread_counts:
                    say(f"{name} batch {batch}, {threads} thread(s): building, compiling, first runs")
                    runners = _against_runners(name, onnx_file, paths, engines, batch, size, threads)
                    say(f"{name} batch {batch}, {threads} thread(s): {repeats} timed rounds of {len(runners)} runners")
                    seconds = time_round_robin([(runner, step) for runner, step, _ in runners], warmup, repeats,
                                               settle_s=SETTLE_S if threads > 1 else 0.0)
                    group = []
                    for runner, _, setup in runners:
                        median = statistics.median(seconds[runner])
                        group.append(AgainstRow(model=name, runner=runner, batch=batch, input_size=size,
                                                threads=threads, images_per_s=batch / median,
                                                ms_per_batch=median * 1e3, setup_s=setup))
                    best = max((row.images_per_s for row in group if row.runner in engines), default=None)
                    for row in group:
                        row.vs_best_engine = row.images_per_s / best if best else None
                    rows += group
                    del runners
                    torch._dynamo.reset()  # drop compiled graphs, which keep their models alive
    torch.set_num_threads(threads_before)
    return {
        "machine": {"cpu": processor_name(), "torch": torch.__version__, "python": platform.python_version(),
                    "engines": {engine: _engine_version(engine) for engine in engines}},
        "load_average": {"start": load_start, "end": _load()},
        "skipped": skipped,
        "rows": [asdict(row) for row in rows],
    }


def _engine_version(engine: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(engine)


# How to run a network the fastest way `run_against` found: convzoo's path, or the engine on the exported file.
_HOW_TO_RUN = {
    "eager": "convzoo.create_model(name).eval()",
    "fast eager": "convzoo.optimize_for_inference(model)",
    "compiled": "convzoo.optimize_for_inference(model, compile=True)",
    "onnxruntime": "convzoo export {name} --format onnx --out {name}.onnx{input}, then onnxruntime.InferenceSession",
    "openvino": "convzoo export {name} --format onnx --out {name}.onnx{input}, then openvino.Core().compile_model",
}


def _export_input(model: str, size: int) -> str:
    """`convzoo export`'s --input for a network timed at size x size: nothing when that is its card's size."""
    from .registry import model_card

    channels, height, width = model_card(model).input_size
    return "" if (height, width) == (size, size) else f" --input {channels}x{size}x{size}"


def fastest_runners(result: dict) -> list[dict]:
    """For each (network, batch, input size, threads) of a `run_against` result, the fastest runner, its lead over
    the next fastest, and how to run the network that way here: convzoo's own path, or `convzoo export` and the
    engine (with the compiled path's images/s over it, so a reader sees what staying with convzoo costs)."""
    groups: dict[tuple, list[dict]] = {}
    for row in result["rows"]:
        groups.setdefault((row["model"], row["batch"], row["input_size"], row["threads"]), []).append(row)
    fastest = []
    for (model, batch, size, threads), rows in groups.items():
        ranked = sorted(rows, key=lambda row: -row["images_per_s"])
        best = ranked[0]
        compiled = next((row for row in rows if row["runner"] == "compiled"), None)
        fastest.append({
            "model": model, "batch": batch, "input_size": size, "threads": threads, "runner": best["runner"],
            "images_per_s": best["images_per_s"],
            "lead": best["images_per_s"] / ranked[1]["images_per_s"] if len(ranked) > 1 else None,
            "compiled_share": compiled["images_per_s"] / best["images_per_s"] if compiled else None,
            "how": _HOW_TO_RUN[best["runner"]].format(name=model, input=_export_input(model, size)),
        })
    return fastest


def against_markdown(result: dict) -> str:
    """`run_against`'s rows as a markdown table, headed by the machine, the engines and the load average, and
    followed by the fastest way to run each network here (`fastest_runners`)."""
    machine, load = result["machine"], result["load_average"]
    engines = ", ".join(f"{name} {version}" for name, version in machine["engines"].items()) or "no engine"
    lines = [f"{machine['cpu']}, torch {machine['torch']}, {engines}; load average (1, 5, 15 min) "
             f"{load['start']} at the start, {load['end']} at the end."]
    lines += [f"{engine}: {reason}" for engine, reason in result["skipped"].items()]
    lines += ["", "| model | batch | input | threads | runner | images/s | ms/batch | x best engine | setup s |",
              "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        ratio = "-" if r["vs_best_engine"] is None else f"{r['vs_best_engine']:.2f}"
        lines.append(f"| {r['model']} | {r['batch']} | {r['input_size']} | {r['threads']} | {r['runner']} "
                     f"| {r['images_per_s']:.2f} | {r['ms_per_batch']:.1f} | {ratio} | {r['setup_s']:.1f} |")
    lines += ["", "Fastest here:"]
    for best in fastest_runners(result):
        lead = f", {best['lead']:.2f}x the next" if best["lead"] else ""
        share = (f"; the compiled path runs at {best['compiled_share']:.2f}x of it"
                 if best["runner"] != "compiled" and best["compiled_share"] else "")
        plural = "s" if best["threads"] != 1 else ""
        lines.append(f"- {best['model']}, batch {best['batch']}, {best['threads']} thread{plural}: {best['runner']} "
                     f"({best['images_per_s']:.2f} images/s{lead}{share}): {best['how']}")
    return "\n".join(lines) + "\n"


def to_markdown(result: dict) -> str:
    """The rows as a markdown table, headed by the machine, its matmul peak and the load average."""
    machine, load = result["machine"], result["load_average"]
    lines = [
        f"{machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}; float32 matmul peak "
        f"{result['peak_gmacs']:.1f} GMAC/s; load average (1, 5, 15 min) {load['start']} at the start, "
        f"{load['end']} at the end.",
        "",
        "| model | mode | path | layout | backend | batch | input | images/s | ms/batch | GMAC/s | of peak "
        "| x eager NCHW | peak RSS MB | +MB | compile s |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        speedup = "-" if r["speedup"] is None else f"{r['speedup']:.2f}"
        compile_s = "-" if r["compile_s"] is None else f"{r['compile_s']:.1f}"
        lines.append(
            f"| {r['model']} | {r['mode']} | {r['path']} | {r['layout']} | {r['backend']} | {r['batch']} "
            f"| {r['input_size']} | {r['images_per_s']:.1f} | {r['ms_per_batch']:.1f} | {r['gmacs_per_s']:.1f} "
            f"| {r['of_peak']:.2f} | {speedup} | {r['peak_rss_mb']:.0f} | {r['extra_mb']:.0f} | {compile_s} |")
    return "\n".join(lines) + "\n"


def _list(kind: Callable[[str], object], choices: Sequence[str] | None = None) -> Callable[[str], list]:
    def parse(text: str) -> list:
        values = [kind(part) for part in text.split(",") if part]
        bad = [v for v in values if choices is not None and v not in choices]
        if not values or bad:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list{' of ' + ', '.join(choices) if choices else ''}, got {text!r}")
        return values
    return parse


def _size(text: str) -> int | None:
    return None if text == "card" else positive_int(text)


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", type=_list(str), default=["resnet50"], metavar="NAME,...")
    parser.add_argument("--batch-sizes", type=_list(positive_int), default=[8], metavar="N,...")
    parser.add_argument("--input-sizes", type=_list(_size), default=[None], metavar="PX,...",
                        help="square input sizes; 'card' for the card's (default)")
    parser.add_argument("--modes", type=_list(str, MODES), default=list(MODES), metavar="MODE,...",
                        help="inference, training (default both)")
    parser.add_argument("--layouts", type=_list(str, LAYOUTS), default=list(LAYOUTS), metavar="LAYOUT,...",
                        help="nchw, channels_last (default both)")
    parser.add_argument("--backends", type=_list(str, BACKENDS), default=list(BACKENDS), metavar="BACKEND,...",
                        help="eager, compile (default both; compiling takes tens of seconds a configuration)")
    parser.add_argument("--optimized", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the inference path, optimize_for_inference (default: yes)")
    parser.add_argument("--warmup", type=non_negative_int, default=3, metavar="N", help="untimed runs first (default 3)")
    parser.add_argument("--repeats", type=positive_int, default=10, metavar="N", help="timed runs; the median counts")
    add_threads_argument(parser)
    parser.add_argument("--matmul-sizes", type=_list(positive_int), default=list(MATMUL_SIZES), metavar="N,...",
                        help="square matmul sizes whose best rate is the peak (default 1024,2048,4096)")
    parser.add_argument("--against", type=_list(str, ENGINES), default=None, metavar="ENGINE,...",
                        help="instead: convzoo's eager, fast eager and compiled paths against these engines "
                             "(onnxruntime, openvino) running the exported ONNX file; uses --models, "
                             "--batch-sizes, --thread-counts, one --input-sizes, --warmup, --repeats "
                             "(--backends eager leaves the compiled path out)")
    parser.add_argument("--thread-counts", type=_list(threads_type), default=None, metavar="N,...",
                        help="with --against: the thread counts to compare at (default: --threads or the policy's)")
    parser.add_argument("--force", action="store_true",
                        help="run even if the estimated peak memory exceeds what the machine has available")
    parser.add_argument("--json", type=out_file, default=None, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--markdown", type=out_file, default=None, metavar="FILE", help="also write the table as markdown")


def run_from_args(args: argparse.Namespace) -> int:
    choice = use_threads(args.threads)  # convzoo.runtime's policy, or --threads; the table's first line shows it
    if args.against:
        return _against_from_args(args, args.thread_counts or [choice.threads])
    result = run_benchmark(args.models, args.batch_sizes, args.input_sizes, modes=args.modes, layouts=args.layouts,
                           backends=args.backends, optimized=args.optimized, warmup=args.warmup,
                           repeats=args.repeats, matmul_sizes=args.matmul_sizes,
                           progress=lambda message: print(message, file=sys.stderr), force=args.force)
    return _report(args, result, to_markdown(result))


def _report(args: argparse.Namespace, result: dict, table: str) -> int:
    """Print the table; write the JSON and markdown files asked for."""
    print(table, end="")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    if args.markdown:
        atomic_write_text(args.markdown, table)
    return 0


def _against_from_args(args: argparse.Namespace, thread_counts: Sequence[int]) -> int:
    if len(args.input_sizes) != 1:
        raise ValueError("--against compares at one input size: give one --input-sizes value")
    paths = [path for path in OWN_PATHS if path != "compiled" or "compile" in args.backends]
    result = run_against(args.models, args.against, batch_sizes=args.batch_sizes, thread_counts=thread_counts,
                         input_size=args.input_sizes[0], paths=paths, warmup=max(1, args.warmup), repeats=args.repeats,
                         progress=lambda message: print(message, file=sys.stderr), force=args.force)
    return _report(args, result, against_markdown(result))


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m convzoo.bench", description=__doc__.splitlines()[0])
    add_bench_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
