"""benchmarks/gpu_check.sh's last step: SCRATCH/results (steps.tsv, env.json, one JSON per probe) and the CUDA
tests' log -> OUT/summary.json (every figure) and OUT/summary.md (one screen).

    python benchmarks/gpu_summary.py SCRATCH OUT
"""

import json
import sys
from pathlib import Path

CASES = ("eager", "graphs", "graphs_bf16", "packed5", "packed25", "compiled")
LABELS = {"eager": "one run, eager fp32", "graphs": "one run, captured (--graphs) fp32",
          "graphs_bf16": "one run, captured bf16 (--graphs --amp)", "packed5": "packed runs (small pack)",
          "packed25": "packed runs (large pack)", "compiled": "one run, compiled (last step)"}


def read_steps(path: Path) -> dict[str, dict]:
    steps = {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        name, rc, seconds, limit = line.split("\t")
        outcome = {"0": "ok", "124": "time limit", "137": "killed at the time limit", "skipped": "skipped (budget spent)",
                   "none": "none (no .whl/)"}.get(rc, f"failed (exit {rc})")
        steps[name] = {"exit": rc, "outcome": outcome, "seconds": int(seconds), "limit": int(limit)}
    return steps


def last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()] if path.is_file() else []
    return lines[-1] if lines else "(no output)"


def summarise(scratch: Path) -> dict:
    results = scratch / "results"
    steps = read_steps(results / "steps.tsv")
    env = json.loads((results / "env.json").read_text()) if (results / "env.json").is_file() else {}
    cases = {}
    for name in CASES:
        path = results / f"{name}.json"
        case = json.loads(path.read_text()) if path.is_file() else {"ok": False, "error": "no result written"}
        case["step"] = steps.get(name, {"outcome": "not run"})
        cases[name] = case
    sync = {n: c.get("sync_debug") for n, c in cases.items() if c.get("sync_debug")}
    return {"env": env, "steps": steps, "cases": cases, "sync_debug": sync,
            "cuda_tests": {"result": last_line(scratch / "logs" / "cuda_tests.log"), **steps.get("cuda_tests", {})},
            "compile": {"outcome": steps.get("compiled", {}).get("outcome", "not run"),
                        "it_s": cases["compiled"].get("it_s"), "error": cases["compiled"].get("error")}}


def markdown(s: dict) -> str:
    env = s["env"]
    lines = [f"# GPU check: {env.get('device_name') or 'no CUDA device (dry run)'}",
             f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), Python {env.get('python')}; "
             f"missing: {', '.join(env.get('missing_packages', [])) or 'nothing'}", "",
             "| case | runs | it/s (per run) | aggregate it/s | peak MiB per run | sync-debug | step |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, c in s["cases"].items():
        figures = [c.get("per_run_it_s"), c.get("aggregate_it_s"), c.get("peak_mem_per_run_mib")]
        flags = " ".join(f"--{f}" for f in ("graphs", "amp", "compile") if c.get(f))
        lines.append(f"| {name} {flags} | {c.get('runs', '')} | "
                     + " | ".join("" if v is None else str(v) for v in figures)
                     + f" | {(c.get('sync_debug') or '')[:40]} | {c['step']['outcome']} {c['step'].get('seconds', '')}s"
                     + (f": {c['error'][:60]}" if c.get("error") else "") + " |")
    lines += ["", f"CUDA tests (tests/test_cuda.py): {s['cuda_tests']['result']} ({s['cuda_tests'].get('outcome')})",
              f"compiled step: {s['compile']['outcome']}" + (f", {s['compile']['it_s']} it/s" if s['compile']['it_s'] else ""),
              "steps: " + ", ".join(f"{n} {v['outcome']} {v['seconds']}s" for n, v in s["steps"].items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    scratch, out = Path(sys.argv[1]), Path(sys.argv[2])
    summary = summarise(scratch)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(markdown(summary))


if __name__ == "__main__":
    main()
