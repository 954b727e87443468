"""Times score_e2e on the full shared E2E test set (630 MRs, 4,693 references), all five metrics.
Writes results/bench/metrics_speed.json: medians of 3 repeats, cold and warm, plus machine info.

Usage: python -m experiments.bench.metrics_speed [--official PATH_TO_e2e-metrics] [--repeats 3]

Three timings of ours, because METEOR's JVM spends ~6 s loading its paraphrase table before it scores:
- cli_cold: `python -m experiments.metrics e2e ...` in a fresh process (what a user of the CLI waits;
  the fair comparison with the official CLI, which is also a fresh process);
- inprocess_cold: score_e2e(keep_java=False) in a warm Python process (both JVMs started per call);
- inprocess_warm: score_e2e() with its kept METEOR JVM (repeated scoring in one process).
Also meteor_jar_only: the METEOR 1.5 jar alone (start, load its tables, score the pre-tokenised set),
the floor for any cold run that uses the official jar once.
With --official, the official `measure_scores.py` (tuetschek/e2e-metrics checkout, Perl mteval path,
its default) is timed the same way and its printed scores are compared with ours at 4 decimals.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from experiments.metrics import score_e2e  # noqa: E402
from experiments.metrics._io import read_grouped_refs, read_lines  # noqa: E402
from experiments.paths import shared_dir  # noqa: E402
from experiments.metrics.java import Meteor, close_java, start_ptb_tokenizer  # noqa: E402

CASE = "drop_third_word"  # a realistic, imperfect system output


def machine_info() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "java": java[0] if java else None,
        "loadavg_at_start": list(os.getloadavg()),
    }


LOADS: list = []  # 1-minute load average before every timed run: the machine may be shared


def timed(fn, repeats: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        LOADS.append(round(os.getloadavg()[0], 2))
        t0 = time.perf_counter()
        result = fn()
        times.append(round(time.perf_counter() - t0, 3))
    return times, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", help="path to a tuetschek/e2e-metrics checkout (its deps installed) to time too")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "bench" / "metrics_speed.json"))
    args = parser.parse_args()

    cases = shared_dir() / "metric_cases" / "e2e"
    refs_path, hyp_path = cases / "test_refs.txt", cases / f"{CASE}.txt"
    refs, hyps = read_grouped_refs(refs_path), read_lines(hyp_path)
    info = machine_info()
    report: dict = {"what": "score_e2e on the full E2E test set: BLEU, NIST, METEOR, ROUGE_L, CIDEr",
                    "data": {"refs": str(refs_path), "hyp": str(hyp_path), "mrs": len(refs),
                             "references": sum(map(len, refs))},
                    "repeats": args.repeats, "machine": info, "timings_s": {}}

    cli = [sys.executable, "-m", "experiments.metrics", "e2e", "--refs", str(refs_path), "--hyp", str(hyp_path)]

    def run_cli():
        out = subprocess.run(cli, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    official_dir = Path(args.official) if args.official else None

    def run_official():
        out = subprocess.run([sys.executable, "measure_scores.py", str(refs_path), str(hyp_path)],
                             cwd=official_dir, capture_output=True, text=True, check=True).stdout
        return {m: float(v) for m, v in re.findall(r"^(BLEU|NIST|METEOR|ROUGE_L|CIDEr): ([0-9.]+)$", out, re.M)}

    # The machine is shared: interleave our CLI and the official one so both see the same load.
    cli_times, official_times, official = [], [], None
    for _ in range(args.repeats):
        t, ours = timed(run_cli, 1)
        cli_times += t
        if official_dir:
            t, official = timed(run_official, 1)
            official_times += t
    report["timings_s"]["cli_cold"] = {"runs": cli_times, "median": statistics.median(cli_times)}
    times, _ = timed(lambda: score_e2e(hyps, refs, keep_java=False), args.repeats)
    report["timings_s"]["inprocess_cold"] = {"runs": times, "median": statistics.median(times)}
    score_e2e(hyps, refs)  # start and warm the kept JVM
    times, warm_scores = timed(lambda: score_e2e(hyps, refs), args.repeats)
    report["timings_s"]["inprocess_warm"] = {"runs": times, "median": statistics.median(times)}
    close_java()
    tokens = start_ptb_tokenizer(hyps + [r for g in refs for r in g]).result()
    tok_hyps, rest = tokens[: len(hyps)], iter(tokens[len(hyps):])
    tok_refs = [[next(rest) for _ in g] for g in refs]

    def meteor_only():
        meteor = Meteor()
        try:
            return meteor.score(tok_hyps, tok_refs)[0]
        finally:
            meteor.close()

    times, _ = timed(meteor_only, args.repeats)
    report["timings_s"]["meteor_jar_only"] = {"runs": times, "median": statistics.median(times)}
    report["scores"] = ours
    report["scores_identical_cold_warm"] = ours == warm_scores

    if official_dir:
        median = statistics.median(official_times)
        report["timings_s"]["official_cli"] = {"runs": official_times, "median": median}
        report["official"] = {"path": str(official_dir), "command": "python measure_scores.py REFS HYP",
                              "note": "tuetschek/e2e-metrics at its defaults (Perl mteval-v13a for BLEU/NIST)"}
        report["official_scores_printed"] = official
        report["identical_at_4_decimals"] = all(round(ours[m], 4) == official[m] for m in official)
        report["speedup_vs_official"] = {
            k: round(median / report["timings_s"][k]["median"], 2)
            for k in ("cli_cold", "inprocess_cold", "inprocess_warm", "meteor_jar_only")
        }
    info["loadavg_at_end"] = list(os.getloadavg())
    info["loadavg_1min_before_each_run"] = LOADS
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["timings_s"]))
    print(json.dumps(report.get("speedup_vs_official", {})))


if __name__ == "__main__":
    main()
