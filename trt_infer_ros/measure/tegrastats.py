"""tegrastats (Jetson): parse its one-line reports and log them during a run.

Line formats differ between releases and modules; the parser reads each field by name, so
every known variant parses:
  JetPack 6 (L4T r36): a date prefix, lowercase thermal zones (cpu@, tj@), engine fields
    (NVENC, OFA, PVA0_FREQ), `GR3D_FREQ 0%@[305,305]` (one frequency per GPC);
  JetPack 5 (L4T r35): uppercase zones (CPU@, SOC2@, CV0@-256C for a zone that is off),
    `GR3D_FREQ 0%@611` or `0%@[0,0]`, with or without the date prefix;
  both: rails as `NAME now_mW/avg_mW` (Orin Nano/NX: VDD_IN, VDD_CPU_GPU_CV, VDD_SOC;
    AGX Orin: VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0, ...); JetPack 4 wrote `now/avg` without mW.
A line without RAM, or with neither a GPU field nor a rail, is malformed: skipped and counted.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from trt_infer_ros.measure.power import PowerSample, PowerSampler

_TIMESTAMP = re.compile(r"^(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_CORE = re.compile(r"^(\d+)%(?:@(\d+))?$")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_TEMP = re.compile(r"(?<![\w%])([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
ABSENT_ZONE_C = -256.0          # tegrastats prints -256C for a thermal zone that is powered off
BOARD_RAILS = ("VDD_IN", "POM_5V_IN")   # whole-module input, where the module has one
# used/total fields that look like a unit-less JetPack 4 rail when a line is cut off, and NC,
# an unconnected channel of the power monitor
NOT_RAILS = ("RAM", "SWAP", "IRAM", "NC")


@dataclass
class TegrastatsLine:
    """The fields of one tegrastats report. Power in milliwatts as printed."""

    timestamp: Optional[str] = None
    ram_used_mb: Optional[int] = None
    ram_total_mb: Optional[int] = None
    swap_used_mb: Optional[int] = None
    swap_total_mb: Optional[int] = None
    cpu_load: list = field(default_factory=list)    # percent per core; None for an 'off' core
    cpu_mhz: list = field(default_factory=list)
    emc_load: Optional[int] = None
    emc_mhz: Optional[int] = None
    gr3d_load: Optional[int] = None
    gr3d_mhz: list = field(default_factory=list)    # one per GPC on Orin (JetPack 6 brackets)
    temps_c: dict = field(default_factory=dict)
    rails_mw: dict = field(default_factory=dict)    # name -> (instant mW, average mW)

    @property
    def board_power_w(self) -> Optional[float]:
        """Module input power: VDD_IN (Orin Nano/NX, Xavier NX) or POM_5V_IN (Nano); on modules
        without an input rail (AGX Orin), the sum of the rails tegrastats reports."""
        for name in BOARD_RAILS:
            if name in self.rails_mw:
                return self.rails_mw[name][0] / 1000.0
        if self.rails_mw:
            return sum(now for now, _ in self.rails_mw.values()) / 1000.0
        return None

    @property
    def board_power_source(self) -> Optional[str]:
        for name in BOARD_RAILS:
            if name in self.rails_mw:
                return name
        return "+".join(self.rails_mw) if self.rails_mw else None

    @property
    def hottest_c(self) -> Optional[float]:
        if "tj" in self.temps_c:
            return self.temps_c["tj"]
        return max(self.temps_c.values()) if self.temps_c else None


def parse_line(line: str) -> Optional[TegrastatsLine]:
    """One tegrastats line, or None where the line is not a complete report."""
    ram = _RAM.search(line)
    gr3d = _GR3D.search(line)
    rails = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in _RAIL.finditer(line)
             if m.group(1) not in NOT_RAILS}
    if ram is None or (gr3d is None and not rails):
        return None
    out = TegrastatsLine(ram_used_mb=int(ram.group(1)), ram_total_mb=int(ram.group(2)),
                         rails_mw=rails)
    if (m := _TIMESTAMP.search(line)) is not None:
        out.timestamp = m.group(1)
    if (m := _SWAP.search(line)) is not None:
        out.swap_used_mb, out.swap_total_mb = int(m.group(1)), int(m.group(2))
    if (m := _CPU.search(line)) is not None:
        for item in m.group(1).split(","):
            core = _CORE.match(item.strip())
            out.cpu_load.append(int(core.group(1)) if core else None)
            out.cpu_mhz.append(int(core.group(2)) if core and core.group(2) else None)
    if (m := _EMC.search(line)) is not None:
        out.emc_load = int(m.group(1))
        out.emc_mhz = int(m.group(2)) if m.group(2) else None
    if gr3d is not None:
        out.gr3d_load = int(gr3d.group(1))
        out.gr3d_mhz = [int(f) for f in (gr3d.group(2) or "").split(",") if f]
    for m in _TEMP.finditer(line):
        value = float(m.group(2))
        if value > ABSENT_ZONE_C:
            out.temps_c[m.group(1)] = value
    return out


@dataclass
class ParsedLog:
    lines: list          # TegrastatsLine, in order
    malformed: int       # non-empty lines that were not a complete report
    malformed_examples: list


def parse_lines(lines: Iterable[str]) -> ParsedLog:
    parsed, bad, examples = [], 0, []
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        try:
            line = parse_line(text)
        except (ValueError, OverflowError):      # a number too odd to convert: still skipped
            line = None
        if line is None:
            bad += 1
            if len(examples) < 3:
                examples.append(text[:120])
        else:
            parsed.append(line)
    return ParsedLog(parsed, bad, examples)


def read_log(path) -> ParsedLog:
    """A file written by `tegrastats --logfile` or by TegrastatsSampler."""
    return parse_lines(Path(path).read_text(errors="replace").splitlines())


def to_sample(line: TegrastatsLine, t: float) -> PowerSample:
    fields = {f"{name}_w": now / 1000.0 for name, (now, _) in line.rails_mw.items()}
    fields.update({f"temp_{name}_c": v for name, v in line.temps_c.items()})
    fields.update(emc_load=line.emc_load, emc_mhz=line.emc_mhz, ram_used_mb=line.ram_used_mb,
                  gr3d_mhz=max(line.gr3d_mhz) if line.gr3d_mhz else None,
                  power_source=line.board_power_source)
    return PowerSample(t=t, power_w=line.board_power_w, gpu_util=line.gr3d_load,
                       temp_c=line.hottest_c, fields=fields)


def unavailable_reason() -> Optional[str]:
    if shutil.which("tegrastats") is None:
        return "tegrastats not found (not a Jetson)"
    return None


class TegrastatsSampler(PowerSampler):
    """Runs `tegrastats --interval N`, parses each line as it arrives, and writes the raw lines
    to `log_path` (the same format as `tegrastats --logfile`, readable by read_log)."""

    source = "tegrastats"

    def __init__(self, interval_s: float = 0.1, log_path: Optional[str] = None,
                 command: str = "tegrastats") -> None:
        super().__init__()
        self.interval_ms = max(10, int(round(interval_s * 1000)))
        self.log_path = log_path
        self.command = command
        self.malformed = 0
        self._proc: Optional[subprocess.Popen] = None
        self.description = (f"tegrastats every {self.interval_ms} ms (VDD_IN = module input "
                            "power; AGX Orin: sum of its rails)")

    def _run(self, stop: threading.Event) -> None:
        self._proc = subprocess.Popen([self.command, "--interval", str(self.interval_ms)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True, bufsize=1)
        log = open(self.log_path, "w") if self.log_path else None
        try:
            for raw in self._proc.stdout:
                now = time.monotonic()
                if log:
                    log.write(raw)
                line = parse_line(raw.strip())
                if line is None:
                    self.malformed += raw.strip() != ""
                else:
                    self._add(to_sample(line, now))
                if stop.is_set():
                    break
        finally:
            if log:
                log.close()

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
