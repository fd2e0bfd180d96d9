"""Explanation quality (paper §4.4, Table 9; notebook 07): LLM judges score the models' explanations of wrong
code on the human rubric's two scales, on the same sample a human rater gets, beside an automatic proxy.

- :mod:`.judge`: the judge's prompt and the reading of its reply.
- :mod:`.stage`: the sample, the judges' replies (resumable), the proxy; ``run_explanations``.
- :mod:`.analysis`: Table 9's rows, agreement between judges, what a judge can tell, the proxy.

Command line: ``python -m selfdebug.explanations --profile cpu [--override KEY=VALUE ...]``.
"""
