"""One definition per setting: the config dataclass field feeds the CLI option, the pipeline key, the default
and the check (autolabel/core/settings.py, autolabel/config.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import typer
from typer.testing import CliRunner

from autolabel import config
from autolabel.app.cli import app
from autolabel.app.pipeline import DEFAULTS, load_pipeline_config
from autolabel.core.errors import ConfigError
from autolabel.core.settings import (
    build,
    cli_settings,
    section_defaults,
    section_fields,
    setting,
    settings_of,
)


@dataclass(frozen=True)
class _Toy:
    size: int = setting(3, "How big.")
    ratio: float | None = setting(None, "A ratio.", key="r")
    hidden: bool = setting(False, "Pipeline only.", cli=False)
    internal: int = 7

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"size must be >= 1, found {self.size}")


def test_a_setting_is_an_option_a_key_a_default_and_a_check():
    assert [s.key for s in settings_of(_Toy)] == ["size", "r", "hidden"]  # 'internal' is not a setting
    assert section_defaults(_Toy) == {"size": 3, "r": None, "hidden": False}

    toy = typer.Typer()
    seen = {}

    @toy.command()
    @cli_settings(_Toy)
    def run(name: str, *, settings: dict) -> None:
        seen.update(name=name, **settings[_Toy])

    runner = CliRunner()
    res = runner.invoke(toy, ["n", "--size", "5", "--r", "0.5"])
    assert res.exit_code == 0, res.output
    assert seen == {"name": "n", "size": 5, "ratio": 0.5}
    assert runner.invoke(toy, ["n"]).exit_code == 0 and seen["size"] == 3  # the field's default
    help_text = runner.invoke(toy, ["--help"]).output
    assert "How big." in help_text and "--hidden" not in help_text and "--internal" not in help_text
    assert runner.invoke(toy, ["n", "--size", "x"]).exit_code != 0

    ok = build(_Toy, section_fields(_Toy, {"size": 2, "r": 0.1}, "toy"))
    assert (ok.size, ok.ratio) == (2, 0.1)
    with pytest.raises(ConfigError, match=r"^toy.size must be an integer, found 'big'$"):
        build(_Toy, section_fields(_Toy, {"size": "big"}, "toy"))
    with pytest.raises(ConfigError, match=r"^toy.size must be >= 1, found 0$"):  # the dataclass' own check
        build(_Toy, section_fields(_Toy, {"size": 0}, "toy"))


@pytest.mark.parametrize("cls", [config.LabelConfig, config.SourceConfig])
def test_label_settings_agree_everywhere(cls):
    """`autolabel label --help`, the pipeline's label section and the dataclass hold the same settings."""
    help_text = CliRunner().invoke(app, ["label", "--help"], terminal_width=400).output
    for s in settings_of(cls):
        assert s.option[0].split("/")[0] in help_text, s.option
        assert DEFAULTS["label"][s.key] == s.default == getattr(cls(), s.name)
    bad = next(s for s in settings_of(cls) if s.type is float or s.type == float | None)
    with pytest.raises(ConfigError, match=rf"label\.{bad.key} must be a number"):
        load_pipeline_config(None, [f"label.{bad.key}=[1]"])


def test_old_pipeline_key_of_the_distillation_switch_still_reads():
    assert load_pipeline_config(None, ["train.hard_only=true"])["train"]["soft"] is False
    assert load_pipeline_config(None, [])["train"]["soft"] is True


@pytest.mark.parametrize("command, cls", [("train", config.TrainConfig), ("train-classifier", config.ClassifierConfig),
                                          ("prune", config.PruneConfig), ("export", config.ExportConfig)])
def test_every_cli_setting_is_an_option_of_its_command(command, cls):
    help_text = CliRunner().invoke(app, [command, "--help"], terminal_width=400).output
    for s in settings_of(cls):
        if s.cli:
            assert s.option[0].split("/")[0] in help_text and s.help.split(".")[0][:30] in help_text, (command, s.key)


@pytest.mark.parametrize("section, cls", [("train", config.TrainConfig), ("prune", config.PruneConfig),
                                          ("export", config.ExportConfig)])
def test_pipeline_sections_hold_the_dataclass_defaults(section, cls):
    """Where a pipeline default differs from the dataclass it says why in DEFAULTS (pipeline.py)."""
    pipeline_own = {"train": {"temperature"}, "export": {"imgsz", "int8"}}.get(section, set())
    for s in settings_of(cls):
        if s.pipeline and s.key not in pipeline_own:
            d = s.default
            assert DEFAULTS[section][s.key] == (list(d) if isinstance(d, tuple) else d), (section, s.key)


@pytest.mark.parametrize("args, match", [
    (["--student", "ssdlite", "--kd-teacher", "yolo11n.pt"], "--kd-teacher .* is for YOLO students"),
    (["--student", "ssdlite", "--recipe", "born-again"], "--recipe born-again is for YOLO students and classifiers"),
    (["--student", "mobilenet_v3_small"], "autolabel train-classifier"),
])
def test_train_command_builds_each_familys_settings_or_says_why_not(tmp_path, capsys, args, match):
    """`autolabel train` asks the student's family for its settings (students/*/student.py): one line on misuse."""
    import re

    from autolabel.app.cli import main

    assert main(["train", str(tmp_path), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(match, err[0]), err
