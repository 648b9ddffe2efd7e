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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="trt_infer_ros_plot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", type=Path, help="result.json of trt_infer_ros_bench, or a tegrastats log")
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between tegrastats lines without date stamps")
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    if not args.log.is_file():
        print(f"trt_infer_ros_plot: no such file {args.log}", file=sys.stderr)
        return 2
    output = args.output or args.log.with_name(args.log.stem + "_timeline.png")
    if args.log.suffix == ".json":
        result = read_json(args.log)
        tl = result.get("timeline")
        if tl is None:
            print(f"trt_infer_ros_plot: {args.log} holds no timeline", file=sys.stderr)
            return 2
        note = (result.get("power") or {}).get("note", "")
        plots.timeline(tl["samples"], tl["phases"], output,
                       f"{result.get('kind', 'run')}: {Path(result.get('model', '')).name}",
                       tl.get("host_cpu", []), note=note)
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
