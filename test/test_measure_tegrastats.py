"""tegrastats parser on real published lines of JetPack 6 and JetPack 5, and on broken ones."""
from __future__ import annotations

import pytest

from trt_infer_ros.measure import tegrastats

# JetPack 6.2 (Orin Nano 8GB "Super": EMC at 3199 MHz exists only on 6.2), `sudo tegrastats`,
# quoted in https://github.com/rbonghi/jetson_stats/issues/624
JP6_ORIN_NANO = (
    "05-15-2025 18:30:28 RAM 6982/7620MB (lfb 5x1MB) SWAP 2640/16384MB (cached 202MB) "
    "CPU [97%@1984,95%@1984,95%@1984,91%@1984,88%@1984,93%@247] EMC_FREQ 18%@3199 "
    "GR3D_FREQ 84%@[713] NVENC 1%@115 NVDEC 40%@115 NVJPG off NVJPG1 off VIC 31%@115 OFA off "
    "NVDLA0 off PVA0_FREQ off APE 174 cv0@63.031C cpu@65.562C soc2@64.156C soc0@63.031C "
    "cv1@62.937C gpu@63.5C tj@65.562C soc1@64.718C cv2@60.875C VDD_IN 17946mW/15710mW "
    "VDD_CPU_GPU_CV 8896mW/7585mW VDD_SOC 3923mW/3515mW")

# JetPack 6 (L4T r36, AGX Orin 32GB), the "r36Sample" of the Jetson check's tests in
# https://github.com/DataDog/datadog-agent (pkg/collector/corechecks/nvidia/jetson), runs of
# spaces as printed
JP6_AGX_ORIN = (
    "RAM 29114/30697MB (lfb 3x4MB)    SWAP 4915/15348MB (cached 1MB) CPU [3%@729,4%@729,0%@729,"
    "1%@729,0%@2201,100%@2201,1%@2201,0%@2201,100%@2201,0%@2201,0%@2201,0%@2201] EMC_FREQ "
    "1%@2133 GR3D_FREQ 0%@[305,305] NVENC      off  NVDEC    off NVJPG off NVJPG1    off         "
    "VIC        off          OFA           off          NVDLA0    off       NVDLA1     off     "
    "     PVA0_FREQ off         APE           174        cpu@53.062C soc2@48.25C soc0@48.843C  "
    "gpu@47.812C tj@53.062C soc1@48.968C    VDD_GPU_SOC 3205mW/3205mW VDD_CPU_CV 4405mW/4405mW "
    "VIN_SYS_5V0 4767mW/4767mW")

# JetPack 5 (L4T r35 format: uppercase thermal zones, CV0@-256C for a zone that is off;
# AGX Orin 64GB), quoted in https://github.com/GDWR/jetson_exporter/issues/14
JP5_AGX_ORIN = (
    "04-11-2025 10:36:27 RAM 4321/62801MB (lfb 1759x4MB) SWAP 19/31400MB (cached 0MB) CPU "
    "[0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] "
    "EMC_FREQ 0%@2133 GR3D_FREQ 0%@[0,0] VIC_FREQ 729 APE 174 CV0@-256C CPU@44.562C Tboard@32C "
    "SOC2@40.093C Tdiode@33C SOC0@41.093C CV1@-256C GPU@-256C tj@44.343C SOC1@41.25C CV2@-256C "
    "VDD_GPU_SOC 2340mW/2340mW VDD_CPU_CV 390mW/390mW VIN_SYS_5V0 4025mW/4025mW NC 0mW/0mW "
    "VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW")

# JetPack 5 (L4T r35 format, Orin NX 16GB, no date prefix, single GPU frequency), the
# "voltageUnitSample" of the same DataDog tests
JP5_ORIN_NX = (
    "RAM 6334/15388MB (lfb 1770x4MB) SWAP 491/7694MB (cached 0MB) CPU [6%@729,9%@729,5%@729,"
    "16%@729,off,off,off,off] EMC_FREQ 0%@2133 GR3D_FREQ 0%@611 VIC_FREQ 729 APE 174 "
    "CV0@45.812C CPU@47.937C SOC2@46.093C SOC0@46.968C CV1@46.406C GPU@45.875C tj@48.875C "
    "SOC1@48.875C CV2@45.75C VDD_IN 5299mW/5299mW VDD_CPU_GPU_CV 773mW/773mW "
    "VDD_SOC 1424mW/1424mW")

# JetPack 4 (TX2, power without the mW unit), quoted in
# https://github.com/henrygd/beszel/pull/1631 ("Jetson tegrastats regex pre jetpack5")
JP4_TX2 = (
    "RAM 3276/7859MB (lfb 5x4MB) SWAP 1626/12122MB (cached 181MB) CPU [44%@1421,49%@2031,"
    "67%@2034,17%@1420,25%@1419,8%@1420] EMC_FREQ 1%@1866 GR3D_FREQ 0%@114 APE 150 MTS fg 1% "
    "bg 1% PLL@42.5C MCPU@42.5C PMIC@50C Tboard@38C GPU@39.5C BCPU@42.5C thermal@41.3C "
    "Tdiode@39.25C VDD_SYS_GPU 182/182 VDD_SYS_SOC 730/730 VDD_4V0_WIFI 0/0 VDD_IN 5297/5297 "
    "VDD_SYS_CPU 1917/1917 VDD_SYS_DDR 1241/1241")

MALFORMED = [
    "garbage line",
    "RAM 2448/30536MB (lfb 6729x4MB) SWAP 0/15",                 # cut off mid-line
    "VDD_IN 5000mW/5000mW VDD_SOC 1000mW/1000mW",                 # no RAM field
    "RAM 1/2MB",                                                  # neither GPU field nor rail
    "\x00\xff\xfe binary \x7f noise",
    "RAM abc/defMB GR3D_FREQ x%",
    "tegrastats: failed to open /sys/kernel/debug/...: Permission denied",
]


def test_jetpack6_orin_nano():
    line = tegrastats.parse_line(JP6_ORIN_NANO)
    assert line.timestamp == "05-15-2025 18:30:28"
    assert (line.ram_used_mb, line.ram_total_mb) == (6982, 7620)
    assert (line.swap_used_mb, line.swap_total_mb) == (2640, 16384)
    assert line.cpu_load == [97, 95, 95, 91, 88, 93] and line.cpu_mhz[-1] == 247
    assert (line.emc_load, line.emc_mhz) == (18, 3199)
    assert (line.gr3d_load, line.gr3d_mhz) == (84, [713])
    assert line.rails_mw == {"VDD_IN": (17946, 15710), "VDD_CPU_GPU_CV": (8896, 7585),
                             "VDD_SOC": (3923, 3515)}
    assert line.board_power_w == pytest.approx(17.946) and line.board_power_source == "VDD_IN"
    assert line.temps_c["tj"] == pytest.approx(65.562) and line.temps_c["gpu"] == 63.5
    assert len(line.temps_c) == 9 and line.hottest_c == pytest.approx(65.562)


def test_jetpack6_agx_orin_two_gpcs_and_no_input_rail():
    line = tegrastats.parse_line(JP6_AGX_ORIN)
    assert line.timestamp is None
    assert line.gr3d_mhz == [305, 305] and line.gr3d_load == 0
    assert len(line.cpu_load) == 12 and line.cpu_load[5] == 100
    assert set(line.rails_mw) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"}
    # AGX Orin has no VDD_IN: module power is the sum of its rails
    assert line.board_power_w == pytest.approx(3.205 + 4.405 + 4.767)
    assert line.board_power_source == "VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0"
    assert set(line.temps_c) == {"cpu", "soc2", "soc0", "gpu", "tj", "soc1"}


def test_jetpack5_agx_orin_zones_that_are_off_and_unconnected_channels():
    line = tegrastats.parse_line(JP5_AGX_ORIN)
    assert line.timestamp == "04-11-2025 10:36:27"
    assert "CV0" not in line.temps_c and "GPU" not in line.temps_c      # -256C: zone off
    assert line.temps_c["CPU"] == pytest.approx(44.562) and line.temps_c["Tboard"] == 32.0
    assert "NC" not in line.rails_mw and line.rails_mw["VDDQ_VDD2_1V8AO"] == (301, 301)
    assert line.board_power_w == pytest.approx((2340 + 390 + 4025 + 301) / 1000)
    assert (line.emc_load, line.emc_mhz, line.gr3d_mhz) == (0, 2133, [0, 0])


def test_jetpack5_orin_nx_off_cores_and_single_gpu_frequency():
    line = tegrastats.parse_line(JP5_ORIN_NX)
    assert line.cpu_load == [6, 9, 5, 16, None, None, None, None]
    assert line.gr3d_mhz == [611]
    assert line.board_power_w == pytest.approx(5.299)
    assert line.rails_mw["VDD_CPU_GPU_CV"] == (773, 773) and line.rails_mw["VDD_SOC"][0] == 1424
    assert line.hottest_c == pytest.approx(48.875)      # tj


def test_jetpack4_power_without_unit():
    line = tegrastats.parse_line(JP4_TX2)
    assert line.board_power_w == pytest.approx(5.297)
    assert line.rails_mw["VDD_SYS_GPU"] == (182, 182)
    assert "RAM" not in line.rails_mw and "SWAP" not in line.rails_mw


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_lines_are_not_reports(text):
    assert tegrastats.parse_line(text) is None


def test_log_with_malformed_lines_is_read_and_they_are_counted(tmp_path):
    log = tmp_path / "tegrastats.log"
    lines = [JP6_ORIN_NANO, MALFORMED[0], "", JP5_AGX_ORIN, *MALFORMED[1:], JP5_ORIN_NX]
    log.write_bytes("\n".join(lines).encode("latin-1") + b"\n\xff\xfe\n")
    parsed = tegrastats.read_log(log)
    assert len(parsed.lines) == 3
    assert parsed.malformed == len(MALFORMED) + 1           # + the undecodable last line
    assert parsed.malformed_examples[0] == "garbage line"
    samples = [tegrastats.to_sample(line, float(i)) for i, line in enumerate(parsed.lines)]
    assert [s.power_w for s in samples] == pytest.approx([17.946, 7.056, 5.299])
    assert samples[0].gpu_util == 84 and samples[0].fields["VDD_CPU_GPU_CV_w"] == 8.896
    assert samples[0].fields["emc_load"] == 18 and samples[0].fields["gr3d_mhz"] == 713


def test_sampler_reads_a_running_command_and_writes_the_log(tmp_path):
    """TegrastatsSampler against a real process printing recorded lines at its --interval."""
    script = tmp_path / "tegrastats"
    recorded = tmp_path / "recorded.log"
    recorded.write_text("\n".join([JP5_ORIN_NX, "garbage line", JP6_ORIN_NANO]) + "\n")
    script.write_text("#!/bin/sh\n# replays recorded lines as tegrastats --interval MS does\n"
                      "while true; do while read -r l; do echo \"$l\"; sleep 0.02; "
                      f"done < {recorded}; done\n")
    script.chmod(0o755)
    log = tmp_path / "power.log"
    sampler = tegrastats.TegrastatsSampler(interval_s=0.02, log_path=str(log),
                                           command=str(script))
    import time
    with sampler:
        deadline = time.monotonic() + 5.0
        while len(sampler.snapshot()) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    samples = sampler.snapshot()
    assert len(samples) >= 4 and sampler.malformed >= 1
    assert {round(s.power_w, 3) for s in samples} <= {5.299, 17.946}
    assert all(b.t >= a.t for a, b in zip(samples, samples[1:]))
    assert tegrastats.read_log(log).lines            # the raw log reads back
