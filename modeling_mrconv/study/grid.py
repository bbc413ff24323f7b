"""The study grid: which cells, in which order, on how many processes.

Peers first sweep their learning rate on seed 0, then run the other seeds at the sweep's best rate; MRConv variants
and ablations use the task preset's rate. Every finished cell is one line of `runs.jsonl`; a rerun skips the keys
already there, so an interrupted study resumes where it stopped.
"""

import concurrent.futures as futures
import heapq
import json
import multiprocessing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from modeling_mrconv.study.config import RunSpec, Study


def load_records(path: Path) -> list[dict[str, Any]]:
    """The records of `runs.jsonl` (none if it does not exist yet)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def sweep_specs(study: Study, task: str, model: str) -> list[RunSpec]:
    return [RunSpec(task, model, 0, lr, "sweep", study.quick) for lr in study.peer_learning_rates]


def best_learning_rate(records: list[dict[str, Any]]) -> float:
    """The sweep's rate: best validation accuracy, then lower validation loss, then the smaller rate."""

    def rank(r: dict[str, Any]) -> tuple:
        loss = r["validation"]["loss"]
        return (-r["validation"]["accuracy"], loss if loss == loss else float("inf"), r["learning_rate"])

    return min(records, key=rank)["learning_rate"]


def task_models(study: Study, task: str, models: list[str]) -> list[str]:
    """`models` without those the study excludes on `task`."""
    return [m for m in models if m not in study.tasks[task].excluded]


def initial_specs(study: Study, tasks: list[str], models: list[str], seeds: int) -> list[RunSpec]:
    """Every cell that does not wait for a sweep: MRConv cells of all seeds and the peers' sweeps."""
    specs = []
    for task in tasks:
        for model in task_models(study, task, models):
            if study.families[model] == "peer":
                specs += sweep_specs(study, task, model)
            else:
                lr = study.learning_rate(task, model)
                specs += [RunSpec(task, model, seed, lr, "main", study.quick) for seed in range(seeds)]
    return specs


def chosen_rates(study: Study, records: list[dict[str, Any]], tasks: list[str], models: list[str]) -> dict:
    """{(task, peer): rate} for every peer whose sweep is complete in `records`."""
    by_key = {r["key"]: r for r in records}
    chosen = {}
    for task in tasks:
        for model in task_models(study, task, models):
            if study.families[model] != "peer":
                continue
            sweep = [by_key.get(s.key) for s in sweep_specs(study, task, model)]
            if all(sweep):
                chosen[task, model] = best_learning_rate(sweep)
    return chosen


def followup_specs(study: Study, chosen: dict, seeds: int) -> list[RunSpec]:
    """The main cells of seeds 1.. of each peer at its chosen rate (seed 0 is the sweep cell at that rate)."""
    return [
        RunSpec(task, model, seed, lr, "main", study.quick)
        for (task, model), lr in chosen.items()
        for seed in range(1, seeds)
    ]


def run_grid(
    study: Study,
    tasks: list[str],
    models: list[str],
    seeds: int,
    results_path: Path,
    run_fn: Callable[[RunSpec], dict[str, Any]],
    workers: int = 2,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every missing cell of the grid with `run_fn` (`runner.run_cell`), `workers` at a time (in-process when 1),
    in task order (an interrupted study has its first tasks complete); returns all records of the file."""
    records = load_records(results_path)
    done = {r["key"] for r in records}
    order = {task: i for i, task in enumerate(tasks)}
    queue: list[tuple] = []
    queued: set[str] = set()

    def push(specs: Iterable[RunSpec]) -> None:
        for spec in specs:
            if spec.key not in done and spec.key not in queued:
                queued.add(spec.key)
                heapq.heappush(queue, (order[spec.task], spec.phase != "sweep", len(queued), spec))

    def finish(record: dict[str, Any]) -> None:
        with results_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        records.append(record)
        done.add(record["key"])
        push(followup_specs(study, chosen_rates(study, records, tasks, models), seeds))
        if on_record is not None:
            on_record(record)

    push(initial_specs(study, tasks, models, seeds))
    push(followup_specs(study, chosen_rates(study, records, tasks, models), seeds))
    if workers <= 1:
        while queue:
            finish(run_fn(heapq.heappop(queue)[-1]))
        return records
    context = multiprocessing.get_context("spawn")
    with futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)
    ) as pool:
        running: set[futures.Future] = set()
        while queue or running:
            while queue and len(running) < workers:
                running.add(pool.submit(run_fn, heapq.heappop(queue)[-1]))
            finished, running = futures.wait(running, return_when=futures.FIRST_COMPLETED)
            for future in finished:
                finish(future.result())
    return records


def planned_runs(study: Study, tasks: list[str], models: list[str], seeds: int) -> int:
    """Number of cells the grid needs (sweeps + main), known before any sweep finished."""
    return sum(
        len(study.peer_learning_rates) + seeds - 1 if study.families[model] == "peer" else seeds
        for task in tasks
        for model in task_models(study, task, models)
    )
