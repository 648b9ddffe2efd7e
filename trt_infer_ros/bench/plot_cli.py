"""trt_infer_ros_plot: power, GPU load, temperature and host CPU over time for a logged run.

  trt_infer_ros_plot bench_output/detector-.../result.json   # a benchmark: phases shaded
  trt_infer_ros_plot tegrastats.log --interval 0.1           # a raw tegrastats log
Writes timeline.png (or --output) next to the input.
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Optional

from trt_infer_ros import cli_arguments as arguments
from trt_infer_ros.engine.options import file_problem
from trt_infer_ros.measure import plots, tegrastats
from trt_infer_ros.measure.report import read_json


def _tegrastats_samples(path: Path, interval_s: float) -> tuple[list, str]:
    """Samples of a raw log: times from the lines' date stamps (JetPack 5.1+/6), else the
    line index times --interval."""
    log = tegrastats.read_log(path)
    stamps = []
    for line in log.lines:
        try:
            stamps.append(datetime.datetime.strptime(line.timestamp, "%m-%d-%Y %H:%M:%S")
                          .timestamp() if line.timestamp else None)
        except ValueError:
            stamps.append(None)
    use_stamps = stamps and all(s is not None for s in stamps) and len(set(stamps)) > 1
    samples = []
    for i, line in enumerate(log.lines):
        t = stamps[i] - stamps[0] if use_stamps else i * interval_s
        samples.append(tegrastats.to_sample(line, t).as_dict())
    note = f"{len(log.lines)} lines, {log.malformed} malformed skipped"
    return samples, note


def _timeline(path: Path) -> tuple[Optional[dict], str]:
    """(the result's dict with a timeline, '') or (None, why not)."""
    try:
        result = read_json(path)
    except (OSError, ValueError) as err:
        return None, f"{path} is not readable JSON: {err}"
    timeline = result.get("timeline") if isinstance(result, dict) else None
    if not isinstance(timeline, dict) or not isinstance(timeline.get("samples"), list):
        return None, f"{path} holds no timeline (a result.json of trt_infer_ros_bench has one)"
    return result, ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="trt_infer_ros_plot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", type=Path, help="result.json of trt_infer_ros_bench, or a tegrastats log")
    p.add_argument("--interval", type=arguments.number(float, 0, low_inclusive=False),
                   default=1.0, help="seconds between tegrastats lines without date stamps")
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    problem = file_problem(str(args.log), "a result.json or a tegrastats log")
    if problem:
        print(f"trt_infer_ros_plot: {problem}", file=sys.stderr)
        return 2
    output = args.output or args.log.with_name(args.log.stem + "_timeline.png")
    if args.log.suffix == ".json":
        result, problem = _timeline(args.log)
        if result is None:
            print(f"trt_infer_ros_plot: {problem}", file=sys.stderr)
            return 2
        tl = result["timeline"]
        note = (result.get("power") or {}).get("note", "")
        try:
            plots.timeline(tl["samples"], tl.get("phases", []), output,
                           f"{result.get('kind', 'run')}: {Path(result.get('model', '')).name}",
                           tl.get("host_cpu", []), note=note)
        except (KeyError, TypeError, ValueError) as err:
            print(f"trt_infer_ros_plot: {args.log} holds a malformed timeline ({err!r})",
                  file=sys.stderr)
            return 2
    else:
        samples, note = _tegrastats_samples(args.log, args.interval)
        if not samples:
            print(f"trt_infer_ros_plot: no tegrastats lines in {args.log} ({note})",
                  file=sys.stderr)
            return 2
        plots.timeline(samples, [], output, f"tegrastats: {args.log.name}", note=note)
    print(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
