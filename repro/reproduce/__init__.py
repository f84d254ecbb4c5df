"""`repro reproduce table2|table3|table4|table5|all`: every row of the paper's tables, from nothing to report.

For each row and seed: train (or reuse a finished run, resume an interrupted one), translate the val set
in both directions, score both, and write OUT/ROW/seed-K/result.json with its provenance. Then the
report (repro.report) diffs every cell against the paper.

    OUT/ROW/seed-K/run/             the training run (config.toml, checkpoint.pt, losses.jsonl, run.json)
    OUT/ROW/seed-K/labels2photo/    G's translations of the val label maps (scored by the FCN, Tables 2/4)
    OUT/ROW/seed-K/photo2labels/    F's translations of the val photos (nearest palette colour, Tables 3/5)
    OUT/ROW/seed-K/result.json      both directions' metrics + provenance
    OUT/ground_truth|untrained|constant/seed-K/   the floor and ceiling rows (repro.bounds), scored the same way
    OUT/results.csv                 every number, one tidy line each (repro.results_table)
    OUT/report.md, OUT/report.html, OUT/figures/

Every row is trained once and scored in both directions, so `table2` and `table3` run the same rows (and
the report shows both tables); likewise `table4` and `table5`.

`--bounds-only` scores only the floor and ceiling rows (repro.bounds), which every reproduction scores too.

`--pretrained` adds the official PyTorch port's pretrained Cityscapes generators as a row of Tables 2 and 3
(OUT/port_pretrained/seed-0/, nothing trained; `--pretrained-only` scores only that row).

Scales: `smoke` runs the shrunk configs (repro/configs/smoke) on the synthetic city, made in OUT/synth-city
with a small FCN-8s trained there (OUT/segmenter.pt); `paper` runs repro/configs/cityscapes on real
Cityscapes with the segmenter you give. Missing prerequisites stop the command before any work.

`horse2zebra` and `fid --dataset NAME` are the FID/KID reproductions later papers compare against
(repro.reproduce_fid, docs/fid.md); of the options above they take --scale, --seeds, --out, --data, --set,
--ranges, --device, --allow-cpu, --pretrained(-only), --quiet.

The package, lowest first: `plan` (Setup, the prerequisites, the runs to do, packs, the estimate), `pipeline`
(one row at one seed, from config to result.json, and one launcher job) and `launcher` (every run a submitit
job, `--launcher`). The launcher is handed the pipeline's work function (run_job) here and imports neither.
"""

from repro.reproduce.pipeline import (REPRODUCE_DISK_FULL_FIX, bound_runs, run_bound, run_bounds, run_job,
                                      run_pretrained, run_row, scorings_without_training, train_packs, translate)
from repro.reproduce.plan import (Setup, estimate, estimate_for, evaluation_seconds, finished_result, pack_groups,
                                  pack_size, pack_slots, paper_setup, planned_runs, rows_for, smoke_setup)
from repro.rows import PRETRAINED, TARGETS, Row

__all__ = ["REPRODUCE_DISK_FULL_FIX", "Setup", "bound_runs", "estimate", "estimate_for", "evaluation_seconds",
           "finished_result", "launch_runs", "pack_groups", "pack_size", "pack_slots", "paper_setup", "planned_runs",
           "reproduce", "rows_for", "run_bound", "run_bounds", "run_job", "run_pretrained", "run_row",
           "scorings_without_training", "smoke_setup", "train_packs", "translate"]


def reproduce(target: str, setup: Setup, seeds: int, iters_per_epoch: int | None = None,
              progress: bool = True, pretrained: str | None = None, pack: str = "off") -> list[dict]:
    """Every implemented row of the target at seeds 0..seeds-1 (rows not implemented are only listed).
    OUT/reproduce.json (what was asked) is written first, so an interrupted run can still be reported.
    pretrained: "add" also scores the port's pretrained generators (Tables 2/3), "only" scores only them."""
    runs = planned_runs(target, setup, seeds, iters_per_epoch, pretrained)
    if pack != "off":
        train_packs(runs, setup, iters_per_epoch, pack, progress)
    results = [run_pretrained(setup, progress)] if pretrained and any(t in PRETRAINED.tables for t in TARGETS[target]) else []
    results += [run_row(row, seed, setup, iters_per_epoch, progress) for row, seed in runs]
    return results + (run_bounds(setup, seeds, progress) if pretrained != "only" else [])


def launch_runs(runs: list[tuple[Row, int]], setup: Setup, iters_per_epoch: int | None, opts):
    """Submits the runs still to do as jobs (repro.reproduce.launcher, `opts` its Options) and, unless opts.wait is
    False, waits for them. Each job runs run_job."""
    from repro.reproduce import launcher as launch

    todo = [(row, seed) for row, seed in runs if finished_result(row, seed, setup, iters_per_epoch) is None]
    running = launch.running_groups(setup, todo, opts.launcher)  # left to their jobs: nothing here reads or writes their runs
    busy = {run for group in running for run in group}
    free = [(row, seed) for row, seed in todo if (row.key, seed) not in busy]
    packs = (pack_groups(free, setup, iters_per_epoch, opts.pack, pack_slots(opts.pack, opts))
             if opts.pack != "off" else [])
    packed = {(row.key, seed) for group in packs for row, seed in group}
    groups = running + [[(row.key, seed) for row, seed in group] for group in packs]  # first: the longest jobs
    groups += [[(row.key, seed)] for row, seed in free if (row.key, seed) not in packed]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already finished; {len(todo)} to do as {len(groups)} "
          f"{opts.launcher} job(s)" + (f", {len(packs)} of them packs of {'/'.join(str(len(g)) for g in packs)} runs"
                                       if packs else ""), flush=True)
    outcome = launch.launch(groups, setup, iters_per_epoch, opts, run_job)
    if outcome.pending:
        print(f"{len(outcome.submitted)} job(s) submitted, {len(outcome.adopted)} still running from before: "
              f"rerun this same command to collect them and write the report", flush=True)
    return outcome
