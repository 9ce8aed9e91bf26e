"""Every setting is declared once, in FaceQANConfig: a field added to (a copy of) the config reaches the
command line, the App form and its checks, the stored run config and the rerun fingerprint; and the real
settings keep their flags, form inputs and the fingerprints runs were stored with."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import pytest

from faceqan.cli import add_config_arguments, build_parser, config_from_args
from faceqan.config import SCORE_VERSION, FaceQANConfig, setting, settings
from fiftyone_faceqan.runs import FaceQANBrain, FaceQANBrainConfig
from test_fiftyone_operators import URI, _form

Extended = dataclasses.make_dataclass("Extended", [
    ("blur", float, setting(0.5, "Blur (sigma)", "Gaussian blur before scoring", flag="-b")),
    ("log_every", int, setting(100, "Log every", "faces between log lines", decides_score=False)),
], bases=(FaceQANConfig,), frozen=True)


class ExtendedBrainConfig(FaceQANBrainConfig):
    settings_class = Extended


class ExtendedBrain(FaceQANBrain):
    """The run class FiftyOne finds by the config's class name."""


def _run_config(config: FaceQANConfig, cls=FaceQANBrainConfig):
    return cls(quality_field="q", model_sha256="abc", alignment="auto", **dataclasses.asdict(config))


def _plugin_module(fo_database):
    """The operators module as FiftyOne loaded it from the plugin folder."""
    import fiftyone.operators as foo

    return sys.modules[type(foo.get_operator(URI)).__module__]


def test_a_new_setting_reaches_the_command_line():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Extended)
    assert config_from_args(parser.parse_args(["-b", "2", "-k", "4", "--log-every", "7"]), Extended) == \
        Extended(blur=2.0, copies=4, log_every=7)
    assert config_from_args(parser.parse_args([]), Extended) == Extended()
    assert "Gaussian blur before scoring (default 0.5)" in " ".join(parser.format_help().split())


def test_a_new_setting_reaches_the_form_and_its_checks(fo_database):
    import fiftyone.operators.types as types

    plugin = _plugin_module(fo_database)
    inputs = types.Object()
    plugin.settings_inputs(inputs, Extended)
    blur = inputs.properties["blur"]
    assert isinstance(blur.type, types.Number) and blur.default == 0.5
    assert (blur.view.label, blur.view.description) == ("Blur (sigma)", "Gaussian blur before scoring")
    assert plugin.face_settings({"blur": 2.0, "log_every": 7.0, "copies": 4.0}, Extended) == \
        {"blur": 2.0, "log_every": 7, "copies": 4}  # the App sends numbers as floats
    with pytest.raises(ValueError, match="copies must be at least 2"):
        plugin.face_settings({"blur": 2.0, "copies": 1}, Extended)


def test_a_new_setting_is_stored_with_the_run_and_decides_the_fingerprint(fo_dataset):
    ExtendedBrain(_run_config(Extended(blur=2.0), ExtendedBrainConfig)).register_run(fo_dataset, "q")
    stored = fo_dataset.get_brain_info("q").config
    assert type(stored) is ExtendedBrainConfig and (stored.blur, stored.log_every) == (2.0, 100)
    assert ExtendedBrainConfig(quality_field="old").blur == 0.5  # a run stored before the setting existed

    def fingerprint(**changes):
        return _run_config(Extended(**changes), ExtendedBrainConfig).fingerprint

    assert fingerprint(blur=2.0) == stored.fingerprint != fingerprint(blur=1.0)
    assert fingerprint(blur=2.0) == fingerprint(blur=2.0, log_every=1, device="cpu", batch_size=3)
    assert fingerprint() != _run_config(FaceQANConfig()).fingerprint  # the real config knows no blur
    assert Extended(blur=2.0).score_settings() == {**FaceQANConfig().score_settings(), "blur": 2.0}


def test_the_real_settings_keep_their_flags_fingerprints_and_form(fo_dataset):
    args = build_parser().parse_args(["score", "x", "-k", "3", "-l", "2", "-p", "3", "--eps", "0.002",
                                      "--variant", "paper", "--precision", "bf16", "--device", "cpu",
                                      "--batch-size", "4", "--seed", "9"])
    assert config_from_args(args) == FaceQANConfig(copies=3, iterations=2, power=3, eps=0.002, variant="paper",
                                                   precision="bf16", device="cpu", batch_size=4, seed=9)
    assert FaceQANConfig().score_settings() == {"score_version": SCORE_VERSION, "eps": 0.001, "iterations": 5,
                                                "copies": 10, "power": 5, "variant": "official",
                                                "precision": "fp32", "seed": 0}
    # the fingerprints of runs stored before the settings were declared here: their scores are still skipped
    assert _run_config(FaceQANConfig()).fingerprint == "739b1d1c1f2734f3"
    assert FaceQANBrainConfig(model_sha256="abc", detections_field="faces", copies=3,
                              variant="paper").fingerprint == "6c7f317d9d7009ac"

    form, validation = _form(URI, fo_dataset, {})
    for s in settings():
        shown = form.type.properties[s.name]
        assert (shown.view.label, shown.view.description, shown.default) == (s.label, s.help, s.default)
    assert not validation.invalid
