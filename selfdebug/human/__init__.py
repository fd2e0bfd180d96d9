"""Human evaluation of explanations (paper §4.4, Table 9, rubric of Table 15): a blind rating instrument.

- :mod:`.sample`: draws the items (problem, wrong code, feedback, one explanation) from saved evaluation
  records of one or more models and writes them to ``items.jsonl``, the file the LLM judge reads too.
- :mod:`.rubric`: the two 1-5 scales and their wording (one source for the notebook, the export, the judge).
- :mod:`.store`: each rater's append-only ratings file (the latest record of an item wins).
- :mod:`.widgets`: the ipywidgets rating UI of ``notebooks/09_human_eval.ipynb``.
- :mod:`.export`: a static HTML page and CSV sheet for rating outside Jupyter, and the CSV's importer.
- :mod:`.analysis`: per-model means with bootstrap intervals, inter-rater and rater-judge agreement, and
  the developers' row of Table 9.
- :mod:`.screenshot`: the rating notebook as a browser shows it (``figures/human_rating_notebook.png``).
"""
