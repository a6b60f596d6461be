"""Config: precedence, validation and the resolved-config round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mixkit.commands.mixtrain import MixtrainConfig
from mixkit.commands.mixtraining import MixtrainingConfig
from mixkit.options import dump_yaml, load_config
from mixkit.errors import UserError


def test_precedence_defaults_then_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 7\nlr: 0.01\nmodel: resnet50\n")
    cfg = load_config(MixtrainConfig, path, {"lr": 0.5})
    assert cfg.epochs == 7            # from the file
    assert cfg.lr == 0.5              # the flag beats the file
    assert cfg.model == "resnet50"    # from the file
    assert cfg.batch_size == 64       # default (mixtrain's own: the measured digits setting)
    assert load_config(MixtrainingConfig, None, {}).batch_size == 128   # the shared default


def test_saved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(MixtrainConfig, None, {"epochs": 3, "data_fraction": 0.5, "overwrite": True})
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(cfg))
    assert "overwrite" not in yaml.safe_load(path.read_text())   # an action, not a recipe
    again = load_config(MixtrainConfig, path, {})
    assert again.epochs == 3 and again.data_fraction == 0.5 and not again.overwrite


def test_int_is_accepted_for_float_but_not_the_reverse() -> None:
    assert load_config(MixtrainConfig, None, {"lr": 1}).lr == 1.0
    with pytest.raises(UserError, match="`epochs`.*must be int"):
        load_config(MixtrainConfig, None, {"epochs": 2.5})


@pytest.mark.parametrize("text,match", [
    ("epohcs: 3\n", "unknown config key `epohcs`.*Did you mean epochs"),
    ("epochs: [1\n", "not valid YAML at line"),
    ("- 1\n- 2\n", "must hold a mapping"),
    ("batch_size: many\n", "must be int"),
    ("data_fraction: 0\n", r"--data-fraction is 0.*> 0.0"),
    ("amp_dtype: float8\n", "must be one of bfloat16, float16"),
    ("hflip: maybe\n", "must be bool"),
])
def test_bad_files_name_the_file_and_the_key(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=match) as err:
        load_config(MixtrainConfig, path, {})
    assert str(path) in str(err.value)


def test_min_lr_above_lr_is_rejected() -> None:
    with pytest.raises(UserError, match="--min-lr"):
        load_config(MixtrainConfig, None, {"lr": 1e-4, "min_lr": 1e-3})


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_config_loads_for_its_command(path: Path) -> None:
    from mixkit.commands.mixtrain import MixtrainConfig
    from mixkit.commands.mixtraining import MixtrainingConfig
    from mixkit.options import load_config

    cls = MixtrainConfig if path.name.startswith("mixtrain-") else MixtrainingConfig
    assert path.name.startswith(("mixtrain-", "mixtraining-"))
    cfg = load_config(cls, path, {})
    assert cfg.data and cfg.model


def test_method_settings_are_typed_and_match_the_command_lines_defaults() -> None:
    """The arms take typed settings, validated where they are defined; the command line's
    options build them, and a default set in one place is the default in the other."""
    import dataclasses

    import pytest

    from mixkit.commands.mixtrain import MixtrainConfig
    from mixkit.methods.mixtrain.settings import MixTrainSettings
    from mixkit.methods.seta import SeTaSettings

    cfg = {f.name: f.default for f in dataclasses.fields(MixtrainConfig)}
    for f in dataclasses.fields(MixTrainSettings):
        assert cfg[f.name] == f.default, f.name
    for f in dataclasses.fields(SeTaSettings):
        assert cfg[f"seta_{f.name}"] == f.default, f.name
    assert MixTrainSettings.from_options({"op": "cutmix", "epochs": 9}).op == "cutmix"
    with pytest.raises(ValueError, match="op 'blend' must be one of cutmix, mixup"):
        MixTrainSettings(op="blend")
    with pytest.raises(ValueError, match="cutmix_area"):
        MixTrainSettings(cutmix_area=1.0)
