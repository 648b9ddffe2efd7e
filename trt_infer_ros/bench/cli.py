"""trt_infer_ros_bench: benchmark the detection graph as users run it, or compare runners.

  trt_infer_ros_bench [graph] [--graph detector|split] [--rate 10] [--frames 100] ...
  trt_infer_ros_bench compare [--frames 50] [--variant LABEL=BACKEND:PATH[:DEVICE]] ...
  trt_infer_ros_bench transport [--sizes 640x480,...] [--transports DEFAULT,LARGE_DATA,SHM] ...

graph: starts the graph's nodes as their own processes (the console commands, unchanged),
plays a fixed set of frames at the camera's rate and reports latency p50/p90/p99/max, the
output rate and each node's CPU use; then searches the peak sustainable input rate (the
highest with at most --drop-limit of the frames unanswered: doubling, then bisection). Power
(tegrastats on Jetson, NVML on other NVIDIA GPUs) is sampled throughout: joules per frame,
frames per watt, achieved TOPS and TOPS/W per phase. Where a CUDA GPU is present it also
measures graph vs eager on the GPU pipeline the node uses.
Writes result.json, summary.md and PNG plots to --output.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path
from typing import Optional

from trt_infer_ros import cli_arguments as arguments
from trt_infer_ros.measure import plots
from trt_infer_ros.measure.ops_count import (OpsCountError, achieved_tops, count_macs,
                                             tops_per_watt)
from trt_infer_ros.measure.power import efficiency, open_power_sampler
from trt_infer_ros.measure.report import table, write_json
from trt_infer_ros.measure.stats import summarize
from trt_infer_ros.resources import default_model_path

EXIT_UNAVAILABLE = 3       # the graph's nodes are not installed here
POSITIVE = arguments.number(float, 0, low_inclusive=False)
COUNT = arguments.number(int, 1)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=arguments.model_file, default=str(default_model_path()),
                   help="ONNX model or engine (default: the bundled CenterNet)")
    p.add_argument("--images", type=arguments.directory, default=None,
                   help="directory of frames (default: bundled photos)")
    p.add_argument("--size", type=arguments.size, default="1280x720",
                   help="camera resolution every frame is resized to, or 'native'")
    p.add_argument("--power", default="auto", choices=("auto", "tegrastats", "nvml", "none"))
    p.add_argument("--power-interval", type=arguments.number(float, 0.01), default=0.1,
                   help="seconds between readings")
    p.add_argument("--output", default=None, help="result directory (default: bench_output/...)")


def graph_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trt_infer_ros_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--graph", default="detector", choices=("detector", "split"))
    _common(p)
    p.add_argument("--param", "-p", type=arguments.assignment, action="append", default=[],
                   metavar="NAME=VALUE",
                   help="node parameter for every node (repeatable), e.g. backend=onnxruntime")
    p.add_argument("--rate", type=POSITIVE, default=10.0,
                   help="camera rate of the fixed-rate run (Hz)")
    p.add_argument("--frames", type=COUNT, default=100, help="measured frames per run")
    p.add_argument("--warmup-frames", type=arguments.number(int, 0), default=5,
                   help="frames sent before each run")
    p.add_argument("--drop-limit", type=arguments.number(float, 0, 1), default=0.05,
                   help="largest fraction of frames without detections a sustainable rate may have")
    p.add_argument("--no-search", action="store_true", help="skip the peak-rate search")
    p.add_argument("--search-start", type=POSITIVE, default=None,
                   help="first rate (default --rate)")
    p.add_argument("--search-max", type=POSITIVE, default=480.0)
    p.add_argument("--search-trials", type=COUNT, default=8)
    p.add_argument("--search-tolerance", type=arguments.number(float, 0, 1, low_inclusive=False),
                   default=0.1)
    p.add_argument("--search-frames", type=COUNT, default=None,
                   help="measured frames per search trial (default --frames)")
    p.add_argument("--qos", default="reliable", choices=("best_effort", "reliable"),
                   help="reliability of the image publisher and, unless --param sets it, of the "
                        "node's subscription (best_effort: frames DDS cannot deliver whole are "
                        "lost and count as drops)")
    p.add_argument("--start-timeout", type=POSITIVE, default=180.0)
    p.add_argument("--graph-vs-eager", default="auto", choices=("auto", "on", "off"),
                   help="measure graph vs eager on the GPU pipeline (auto: where CUDA is)")
    p.add_argument("--graph-vs-eager-frames", type=COUNT, default=200)
    return p


def compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trt_infer_ros_bench compare",
                                description="Precision/accelerator comparison for one model.")
    _common(p)
    p.add_argument("--frames", type=COUNT, default=50, help="timed frames per variant")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=BACKEND:PATH[:DEVICE]",
                   help="an extra runner, e.g. 'GPU FP16=tensorrt:m_fp16.engine' (repeatable)")
    p.add_argument("--min-seconds", type=arguments.number(float, 0), default=5.0,
                   help="time each variant at least this long (power readings settle)")
    p.add_argument("--no-int8", action="store_true", help="skip the INT8 (QDQ) variant")
    p.add_argument("--only-given", action="store_true",
                   help="only the --variant runners (the first is the reference)")
    return p


def _output_dir(args, kind: str) -> Path:
    if args.output:
        out = Path(args.output)
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("bench_output") / f"{kind}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _host() -> dict:
    import psutil
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": psutil.cpu_count(), "machine": platform.machine()}


def _model_ops(model: str) -> dict:
    if not model.lower().endswith(".onnx"):
        return {"macs": None, "reason": "operations are counted on ONNX files"}
    try:
        return count_macs(model).summary()
    except OpsCountError as err:
        return {"macs": None, "reason": str(err)}


def _frames(args) -> list:
    """The frames to play; a directory with no readable image ends the command in one line."""
    from trt_infer_ros.bench.frames import load_frames, parse_size
    try:
        return load_frames(args.images, parse_size(args.size))
    except ValueError as err:
        raise SystemExit(f"trt_infer_ros_bench: {err}") from None


def _relative(samples: list, origin: float) -> list:
    return [dict(s, t=s["t"] - origin) for s in samples]


# -- graph benchmark -----------------------------------------------------------------------------
def run_graph(args) -> int:
    from trt_infer_ros.bench import graph_eager
    from trt_infer_ros.bench.host_cpu import HostCpuSampler
    from trt_infer_ros.bench.nodes import GRAPHS, GraphUnavailable, RunningGraph, cpu_percent
    from trt_infer_ros.bench.search import find_peak_rate
    from trt_infer_ros.ros.image_conversion import array_to_image

    spec = GRAPHS[args.graph]
    out = _output_dir(args, args.graph)
    frames = _frames(args)
    params = [p.replace("=", ":=", 1) for p in args.param]
    if not any(p.startswith("qos_reliability:=") for p in params):
        params.append(f"qos_reliability:={args.qos}")
    ros_args = [f"model_path:={args.model}"] + params
    ros_args = [a for p in ros_args for a in ("-p", p)]
    input_topic = "/trt_infer_ros_bench/image"
    try:
        graph = RunningGraph(spec, input_topic, ros_args)
    except GraphUnavailable as err:
        print(f"skipped: {err}", file=sys.stderr)
        write_json(out / "result.json", {"kind": "graph_benchmark", "graph": spec.name,
                                         "skipped": str(err)})
        return EXIT_UNAVAILABLE
    from trt_infer_ros.bench.player import FramePlayer

    sampler, power_note = open_power_sampler(args.power, args.power_interval,
                                             log_path=str(out / "power.log")
                                             if args.power in ("auto", "tegrastats") else None)
    print(f"power: {power_note}", flush=True)
    origin = time.monotonic()
    host_cpu = HostCpuSampler().start()
    if sampler is not None:
        sampler.start()
    ops = _model_ops(args.model)
    macs = ops.get("macs")
    phases: list[dict] = []
    player: Optional[FramePlayer] = None
    result = {"kind": "graph_benchmark", "version": 1, "graph": spec.name,
              "nodes": [n.argv for n in graph.nodes], "model": args.model,
              "frames": {"count": len(frames), "size": list(frames[0].shape[1::-1]),
                         "source": args.images or "bundled photos"},
              "publisher_qos": args.qos, "host": _host(), "ops": ops,
              "power": {"source": sampler.source if sampler else None, "note": power_note}}
    try:
        messages = [array_to_image(f, "bgr8") for f in frames]
        domain = os.environ.get("ROS_DOMAIN_ID")
        player = FramePlayer(input_topic, spec.output_topic, messages, args.qos,
                             int(domain) if domain else None)
        t = time.monotonic()
        started = player.wait_first_answer(args.start_timeout, graph.check_alive)
        phases.append({"name": "start", "t0": t - origin, "t1": time.monotonic() - origin})
        print(f"graph answered {started:.1f} s after start-up", flush=True)

        def trial(rate: float, frames_n: int, name: str) -> dict:
            graph.check_alive()
            cpu0, w0 = graph.cpu_seconds(), time.monotonic()
            played = player.play(rate, frames_n, args.warmup_frames)
            cpu1, w1 = graph.cpu_seconds(), time.monotonic()
            phases.append({"name": name, "t0": played.t0 - origin, "t1": played.t1 - origin})
            rec = {"name": name, "rate_hz": rate, "sent": played.sent, "received": played.received,
                   "drop_fraction": played.drop_fraction, "output_rate_hz": played.output_rate_hz,
                   "latency_ms": summarize(played.latencies_ms).as_dict(),
                   "cpu_percent_of_one_core": cpu_percent(cpu0, cpu1, w1 - w0),
                   "latencies_ms": played.latencies_ms}
            if sampler is not None:
                rec["power"] = efficiency(sampler.snapshot(), played.t0, played.t1,
                                          played.received)
            if macs:
                rec["achieved_tops"] = achieved_tops(macs, played.output_rate_hz)
                watts = rec.get("power", {}).get("mean_power_w")
                rec["tops_per_watt"] = tops_per_watt(rec["achieved_tops"], watts)
            print(f"  {name:<14} {rate:7.2f} Hz in, {played.output_rate_hz:7.2f} Hz out, drop "
                  f"{played.drop_fraction:5.1%}, latency {summarize(played.latencies_ms)}",
                  flush=True)
            return rec

        result["fixed_rate"] = trial(args.rate, args.frames, f"fixed {args.rate:g} Hz")
        if not args.no_search:
            n = args.search_frames or args.frames

            def search_trial(rate: float):
                fixed = result["fixed_rate"]
                if rate == fixed["rate_hz"] and n == args.frames:
                    return fixed["drop_fraction"], fixed     # that run was this trial
                rec = trial(rate, n, f"search {rate:.3g} Hz")
                return rec["drop_fraction"], rec

            search = find_peak_rate(search_trial, args.search_start or args.rate,
                                    args.search_max, args.drop_limit, args.search_tolerance,
                                    args.search_trials)
            result["search"] = search.as_dict()
    finally:
        if player is not None:
            player.close()
        graph.stop()
        host_cpu.stop()
        if sampler is not None:
            sampler.stop()
        result["node_output_tail"] = {n.command: n.tail(15) for n in graph.nodes}
    want_ge = args.graph_vs_eager
    if want_ge != "off":
        t = time.monotonic()
        ge = graph_eager.measure(args.model, frames, args.graph_vs_eager_frames)
        if ge.get("available"):
            phases.append({"name": "graph vs eager", "t0": t - origin,
                           "t1": time.monotonic() - origin})
        result["graph_vs_eager"] = ge
    else:
        result["graph_vs_eager"] = {"available": False, "reason": "--graph-vs-eager off"}
    result["timeline"] = {"phases": phases,
                          "samples": _relative([s.as_dict() for s in sampler.snapshot()], origin)
                          if sampler else [],
                          "host_cpu": _relative(host_cpu.samples, origin)}
    if sampler is not None and getattr(sampler, "malformed", 0):
        result["power"]["malformed_lines"] = sampler.malformed
    _graph_outputs(result, out, args)
    return 0


def graph_summary(result: dict) -> str:
    trials = [result["fixed_rate"]] + [t for t in result.get("search", {}).get("trials", [])
                                       if t is not result["fixed_rate"]]
    columns = [("run", "name", ""), ("in Hz", "rate_hz", ".2f"),
               ("out Hz", "output_rate_hz", ".2f"),
               ("drop", "drop_fraction", ".1%"),
               ("p50 ms", lambda r: r["latency_ms"]["p50"], ".1f"),
               ("p90 ms", lambda r: r["latency_ms"]["p90"], ".1f"),
               ("p99 ms", lambda r: r["latency_ms"]["p99"], ".1f"),
               ("max ms", lambda r: r["latency_ms"]["max"], ".1f"),
               ("CPU % (1 core)", lambda r: " + ".join(
                   f"{v:.0f}" for v in r["cpu_percent_of_one_core"].values()), ""),
               ("W", lambda r: (r.get("power") or {}).get("mean_power_w"), ".1f"),
               ("J/frame", lambda r: (r.get("power") or {}).get("joules_per_frame"), ".3f"),
               ("frames/W", lambda r: (r.get("power") or {}).get("frames_per_watt"), ".2f"),
               ("TOPS", "achieved_tops", ".4f"), ("TOPS/W", "tops_per_watt", ".5f")]
    commands = " | ".join(Path(argv[0]).name for argv in result["nodes"])
    lines = [f"graph {result['graph']}: {commands}",
             f"frames: {result['frames']['count']} photos at {result['frames']['size'][0]}x"
             f"{result['frames']['size'][1]}; power: {result['power']['note']}", "",
             table(trials, columns)]
    search = result.get("search")
    if search:
        peak = search["peak_rate_hz"]
        lines += ["", "peak sustainable input rate: "
                  + (f"{peak:.2f} Hz" if peak else "below the start rate")
                  + f" (at most {search['drop_limit']:.0%} of frames dropped"
                  + ("; capped at --search-max" if search["capped_at_max_rate"] else "") + ")"]
    ge = result.get("graph_vs_eager", {})
    if ge.get("available"):
        lines += ["", table([{"mode": m, **ge[m]} for m in ("graph", "eager")],
                            [("frame", "mode", ""), ("frame mode", "frame_mode", ""),
                             ("launch p50 ms", lambda r: r["host_launch_ms"]["p50"], ".4f"),
                             ("launch p99 ms", lambda r: r["host_launch_ms"]["p99"], ".4f"),
                             ("latency p50 ms", lambda r: r["frame_latency_ms"]["p50"], ".3f"),
                             ("latency p99 ms", lambda r: r["frame_latency_ms"]["p99"], ".3f")])]
    else:
        lines += ["", f"graph vs eager: not measured: {ge.get('reason')}"]
    return "\n".join(lines) + "\n"


def _graph_outputs(result: dict, out: Path, args) -> None:
    summary = graph_summary(result)
    (out / "summary.md").write_text(summary)
    title = f"{result['graph']} graph, {Path(result['model']).name}"
    series = [(result["fixed_rate"]["name"], result["fixed_rate"]["latencies_ms"])]
    search = result.get("search")
    if search and search["trials"]:
        peak = search["peak_rate_hz"]
        held = [t for t in search["trials"] if peak and abs(t["rate_hz"] - peak) < 1e-9]
        if held:
            series.append((held[0]["name"] + " (peak)", held[0]["latencies_ms"]))
        sweep = {id(t): t for t in [result["fixed_rate"]] + search["trials"]}
        plots.rate_sweep(list(sweep.values()), out / "rate_sweep.png",
                         title, search["drop_limit"], peak)
    plots.latency_distribution(series, out / "latency.png", title)
    plots.timeline(result["timeline"]["samples"], result["timeline"]["phases"],
                   out / "timeline.png", title, result["timeline"]["host_cpu"],
                   note=result["power"]["note"])
    if result["graph_vs_eager"].get("available"):
        plots.graph_vs_eager(result["graph_vs_eager"], out / "graph_vs_eager.png",
                             "GPU pipeline: whole frame as one CUDA graph vs stage by stage")
    write_json(out / "result.json", result)
    print("\n" + summary + f"\nwritten to {out}/ (result.json, summary.md, *.png)", flush=True)


# -- comparison ----------------------------------------------------------------------------------
def run_compare(args) -> int:
    from trt_infer_ros.bench.compare import Variant, agreement_f1, default_variants, run_variant
    from trt_infer_ros.bench.host_cpu import HostCpuSampler

    out = _output_dir(args, "compare")
    frames = _frames(args)
    given = [Variant.parse(v) for v in args.variant]
    if args.only_given:
        if not given:
            print("--only-given needs at least one --variant", file=sys.stderr)
            return 2
        variants, notes = given, []
    else:
        variants, notes = default_variants(args.model, frames, out, int8=not args.no_int8)
        variants += given
    sampler, power_note = open_power_sampler(args.power, args.power_interval)
    print(f"power: {power_note}", flush=True)
    ops = _model_ops(args.model)
    origin = time.monotonic()
    host_cpu = HostCpuSampler().start()
    if sampler is not None:
        sampler.start()
    rows = []
    try:
        for v in variants:
            print(f"  {v.label} ...", flush=True)
            rows.append(run_variant(v, frames, args.frames, sampler, origin, ops.get("macs"),
                                    min_seconds=args.min_seconds))
    finally:
        host_cpu.stop()
        if sampler is not None:
            sampler.stop()
    reference = next((r for r in rows if "detections" in r), None)
    if reference is not None:
        reference["reference"] = True
        ref_detections = reference["detections"]
        for r in rows:
            if "detections" in r:
                r["agreement_f1"] = agreement_f1(ref_detections, r["detections"])
                r["detections_per_frame"] = [len(d.scores) for d in r.pop("detections")]
    ok = [r for r in rows if "latency_ms" in r]
    result = {"kind": "comparison", "version": 1, "model": args.model, "host": _host(),
              "frames": {"count": len(frames), "size": list(frames[0].shape[1::-1]),
                         "timed_per_variant": args.frames,
                         "min_seconds_per_variant": args.min_seconds},
              "ops": ops, "power": {"source": sampler.source if sampler else None,
                                    "note": power_note},
              "notes": notes, "variants": rows,
              "timeline": {"phases": [{"name": r["label"], **r["phase"]} for r in ok],
                           "samples": _relative([s.as_dict() for s in sampler.snapshot()], origin)
                           if sampler else [],
                           "host_cpu": _relative(host_cpu.samples, origin)}}
    summary = compare_summary(result)
    (out / "summary.md").write_text(summary)
    title = f"{Path(args.model).name}: precision / accelerator"
    if ok:
        plots.latency_distribution([(r["label"], r["samples_ms"]) for r in ok],
                                   out / "latency.png", title)
        plots.tradeoff(ok, out / "tradeoff.png", title)
    plots.timeline(result["timeline"]["samples"], result["timeline"]["phases"],
                   out / "timeline.png", title, result["timeline"]["host_cpu"], note=power_note)
    write_json(out / "result.json", result)
    print("\n" + summary + f"\nwritten to {out}/", flush=True)
    return 0


def compare_summary(result: dict) -> str:
    columns = [("variant", "label", ""), ("runner", "runner", ""),
               ("p50 ms", lambda r: r["latency_ms"]["p50"], ".2f"),
               ("p90 ms", lambda r: r["latency_ms"]["p90"], ".2f"),
               ("p99 ms", lambda r: r["latency_ms"]["p99"], ".2f"),
               ("frames/s", "throughput_fps", ".1f"), ("W", "mean_power_w", ".1f"),
               ("J/frame", "joules_per_frame", ".3f"), ("frames/W", "frames_per_watt", ".2f"),
               ("TOPS", "achieved_tops", ".3f"), ("TOPS/W", "tops_per_watt", ".4f"),
               ("F1 vs FP32", "agreement_f1", ".3f")]
    ok = [r for r in result["variants"] if "latency_ms" in r]
    lines = [f"model {Path(result['model']).name}: {result['ops'].get('gops') or 0:.2f} GOP per "
             f"frame; {result['frames']['count']} frames at {result['frames']['size'][0]}x"
             f"{result['frames']['size'][1]}, at least {result['frames']['timed_per_variant']} "
             f"timed per variant; power: {result['power']['note']}", "", table(ok, columns)]
    for r in result["variants"]:
        if "error" in r:
            lines.append(f"- {r['label']}: not run: {r['error']}")
        if "power_note" in r:
            lines.append(f"- {r['label']}: no power: {r['power_note']}")
    lines += [f"- {n}" for n in result["notes"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "compare":
        return run_compare(compare_parser().parse_args(argv[1:]))
    if argv and argv[0] == "transport":
        from trt_infer_ros.bench import transport
        return transport.run(transport.parser().parse_args(argv[1:]))
    if argv and argv[0] == "graph":
        argv = argv[1:]
    return run_graph(graph_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
