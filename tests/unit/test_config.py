from pathlib import Path

import pytest

from selfdebug.config import CONFIG_DIR, ConfigError, load_config


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_profile_loads(path):
    config = load_config(path)
    assert config.profile == path.stem
    assert all(k <= config.evaluate.n_samples for k in config.evaluate.ks)


def test_paper_profiles_use_the_papers_protocol():
    for name in ("paper-starcoder-15b", "paper-codellama-7b", "paper-codellama-13b"):
        ev = load_config(name).evaluate
        assert (ev.n_samples, ev.temperature, ev.rounds) == (100, 0.8, 3)
        # MBPP+ in full (the paper's number) and without the tasks drawn from MBPP's training ids
        assert set(ev.benchmarks) == {"mbpp", "humaneval", "mbpp_plus", "humaneval_plus", "mbpp_plus_heldout"}


def test_overrides_are_typed(tmp_path):
    config = load_config("smoke", ["evaluate.limit=5", "evaluate.ks=[1]", "model.backend=hf"])
    assert config.evaluate.limit == 5 and config.evaluate.ks == [1]


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "base.yaml").write_text((CONFIG_DIR / "base.yaml").read_text())
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_unknown_key_names_file_and_key(tmp_path):
    path = write(tmp_path, "extends: base.yaml\nevaluate:\n  n_sample: 3\n")
    with pytest.raises(ConfigError, match=r"p\.yaml\.evaluate.*n_sample"):
        load_config(path)


def test_wrong_type_is_an_error(tmp_path):
    path = write(tmp_path, "extends: base.yaml\nevaluate:\n  n_samples: ten\n")
    with pytest.raises(ConfigError, match="n_samples"):
        load_config(path)


def test_k_above_n_is_rejected_at_load_time(tmp_path):
    path = write(tmp_path, "extends: base.yaml\nevaluate:\n  n_samples: 5\n  ks: [1, 10]\n")
    with pytest.raises(ConfigError, match="ks"):
        load_config(path)


def test_extends_cycle_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_resolved_config_round_trips(tmp_path):
    config = load_config("smoke")
    saved = config.save(tmp_path / "config.yaml")
    assert load_config(saved).to_dict() == config.to_dict()


def test_sandbox_error_share_is_a_validated_key():
    assert load_config("base").evaluate.max_sandbox_error_share == 0.02  # set in base.yaml, every profile inherits
    assert load_config("smoke", ["evaluate.max_sandbox_error_share=0.1"]).evaluate.max_sandbox_error_share == 0.1
    with pytest.raises(ConfigError, match=r"evaluate\.max_sandbox_error_share must lie in \[0, 1\]"):
        load_config("smoke", ["evaluate.max_sandbox_error_share=1.5"])


def test_report_budgets_name_other_profiles_and_replace_the_parents():
    # cpu shows cpu-quick's committed budget; cpu-quick, which extends cpu, shows no other (an emptied mapping
    # replaces the parent's, it does not merge with it)
    assert load_config("cpu").report.other_budgets == {"cpu-quick": "figures/results/cpu-quick"}
    assert load_config("cpu-quick").report.other_budgets == {}
    with pytest.raises(ConfigError, match="report.other_budgets.no-such-profile: not another profile"):
        load_config("cpu", ['report.other_budgets={"no-such-profile": "figures"}'])
    with pytest.raises(ConfigError, match="report.other_budgets.cpu-quick"):
        load_config("cpu", ['report.other_budgets={"cpu-quick": 3}'])  # a folder, not a number
    with pytest.raises(ConfigError, match="report.models.LeDex SFT"):
        load_config("smoke", ['report.models={"LeDex SFT": [1]}'])


def test_profile_files_follow_extends():
    from selfdebug.config import profile_files

    assert [p.name for p in profile_files("cpu-quick-sft")] == ["cpu-quick-sft.yaml", "cpu-quick.yaml", "cpu.yaml",
                                                               "base.yaml"]
    with pytest.raises(ConfigError, match="profile file not found"):
        profile_files("no-such-profile")


def test_a_profiles_sandbox_section_is_the_sandbox_every_stage_opens():
    """Evaluation, collection and the gold check build their sandbox from the profile's limits, whatever the
    library's defaults are (the base profile gives a run 60 s, the library 30)."""
    from selfdebug.sandbox.types import SandboxConfig

    settings = load_config("base", ["sandbox.run_timeout_s=45.5", "sandbox.memory_mb=700", "sandbox.workers=3"]).sandbox
    cfg = SandboxConfig.from_settings(settings)
    assert (cfg.run_timeout_s, cfg.memory_mb, cfg.workers) == (45.5, 700, 3)
    assert cfg.max_output_bytes == SandboxConfig().max_output_bytes  # what the profile does not set stays default
    assert SandboxConfig.from_settings(settings, workers=1).workers == 1
