"""The collected dataset: what one record holds, how it becomes a training chat, and its dataset card.

``data/refinements.jsonl``: one record per wrong solution, teacher and instruction format (and hindsight
flag), self-contained for SFT and RL: the problem (``problem``: ``Problem.to_dict`` as JSON, tests
included, for rewards that run new refinements), the wrong code and its feedback, the training chat
(``chat``: task, wrong code as the assistant's answer, feedback; what the student sees), the chat the
teacher was sent (``teacher_chat``; differs only with hindsight), and the ``verified`` and ``failed``
(explanation, refinement) pairs with their test pass fractions. ``data/solutions.jsonl``: the correct
initial solutions (SFT's code-generation examples). ``datasets.load_dataset("json", data_files=...)``
reads both as they are; the card's YAML header names them as two configs for ``load_dataset(<folder>)``
and ``push_to_hub``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from selfdebug.generate.base import Chat
from selfdebug.prompts import format_reply, initial_chat

REFINEMENTS = "data/refinements.jsonl"
SOLUTIONS = "data/solutions.jsonl"

REFINEMENT_FIELDS = {
    "record_id": "stable id: <problem>/<solution digest>/<teacher>/<mode>[/hindsight]",
    "source": "problem set (mbpp, apps, codecontests)",
    "problem_id": "task id in its problem set",
    "problem": "the problem as JSON (selfdebug Problem.to_dict: prompt, entry point, tests)",
    "solution_id": "the wrong solution's id (its problem and a digest of its normalised code)",
    "models": "models that sampled this wrong solution",
    "wrong_code": "the wrong solution as it ran (parsed and sanitized)",
    "status": "its sandbox verdict (wrong_answer, runtime_error, timeout, ...)",
    "feedback": "the execution feedback shown (the error or the first failed test)",
    "wrong_pass_fraction": "share of the problem's tests the wrong solution passes",
    "teacher": "'self' (the sampling model: self-bootstrap) or the teacher's model id",
    "teacher_model": "the model that answered",
    "mode": "refine (code only) or explain_refine (explanation, then code)",
    "hindsight": "the teacher was also shown a correct sample (beyond the paper; STaR rationalization)",
    "hint_solution_id": "with hindsight: the correct sample shown",
    "chat": "training chat: task, the wrong code as the assistant's answer, the feedback turn",
    "teacher_chat": "the chat the teacher was sent (differs from chat only with hindsight)",
    "verified": "pairs whose refinement passes every test: explanation, refinement, pass_fraction (1.0), ...",
    "failed": "pairs whose refinement fails: explanation, refinement, pass_fraction, status, feedback, ...",
    "n_verified": "len(verified)", "n_failed": "len(failed)",
    "n_duplicates": "replies dropped as duplicate (explanation, normalised refinement) pairs",
    "reply_errors": "replies without code (empty or unparsable)",
    "teacher_error": "why the teacher gave no replies (endpoint failure), else null",
}
SOLUTION_FIELDS = {
    "solution_id": "stable id (problem and a digest of the normalised code)", "source": "problem set",
    "problem_id": "task id", "models": "models that sampled it", "chat": "the instruction chat (no few-shot)",
    "code": "the correct solution as it ran", "completion": "the first reply it was parsed from",
    "n_occurrences": "how many samples normalise to this code",
}


def training_chat(record: dict[str, Any], pair: dict[str, Any]) -> Chat:
    """The SFT chat of one verified pair: the record's chat, then the target reply (``format_reply``;
    an empty explanation in the "Refine" format gives the bare code block)."""
    return [*record["chat"], {"role": "assistant", "content": format_reply(pair["explanation"], pair["refinement"])}]


def solution_record(solution: dict[str, Any], problem: Any) -> dict[str, Any]:
    return {"solution_id": solution["solution_id"], "source": solution["source"],
            "problem_id": solution["problem_id"], "models": solution["models"], "chat": initial_chat(problem),
            "code": solution["code"], "completion": solution["completion"],
            "n_occurrences": len(solution["occurrences"])}


def solution_chat(record: dict[str, Any]) -> Chat:
    """The SFT code-generation chat of a correct initial solution."""
    return [*record["chat"], {"role": "assistant", "content": format_reply("", record["code"])}]


def write_card(path: Path, *, config: Any, counts: dict[str, Any], table_md: str, licenses: dict[str, str],
               models: list[str], teachers: list[str]) -> Path:
    """``README.md`` with the Hub's YAML header: configs and splits, counts, licenses; then the fields,
    Table 1, the generation settings and the resolved config."""
    from selfdebug.io import atomic_write_text

    co = config.collect
    header = {
        "pretty_name": f"LeDex-style self-debugging data ({config.profile} profile)",
        "license": sorted(set(licenses.values())) if len(set(licenses.values())) > 1 else next(iter(licenses.values())),
        "language": ["en", "code"],
        "task_categories": ["text-generation"],
        "tags": ["code", "self-debugging", "code-refinement", "ledex"],
        "size_categories": ["n<1K" if counts["refinements"] < 1000 else "1K<n<10K"],
    }
    # an empty JSONL file is no dataset to `datasets` (it cannot infer a schema): such a config is left out
    parts = [(name, file, n) for name, file, n in (("refinements", REFINEMENTS, counts["refinements"]),
                                                   ("solutions", SOLUTIONS, counts["solutions"])) if n]
    header["configs"] = [{"config_name": name, **({"default": True} if i == 0 else {}),
                          "data_files": [{"split": "train", "path": file}]} for i, (name, file, _) in enumerate(parts)]
    header["dataset_info"] = [{"config_name": name, "splits": [{"name": "train", "num_examples": n}]}
                              for name, _, n in parts]
    fields = "\n".join(f"| `{k}` | {v} |" for k, v in REFINEMENT_FIELDS.items())
    sol_fields = "\n".join(f"| `{k}` | {v} |" for k, v in SOLUTION_FIELDS.items())
    body = f"""# {header['pretty_name']}

Training data for self-debugging in the manner of LeDex (Jiang et al., NeurIPS 2024, §2.1): solutions sampled
for training problems, the wrong ones explained and refined by a teacher, every refinement verified by running
the problem's tests in a sandbox. Made by `selfdebug.collect` (notebooks 01-03).

- **Sampling models**: {', '.join(models)}; {co.n_samples} samples per problem at temperature {co.temperature}
  (top-p {co.top_p}, at most {co.max_new_tokens} new tokens){f', {co.few_shot}-shot prompt' if co.few_shot else ''}{
  f', then {co.top_up} more for each problem already solved (top-up)' if co.top_up else ''};
  solutions deduplicated per problem by normalised code, pooled across models.
- **Teachers**: {', '.join(teachers)}; formats {', '.join(co.modes) or 'none (hindsight only)'}; {co.n_refinements} replies per wrong
  solution at temperature {co.refine_temperature} (at most {co.refine_max_new_tokens} new tokens){
  f', for the first {co.max_wrong_per_problem} wrong solutions of each problem' if co.max_wrong_per_problem else ''};
  hindsight {'on (records labelled `hindsight`)' if co.hindsight else 'off'}.
- **Counts**: {counts['refinements']} refinement records ({counts['wrong_solutions']} wrong solutions),
  {counts['verified_pairs']} verified (explanation, refinement) pairs, {counts['failed_pairs']} failed pairs,
  {counts['solutions']} correct initial solutions; {counts['teacher_errors']} records without replies (teacher
  endpoint errors), {counts['malformed_rows']} malformed problem rows skipped.
- **Source licenses**: {', '.join(f'{k}: {v}' for k, v in licenses.items())}. Generated text also falls under
  the terms of the models that wrote it.

```python
from datasets import load_dataset
refinements = load_dataset("json", data_files="{REFINEMENTS}", split="train")
solutions = load_dataset("json", data_files="{SOLUTIONS}", split="train")
```

A training chat: `record["chat"]` plus an assistant turn `format_reply(pair["explanation"], pair["refinement"])`
for each pair in `record["verified"]` (`selfdebug.collect.dataset.training_chat`); `selfdebug.prompts.parse_reply`
reads that turn back exactly.

## Table 1

{table_md}

## Fields of `refinements`

| field | meaning |
|---|---|
{fields}

## Fields of `solutions`

| field | meaning |
|---|---|
{sol_fields}

## Resolved config

```yaml
{yaml.safe_dump(config.to_dict(), sort_keys=False).rstrip()}
```
"""
    return atomic_write_text(path, "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n\n" + body)
