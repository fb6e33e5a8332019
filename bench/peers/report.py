#!/usr/bin/python3
"""The peers benchmark's report: ratios to the best static pair of each scenario (throughput and
p99), OOM kills and failed requests per system, the load step's time to 90 %, the alternating
phases, the kill -9 scenario; markdown tables on stdout and PNG plots (matplotlib).

    bench/peers/report.py RESULTS.json [PLOT_DIR]
"""

import json
import os
import sys

# The targets of the Controller's acceptance (docs/benchmarks.md, "Peers").
STEADY_MIN_RATIO = 0.95
P99_MAX_RATIO = 1.25
MEMORY_MIN_RATIO = 0.9
PRELOAD_MIN_RATIO = 0.95  # issue "Preloader": >= 0.95 x gunicorn --preload's best static pair
STEP_WITHIN_S = 5
PHASE_MIN_RATIO = 0.9
KILL_MIN_RATIO = 0.8


def is_static(run):
    return run.get("system", "").startswith("gunicorn")


def failed(run):
    return run.get("errors", 0) + run.get("non_2xx", 0)


def best_static(runs, exclude_oom=True):
    ok = [r for r in runs if is_static(r) and "rps" in r
          and not (exclude_oom and r.get("oom_kills", 0))]
    return max(ok, key=lambda r: r["rps"]) if ok else None


def verdict(ok):
    return "met" if ok else "**missed**"


def steady_table(name, scenario, min_ratio):
    runs = scenario["runs"]
    best = best_static(runs)
    out = [f"### {name}: `{scenario.get('route', '')}`", ""]
    if not best:
        return out + ["no static pair completed", ""]
    out.append(f"Best static pair: {best['system']}, {best['rps']:.0f} rps, p99 "
               f"{best['p99_ms']:.0f} ms.")
    out.append("")
    out.append("| system | rps | × best | p99 ms | p99 × best | OOM kills | failed | shape |")
    out.append("|---|---|---|---|---|---|---|---|")
    uwsgi = next((r for r in runs if r.get("system") == "uwsgi cheaper" and "rps" in r), None)
    lines = []
    for r in sorted(runs, key=lambda r: -r.get("rps", 0)):
        if "rps" not in r:
            lines.append(f"| {r['system']} | did not start | | | | | | |")
            continue
        shape = r.get("shape")
        shape_text = ""
        if shape and shape[0] is not None:
            threads = sorted(set(t for t in shape[1] if t))
            shape_text = f"{shape[0]} × {','.join(map(str, threads))}"
        lines.append(
            f"| {r['system']} | {r['rps']:.0f} | {r['rps'] / best['rps']:.2f} | "
            f"{r['p99_ms']:.0f} | {r['p99_ms'] / best['p99_ms']:.2f} | {r.get('oom_kills', '')} |"
            f" {failed(r)} | {shape_text} |")
    out += lines
    out.append("")
    for r in runs:
        if not r.get("system", "").startswith("tunerd") or "rps" not in r:
            continue
        ratio = r["rps"] / best["rps"]
        p99 = r["p99_ms"] / best["p99_ms"]
        beats_uwsgi = uwsgi is None or r["rps"] >= uwsgi["rps"]
        out.append(f"* {r['system']}: {ratio:.2f} × best ({verdict(ratio >= min_ratio)} "
                   f"≥ {min_ratio}), p99 {p99:.2f} × ({verdict(p99 <= P99_MAX_RATIO)} ≤ "
                   f"{P99_MAX_RATIO}), " + (f"{r['rps'] / uwsgi['rps']:.2f} × uWSGI cheaper "
                                            f"({verdict(beats_uwsgi)} ≥ 1)" if uwsgi else "")
                   + (f", OOM kills {r.get('oom_kills', 0)} ({verdict(r.get('oom_kills', 0) == 0)}"
                      " 0)" if "oom_kills" in r else ""))
    out.append("")
    return out


def preload_fits(scenario):
    """How many processes fit: gunicorn --preload's largest pair without an OOM kill, against
    the memory ceiling tunerd's policy computed (the most slots it would run)."""
    runs = [r for r in scenario["runs"] if "rps" in r]
    fitted = [int(r["system"].split()[-1].split("x")[0]) for r in runs
              if r["system"].startswith("gunicorn") and r.get("oom_kills", 0) == 0]
    if not fitted:
        return []
    most = max(fitted)
    out = [f"Processes that fit: gunicorn --preload ran up to {most} workers without an OOM kill "
           f"(the largest in its grid)."]
    for r in runs:
        if r["system"].startswith("tunerd") and r.get("memory_ceiling") is not None:
            ceiling = r["memory_ceiling"]
            out.append(f"* {r['system']}: memory ceiling {ceiling} slots "
                       f"({verdict(ceiling >= most)} ≥ {most})")
    return out + [""]


def time_to_fraction(per_second, final, fraction=0.9):
    for i, (ok, _e, _o) in enumerate(per_second):
        if ok >= fraction * final:
            return i
    return None


def load_step_table(scenario):
    out = ["### Load step from idle", "",
           "| system | idle before (s) | final rps (s 30–40) | s to 90 % | failed |",
           "|---|---|---|---|---|"]
    for r in scenario["runs"]:
        if "per_second" not in r:
            out.append(f"| {r['system']} | did not start | | | |")
            continue
        ps = r["per_second"]
        window = [s[0] for s in ps[30:40]]
        final = sum(window) / len(window) if window else 0
        t90 = time_to_fraction(ps, final)
        ok = t90 is not None and t90 <= 5
        out.append(f"| {r['system']} | {r.get('idle_s', '')} | {final:.0f} | "
                   f"{t90 if t90 is not None else 'never'}"
                   + (f" ({verdict(ok)})" if r["system"].startswith("tunerd") else "")
                   + f" | {failed(r)} |")
    out.append("")
    return out


def phase_rates(run, phases, skip_s=5):
    """Requests per second of each phase after its first `skip_s` seconds (per-second buckets)."""
    ps = run["per_second"]
    rates, start = [], 0
    for seconds, _conns, _target in phases:
        buckets = [b[0] for b in ps[start + skip_s:start + seconds]]
        rates.append(sum(buckets) / max(1, len(buckets)))
        start += seconds
    return rates


def alternating_table(scenario):
    phases = scenario["phases"]
    runs = [r for r in scenario["runs"] if "per_second" in r]
    out = ["### Alternating phases", "",
           "30 s of the CPU route at 8 connections, 30 s of the I/O-heavy route at 128, twice. "
           "Whole run: requests served; phases: rps after each phase's first 5 s.", ""]
    header = "| system | whole run (requests) | × best static | " + " | ".join(
        f"phase {i + 1} ({c} conn)" for i, (_s, c, _t) in enumerate(phases)) + " | failed |"
    out += [header, "|" + "---|" * (4 + len(phases))]
    statics = [r for r in runs if is_static(r)]
    best = max(statics, key=lambda r: r["ok"]) if statics else None
    phase_best = [max(phase_rates(r, phases)[i] for r in statics) if statics else 0
                  for i in range(len(phases))]
    for r in sorted(runs, key=lambda r: -r["ok"]):
        rates = phase_rates(r, phases)
        cells = " | ".join(f"{x:.0f} ({x / phase_best[i]:.2f})" if phase_best[i] else f"{x:.0f}"
                           for i, x in enumerate(rates))
        out.append(f"| {r['system']} | {r['ok']} | "
                   f"{r['ok'] / best['ok']:.2f} | {cells} | {failed(r)} |" if best else "")
    tunerd = next((r for r in runs if r["system"].startswith("tunerd")), None)
    if tunerd and best:
        rates = phase_rates(tunerd, phases)
        worst = min(rates[i] / phase_best[i] for i in range(len(phases)) if phase_best[i])
        out.append("")
        out.append(f"* tunerd: whole run {tunerd['ok'] / best['ok']:.2f} × the best single static "
                   f"pair ({best['system']}) ({verdict(tunerd['ok'] >= best['ok'])} ≥ 1.0); worst "
                   f"phase {worst:.2f} × that phase's best pair ({verdict(worst >= PHASE_MIN_RATIO)}"
                   f" ≥ {PHASE_MIN_RATIO})")
    out.append("")
    return out


def kill_table(scenario):
    out = ["### kill -9 of a random worker every 2 s", "",
           "| system | undisturbed rps | with kills rps | × undisturbed | kills | failed |",
           "|---|---|---|---|---|---|"]
    for r in scenario["runs"]:
        u, k = r["undisturbed"], r["killed"]
        if "rps" not in u or "rps" not in k:
            out.append(f"| {r['system']} | did not start | | | | |")
            continue
        ratio = k["rps"] / u["rps"] if u["rps"] else 0
        mark = ""
        if r["system"].startswith("tunerd"):
            mark = f" ({verdict(ratio >= KILL_MIN_RATIO and failed(k) == 0)})"
        out.append(f"| {r['system']} | {u['rps']:.0f} | {k['rps']:.0f} | {ratio:.2f}{mark} | "
                   f"{k.get('kills', '')} | {failed(k)} |")
    out.append("")
    return out


def plots(results, plot_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib missing: no plots; scripts/install-deps --bench)", file=sys.stderr)
        return []
    os.makedirs(plot_dir, exist_ok=True)
    made = []
    scenarios = results["scenarios"]
    steady = [n for n in ("cpu", "io_mixed", "io_heavy", "memory", "memory_preload")
              if n in scenarios]
    if steady:
        fig, axes = plt.subplots(1, len(steady), figsize=(4.5 * len(steady), 4), squeeze=False)
        for ax, name in zip(axes[0], steady):
            runs = [r for r in scenarios[name]["runs"] if "rps" in r]
            best = best_static(runs)
            statics = sorted((r for r in runs if is_static(r)), key=lambda r: -r["rps"])[:6]
            others = [r for r in runs if not is_static(r)]
            shown = statics + others
            colors = ["#999999"] * len(statics) + ["#d62728" if r["system"].startswith("tunerd")
                                                   else "#1f77b4" for r in others]
            ax.barh([r["system"].replace("gunicorn ", "g ").replace("memory_per_worker=", "mpw=")
                     for r in shown], [r["rps"] for r in shown], color=colors)
            if best:
                ax.axvline(best["rps"] * STEADY_MIN_RATIO, ls="--", color="black", lw=0.8)
            ax.invert_yaxis()
            ax.set_title(name)
            ax.set_xlabel("requests/s")
        fig.tight_layout()
        path = os.path.join(plot_dir, "peers-steady.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)
    if "load_step" in scenarios:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for r in scenarios["load_step"]["runs"]:
            if "per_second" in r:
                ax.plot([s[0] for s in r["per_second"]], label=r["system"])
        ax.axvline(STEP_WITHIN_S, ls="--", color="black", lw=0.8)
        ax.set_xlabel("seconds after the step")
        ax.set_ylabel("requests/s")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(plot_dir, "peers-load-step.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)
    if "alternating" in scenarios:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        runs = [r for r in scenarios["alternating"]["runs"] if "per_second" in r]
        best = max((r for r in runs if is_static(r)), key=lambda r: r["ok"], default=None)
        for r in runs:
            if r["system"].startswith("tunerd") or r["system"] == "uwsgi cheaper" or r is best:
                ax.plot([s[0] for s in r["per_second"]], label=r["system"])
        ax.set_xlabel("seconds")
        ax.set_ylabel("requests/s")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(plot_dir, "peers-alternating.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        made.append(path)
    return made


def main(path, plot_dir):
    with open(path) as f:
        results = json.load(f)
    m = results["machine"]
    out = [f"Run of {results['started']}, {m['cores']} cores ({m['cpu']}), kernel {m['kernel']}, "
           f"revision {m['revision']}, load average at start {' '.join(m['loadavg'])}; "
           f"warm-up {results['warmup_s']} s, window {results['window_s']} s"
           + (f"; took {results['took_s'] // 60} min" if "took_s" in results else "") + ".", ""]
    s = results["scenarios"]
    for name in ("cpu", "io_mixed", "io_heavy"):
        if name in s:
            out += steady_table(name, s[name], STEADY_MIN_RATIO)
    if "memory" in s:
        out += steady_table("memory-bound (512 MB, 150 MB processes)", s["memory"],
                            MEMORY_MIN_RATIO)
    if "memory_preload" in s:
        out += steady_table("memory-bound, preloaded (512 MB, 150 MB from import)",
                            s["memory_preload"], PRELOAD_MIN_RATIO)
        out += preload_fits(s["memory_preload"])
    if "load_step" in s:
        out += load_step_table(s["load_step"])
    if "alternating" in s:
        out += alternating_table(s["alternating"])
    if "kill" in s:
        out += kill_table(s["kill"])
    for p in plots(results, plot_dir):
        out.append(f"![{os.path.basename(p)}](img/{os.path.basename(p)})")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "docs/img")
