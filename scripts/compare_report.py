#!/usr/bin/env python3
"""The parsing and reporting half of scripts/compare.sh.

  compare_report.py parse RESULT WORKLOAD SERVER ROUND LOADAVG CPU_S WALL_S CTXSW LOAD_TIME
      one CSV row from the output of `load`, the server's CPU seconds and
      context switches during the run, the generator's "user system real"
      seconds (and RESULT.perf, the output of
      `perf stat -x,`, when it exists: its context switches replace CTXSW,
      and it adds syscalls)
  compare_report.py report CSV SVG MD NOTE
      the markdown tables of medians (printed and written to MD) and the
      chart (SVG)
  compare_report.py chart CSV OUT [NOTE]
      the chart alone, from a CSV of earlier runs; OUT's ending picks the
      format (.svg, .png, .pdf)
  compare_report.py parse-wrk RESULT CONNS LOADAVG
      one row of the wrk check from the output of `wrk --latency`
  compare_report.py report-wrk CSV
      the wrk-vs-load table
  compare_report.py fetch ADDR
      GET / and GET /json, pipelined on one connection, from an HTTP server;
      prints the reply bytes with the Date value masked (to check that the
      gopark and tokio servers send the same bytes)

Everything but the chart needs only python3. The chart is drawn with
matplotlib (`pip install matplotlib`); without it the tables are still
written, and the script says how to get the chart.
"""

import csv
import math
import re
import socket
import statistics
import sys

SERVERS = ["gopark", "tokio", "raw-epoll", "go"]
COLORS = {"gopark": "#d9622b", "tokio": "#4a6fa5", "raw-epoll": "#8c8c8c", "go": "#00a29c"}


def fail(msg):
    sys.stderr.write(f"compare_report: {msg}\n")
    sys.exit(1)


# ------------------------------------------------------------------ parse


def parse_load(path):
    text = open(path).read()
    m = re.search(r"^requests:\s+(\d+) total, ([\d.]+) req/s", text, re.M)
    if not m:
        fail(f"no 'requests:' line in {path}")
    total, rate = int(m.group(1)), float(m.group(2))
    lat = {}
    m = re.search(r"^latency:\s+(.*)$", text, re.M)
    if m:
        for name, value in re.findall(r"(p50|p90|p99|max) ([\d.]+) ms", m.group(1)):
            lat[name] = float(value)
    m = re.search(r"^errors:\s+(\d+)", text, re.M)
    errors = int(m.group(1)) if m else -1
    return total, rate, lat, errors


def parse_perf(path):
    """{event: value} from `perf stat -x,` output."""
    counts = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return counts
    for line in lines:
        if not line or line.startswith("#"):
            continue
        fields = line.split(",")
        if len(fields) < 3:
            continue
        try:
            counts[fields[2]] = float(fields[0])
        except ValueError:
            pass  # <not counted>, <not supported>
    return counts


def cmd_parse(result, workload, server, rnd, loadavg, cpu_s, wall_s, ctxsw, load_time):
    total, rate, lat, errors = parse_load(result)
    cpu_s, wall_s, ctxsw = float(cpu_s), float(wall_s), float(ctxsw)
    load_util = ""
    try:
        user, system, real = (float(x) for x in load_time.split())
        load_util = f"{(user + system) / real:.3f}" if real > 0 else ""
    except ValueError:
        pass
    per = ["", "", "", ""]
    if total > 0 and cpu_s > 0:
        per[0] = f"{cpu_s / wall_s:.3f}" if wall_s > 0 else ""
        per[1] = f"{cpu_s * 1e6 / total:.2f}"
        per[2] = f"{ctxsw / total:.4f}"
    perf = parse_perf(result + ".perf")
    if perf and total > 0:
        if "context-switches" in perf:
            per[2] = f"{perf['context-switches'] / total:.4f}"
        if "raw_syscalls:sys_enter" in perf:
            per[3] = f"{perf['raw_syscalls:sys_enter'] / total:.3f}"
    row = [
        workload,
        server,
        rnd,
        f"{rate:.1f}",
        f"{lat.get('p50', float('nan')):.3f}",
        f"{lat.get('p99', float('nan')):.3f}",
        f"{lat.get('max', float('nan')):.3f}",
        str(errors),
        loadavg,
        load_util,
        *per,
    ]
    print(",".join(row))


def wrk_ms(value):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]


def cmd_parse_wrk(result, conns, loadavg):
    text = open(result).read()
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not m:
        fail(f"no 'Requests/sec:' line in {result}")
    rate = float(m.group(1))
    m = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    p99 = wrk_ms(m.group(1)) if m else float("nan")
    errs = re.search(r"Socket errors: (.*)", text)
    if errs:
        sys.stderr.write(f"   wrk: socket errors: {errs.group(1)}\n")
    print(f"{conns},wrk,{rate:.1f},{p99:.3f},{loadavg}")


# ------------------------------------------------------------------ report


def label(workload):
    parts = workload.split("-")
    if parts[0] == "echo":
        return f"echo {parts[1]} B, {parts[2]} conns"
    if parts[1].startswith("p"):
        return f"HTTP GET / pipeline {parts[1][1:]}, {parts[2]} conns"
    return f"HTTP GET /, {parts[1]} conns"


def fmt_rate(r):
    return "-" if r is None else f"{r:,.0f}"


def fmt_ratio(a, b):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def fmt_ms(v):
    return "-" if v is None else f"{v:.2f} ms"


def medians(rows):
    """{workload: {server: (req/s, p99, [perf medians])}}, in CSV order."""
    groups = {}
    for r in rows:
        groups.setdefault(r["workload"], {}).setdefault(r["server"], []).append(r)
    out = {}
    for workload, by_server in groups.items():
        out[workload] = {}
        for server, rs in by_server.items():
            def med(key):
                vals = [float(r[key]) for r in rs if r.get(key) not in ("", None)]
                return statistics.median(vals) if vals else None

            rates = [float(r["req_per_s"]) for r in rs]
            out[workload][server] = {
                "min": min(rates),
                "max": max(rates),
                "rounds": len(rates),
                "util": med("server_cpu_util"),
                "load_util": med("load_cpu_util"),
                "rate": med("req_per_s"),
                "p99": med("p99_ms"),
                "cpu": med("cpu_us_per_req"),
                "cs": med("ctx_switches_per_req"),
                "sys": med("syscalls_per_req"),
                "errors": sum(int(r["errors"]) for r in rs),
                "loadavg": [r["loadavg"] for r in rs],
            }
    return out


def table(meds):
    others = [s for s in SERVERS if s != "gopark"]
    lines = [
        "| workload | "
        + " | ".join(f"{s} req/s" for s in SERVERS)
        + " | "
        + " | ".join(f"gopark/{s}" for s in others)
        + " | "
        + " | ".join(f"{s} p99" for s in SERVERS)
        + " |",
        "|---|" + "---:|" * (2 * len(SERVERS) + len(others)),
    ]
    for workload, by in meds.items():
        def get(s, k):
            return by[s][k] if s in by else None

        cells = [fmt_rate(get(s, "rate")) for s in SERVERS]
        cells += [fmt_ratio(get("gopark", "rate"), get(s, "rate")) for s in others]
        cells += [fmt_ms(get(s, "p99")) for s in SERVERS]
        lines.append(f"| {label(workload)} | " + " | ".join(cells) + " |")
    if any(v["cpu"] is not None for by in meds.values() for v in by.values()):
        with_sys = any(v["sys"] is not None for by in meds.values() for v in by.values())
        lines += [
            "",
            "What a request cost the server (medians; CPU = user + system time of all "
            "its threads; CPUs used = CPU time / wall time of the run, for the server "
            "and for the load generator):",
            "",
            "| workload | server | CPU µs/req | vs gopark | context switches/req "
            "| server CPUs used | load CPUs used |"
            + (" syscalls/req |" if with_sys else ""),
            "|---|---|---:|---:|---:|---:|---:|" + ("---:|" if with_sys else ""),
        ]
        for workload, by in meds.items():
            base = by.get("gopark", {}).get("cpu")
            for s in SERVERS:
                if s in by and by[s]["cpu"] is not None:
                    v = by[s]
                    cs = "-" if v["cs"] is None else f"{v['cs']:.3f}"
                    util = "-" if v["util"] is None else f"{v['util']:.2f}"
                    lutil = "-" if v["load_util"] is None else f"{v['load_util']:.2f}"
                    rel = fmt_ratio(v["cpu"], base) if base else "-"
                    row = (
                        f"| {label(workload)} | {s} | {v['cpu']:.2f} | {rel} | {cs} "
                        f"| {util} | {lutil} |"
                    )
                    if with_sys:
                        row += " - |" if v["sys"] is None else f" {v['sys']:.2f} |"
                    lines.append(row)
    if any(v["rounds"] > 1 for by in meds.values() for v in by.values()):
        lines += [
            "",
            "Spread of requests/s over the rounds (min to max):",
            "",
            "| workload | " + " | ".join(SERVERS) + " |",
            "|---|" + "---:|" * len(SERVERS),
        ]
        for workload, by in meds.items():
            cells = [
                f"{by[s]['min']:,.0f} to {by[s]['max']:,.0f}" if s in by else "-"
                for s in SERVERS
            ]
            lines.append(f"| {label(workload)} | " + " | ".join(cells) + " |")
    errs = [
        f"{s} on {w}: {by[s]['errors']}"
        for w, by in meds.items()
        for s in by
        if by[s]["errors"] != 0
    ]
    if errs:
        lines += ["", "Errors reported by the load generator: " + "; ".join(errs)]
    return "\n".join(lines)


def short(v):
    """A bar label: 84k, 1.92, 150."""
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.0f}k"
    if v >= 10:
        return f"{v:.0f}"
    return f"{v:.2f}"


def chart(meds, note, path, csv_path):
    """Draws requests/s (with gopark's ratio to each other server) and p99
    latency, grouped by workload, to `path`. Returns False, and says how to
    get it, when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.stderr.write(
            "compare_report: matplotlib is not installed, so no chart was drawn "
            f"({path}); the tables are complete. To get it: pip install matplotlib, "
            f"then: python3 scripts/compare_report.py chart {csv_path} {path}\n"
        )
        return False
    matplotlib.rcParams["svg.hashsalt"] = "gopark-compare"  # stable ids
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text

    servers = [s for s in SERVERS if any(s in by for by in meds.values())]
    workloads = list(meds)
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(13, 5.6), gridspec_kw={"width_ratios": [3, 2]}
    )
    width = 0.8 / len(servers)
    xs = range(len(workloads))

    def bars(ax, key, fmt):
        for si, s in enumerate(servers):
            pos = [x - 0.4 + width * (si + 0.5) for x in xs]
            vals = [meds[w].get(s, {}).get(key) for w in workloads]
            drawn = [(p, v) for p, v in zip(pos, vals) if v is not None]
            if not drawn:
                continue
            rects = ax.bar([p for p, _ in drawn], [v for _, v in drawn], width * 0.92,
                           color=COLORS[s], label=s)
            ax.bar_label(rects, [fmt(v) for _, v in drawn], padding=2, fontsize=7.5)
        ax.set_xticks(list(xs), [label(w).replace(", ", "\n") for w in workloads], fontsize=9)
        ax.grid(axis="y", color="#dddddd", linewidth=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

    bars(left, "rate", short)
    left.set_title("requests/s (higher is better)", fontsize=12, fontweight="bold")
    left.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: short(v) if v else "0"))
    left.set_ylim(0, left.get_ylim()[1] * 1.08)
    # gopark's ratio to each other server, under each workload's bars.
    for x, w in zip(xs, workloads):
        g = meds[w].get("gopark", {}).get("rate")
        ratios = [
            f"gopark/{s} {g / meds[w][s]['rate']:.2f}x"
            for s in servers
            if s != "gopark" and g and meds[w].get(s, {}).get("rate")
        ]
        if ratios:
            left.annotate("\n".join(ratios), (x, 0), xytext=(0, -40),
                          textcoords="offset points", ha="center", va="top", fontsize=7.5,
                          color="#444444", annotation_clip=False)

    bars(right, "p99", lambda v: short(v))
    right.set_title("p99 latency, ms (lower is better)", fontsize=12, fontweight="bold")
    right.set_yscale("log")
    # From the power of ten below the lowest bar, so bar heights compare.
    p99s = [v["p99"] for by in meds.values() for v in by.values() if v["p99"]]
    if p99s:
        right.set_ylim(bottom=10 ** math.floor(math.log10(min(p99s))))
    right.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))

    fig.suptitle(
        "gopark vs " + " vs ".join(s for s in servers if s != "gopark")
        + " on loopback (same load generator)",
        fontsize=14, fontweight="bold",
    )
    fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=len(servers),
               frameon=False, bbox_to_anchor=(0.5, 0.04))
    fig.text(0.5, 0.01, note, ha="center", fontsize=8, color="#555555")
    fig.subplots_adjust(left=0.06, right=0.99, top=0.87, bottom=0.3, wspace=0.15)
    fig.savefig(path, metadata={"Date": None} if path.endswith(".svg") else None)
    plt.close(fig)
    return True


def load_medians(csv_path):
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        fail(f"no results in {csv_path}")
    meds = medians(rows)
    loads = [float(la) for by in meds.values() for v in by.values() for la in v["loadavg"]]
    return meds, loads


def cmd_report(csv_path, svg_path, md_path, note):
    meds, loads = load_medians(csv_path)
    text = table(meds)
    footer = (
        f"\n\n{note}. 1-minute load average at the start of the measured runs: "
        f"{min(loads):.2f} to {max(loads):.2f} (median {statistics.median(loads):.2f})."
    )
    print(text + footer)
    with open(md_path, "w") as f:
        f.write(text + footer + "\n")
    drawn = chart(
        meds, f"{note}; load average {min(loads):.1f} to {max(loads):.1f}", svg_path, csv_path
    )
    sys.stderr.write(f"wrote {csv_path}, {md_path}" + (f", {svg_path}" if drawn else "") + "\n")


def cmd_chart(csv_path, out, note=None):
    meds, loads = load_medians(csv_path)
    note = f"{note}; " if note else ""
    if not chart(meds, f"{note}load average {min(loads):.1f} to {max(loads):.1f}", out, csv_path):
        sys.exit(1)
    sys.stderr.write(f"wrote {out}\n")


def cmd_report_wrk(csv_path):
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    by = {}
    for r in rows:
        by.setdefault(r["connections"], {}).setdefault(r["generator"], []).append(r)

    def med(rs, key):
        return statistics.median(float(r[key]) for r in rs) if rs else None

    rounds = max((len(rs) for g in by.values() for rs in g.values()), default=0)
    print(f"Load generator check against the tokio HTTP server (medians of {rounds} round(s)):")
    print()
    print("| connections | wrk req/s | load req/s | load/wrk | wrk p99 | load p99 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for conns, g in by.items():
        w, l = g.get("wrk", []), g.get("load", [])
        wr, lr = med(w, "req_per_s"), med(l, "req_per_s")
        print(
            f"| {conns} | {fmt_rate(wr)} | {fmt_rate(lr)} | {fmt_ratio(lr, wr)} "
            f"| {fmt_ms(med(w, 'p99_ms'))} | {fmt_ms(med(l, 'p99_ms'))} |"
        )


def cmd_fetch(addr):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    print(re.sub(rb"Date: [^\r]*", b"Date: *", data))


def main(argv):
    if len(argv) < 2:
        fail(__doc__)
    cmd, args = argv[1], argv[2:]
    commands = {
        "parse": (cmd_parse, [9]),
        "report": (cmd_report, [4]),
        "chart": (cmd_chart, [2, 3]),
        "parse-wrk": (cmd_parse_wrk, [3]),
        "report-wrk": (cmd_report_wrk, [1]),
        "fetch": (cmd_fetch, [1]),
    }
    if cmd not in commands or len(args) not in commands[cmd][1]:
        fail(__doc__)
    commands[cmd][0](*args)


if __name__ == "__main__":
    main(sys.argv)
