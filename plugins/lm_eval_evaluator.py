"""Built-in evaluator `lm_eval`: any lm-evaluation-harness task by name, through `phijax.eval.PhijaxLM`.

    evaluators:
      - {name: lm_eval, tasks: [hellaswag, arc_easy], num_fewshot: 0}
      - {name: lm_eval, label: mine, tasks: [my_task], include_path: benchmarks/lm_eval, include_defaults: false}

`include_path` adds task folders on local disk (YAMLs over e.g. `dataset_path: json` +
`dataset_kwargs: {data_files: ...}`); nothing is downloaded unless a task's dataset needs it. Metrics are
named `<task>/<metric>` (`<task>/<metric>,<filter>` for a filter other than `none`). Needs
`pip install phijax[eval]`; registering costs nothing (lm-eval is imported when a config selects it).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from phijax.errors import PhijaxError
from phijax.plugins import hookimpl
from phijax.plugins.protocols import GENERATE, LOGLIKELIHOOD, TOKENS, EvaluationResult

NEEDS = {  # lm-eval request type -> policy capabilities it needs
    "loglikelihood": {LOGLIKELIHOOD},
    "multiple_choice": {LOGLIKELIHOOD},
    "loglikelihood_rolling": {LOGLIKELIHOOD, TOKENS},
    "generate_until": {GENERATE},
}


class LMEvalEvaluator:
    """Runs lm-eval tasks on a policy; see the module docstring for the options."""

    def __init__(
        self,
        *,
        tasks: str | list[str],
        include_path: str | list[str] | None = None,
        include_defaults: bool = True,
        num_fewshot: int | None = None,
        limit: int | float | None = None,
        batch_size: int = 64,
        max_gen_toks: int = 256,
        bootstrap_iters: int = 1000,
        gen_kwargs: dict[str, Any] | None = None,
        apply_chat_template: bool = False,
    ) -> None:
        if _lm_eval_missing():
            from phijax.eval import LM_EVAL_MISSING

            raise PhijaxError(LM_EVAL_MISSING)
        self.tasks = [tasks] if isinstance(tasks, str) else list(tasks)
        if not self.tasks:
            raise PhijaxError("lm_eval: `tasks` is empty; name at least one lm-eval task")
        self.include_path = [include_path] if isinstance(include_path, str) else list(include_path or [])
        for path in self.include_path:
            if not Path(path).is_dir():
                raise PhijaxError(f"lm_eval: include_path {path} is not a directory of task YAMLs")
        self.include_defaults, self.num_fewshot, self.limit = include_defaults, num_fewshot, limit
        self.batch_size, self.max_gen_toks, self.bootstrap_iters = batch_size, max_gen_toks, bootstrap_iters
        self.gen_kwargs, self.apply_chat_template = gen_kwargs, apply_chat_template
        self.task_objects = self._load_tasks()
        self.requires = frozenset().union(*(NEEDS.get(t.OUTPUT_TYPE, set()) for t in self.task_objects.values()))

    def _task_manager(self) -> Any:
        from lm_eval.tasks import TaskManager

        return TaskManager(include_path=self.include_path or None, include_defaults=self.include_defaults)

    def _load_tasks(self) -> dict[str, Any]:
        """Every named task, loaded now: an unknown name or an unreadable data file fails before any model."""
        from lm_eval.tasks import get_task_dict

        manager = self._task_manager()
        for name in self.tasks:
            if name not in manager.all_tasks:
                close = difflib.get_close_matches(name, manager.all_tasks, n=1)
                hint = f"did you mean `{close[0]}`? " if close else ""
                raise PhijaxError(f"lm_eval: unknown task `{name}`: {hint}(add its folder with include_path)")
        try:
            loaded = get_task_dict(self.tasks, manager)
        except Exception as err:  # noqa: BLE001 - datasets/jinja errors carry the file; one line for the user
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise PhijaxError(f"lm_eval: cannot load tasks {', '.join(self.tasks)}: {first}") from err
        return dict(_leaf_tasks(loaded))

    def items(self) -> Iterator[dict[str, Any]]:
        """Every evaluated document as `{id, text}` (prompt, choices, then the target's text), for decontamination."""
        for name, task in self.task_objects.items():
            for i, doc in enumerate(task.eval_docs):
                yield {"id": f"{name}/{i}", "text": document_text(task, doc)}

    def __call__(self, policy: Any, *, seed: int) -> EvaluationResult:
        """Run the tasks on `policy`; multi-host, processes other than 0 follow process 0's batches."""
        import lm_eval

        from phijax.eval.harness import PhijaxLM

        lm = PhijaxLM(policy=policy, batch_size=self.batch_size, max_gen_toks=self.max_gen_toks, seed=seed)
        if lm.lockstep.active and not lm.lockstep.leader:
            lm.follow()
            return EvaluationResult(metrics={})
        try:
            out = lm_eval.simple_evaluate(
                model=lm,
                tasks=self.tasks,
                task_manager=self._task_manager(),
                num_fewshot=self.num_fewshot,
                limit=self.limit,
                log_samples=True,
                bootstrap_iters=self.bootstrap_iters,
                gen_kwargs=self.gen_kwargs,
                apply_chat_template=self.apply_chat_template,
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
            )
        finally:
            lm.release()
        return to_result(out)


def to_result(out: dict[str, Any]) -> EvaluationResult:
    """lm-eval's results dict as an `EvaluationResult`: `<task>/<metric>` values, stderrs and samples."""
    metrics: dict[str, float] = {}
    stderr: dict[str, float] = {}
    for task, values in out["results"].items():
        for key, value in values.items():
            metric, _, filt = key.partition(",")
            if not filt or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            name = f"{task}/{metric}" if filt == "none" else f"{task}/{metric},{filt}"
            if metric.endswith("_stderr"):
                if math.isfinite(value):
                    stderr[name.replace("_stderr", "", 1)] = float(value)
            else:
                metrics[name] = float(value)
    samples = [_sample(task, s) for task, rows in out.get("samples", {}).items() for s in rows]
    return EvaluationResult(metrics=metrics, stderr=stderr, samples=samples)


def _sample(task: str, row: dict[str, Any]) -> dict[str, Any]:
    """One logged document: each request's context, continuation or generation and score, target, metrics."""
    requests = []
    for args, resp in zip(row["arguments"], row["filtered_resps"], strict=False):
        request: dict[str, Any] = {"context": args[0]}
        if isinstance(resp, (list, tuple)) and len(resp) == 2 and isinstance(resp[1], bool):
            request.update(continuation=args[1], loglikelihood=float(resp[0]), is_greedy=resp[1])
        elif isinstance(resp, (int, float)):
            request.update(loglikelihood=float(resp))
        else:
            request.update(generation=str(resp), gen_kwargs=args[1] if len(args) > 1 else None)
        requests.append(request)
    return {
        "id": f"{task}/{row['doc_id']}",
        "task": task,
        "doc_id": row["doc_id"],
        "target": row["target"],
        "requests": requests,
        "metrics": {m: row[m] for m in row.get("metrics", []) if m in row},
    }


def _leaf_tasks(loaded: dict[Any, Any]) -> Iterator[tuple[str, Any]]:
    """(name, Task) of every task in lm-eval's (possibly nested, grouped) task dict."""
    for key, value in loaded.items():
        if isinstance(value, dict):
            yield from _leaf_tasks(value)
        else:
            yield str(getattr(value, "task_name", None) or getattr(key, "group_name", key)), value


def document_text(task: Any, doc: Any) -> str:
    """One lm-eval document as training text could hold it: the prompt, every choice (multiple choice),
    then the target as text (a multiple-choice target is the index or label of a choice: its text)."""
    choices = [str(c) for c in task.doc_to_choice(doc)] if task.OUTPUT_TYPE == "multiple_choice" else []
    targets = task.doc_to_target(doc)
    targets = targets if isinstance(targets, list) else [targets]
    return "\n".join([str(task.doc_to_text(doc)), *choices, *(_target_text(t, choices) for t in targets)])


def _target_text(target: Any, choices: list[str]) -> str:
    """A target as text: an index into `choices` is that choice (lm-eval turns digit strings into indices)."""
    if choices and isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(choices):
        return choices[target]
    return str(target)


def _lm_eval_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("lm_eval") is None


@hookimpl
def phijax_register_evaluators(register) -> None:
    register("lm_eval", LMEvalEvaluator)
