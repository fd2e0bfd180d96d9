"""Training-data collection (LeDex §2.1, Table 1): sample -> explain + refine -> verify.

Stages (each a function ``run_<stage>(config, run_dir=None, backend=None, sandbox=None)``, a notebook and a
subcommand of ``python -m selfdebug.collect``), writing under ``runs/<profile>/collect/``:

1. ``sample.py`` (01_sample): solutions to the training problems (``problems.py``; a 3-shot prompt for base
   models, ``fewshot.py``), run in the sandbox, deduplicated by normalised code (``codes.py``).
2. ``refine.py`` (02_explain_refine): a teacher explains and refines each wrong solution (optionally with a
   hindsight hint).
3. ``filter.py`` (03_filter): refinements verified by execution; the dataset (``dataset.py``: records, the
   training chat, the card) and Table 1 with its figure (``table1.py``).

What they share (stage markers, the cached sandbox executor, models) is in ``common.py``; generation goes
through ``selfdebug.generate.runner``, the runner evaluation uses. Every stage is resumable: replies and
verdicts are logged as they come (``sample/generations.jsonl``, ``refine/generations.jsonl``,
``executions.jsonl``); a finished stage with an unchanged config and input does nothing.
"""
