"""gateway.settings: one Settings from the command line and the environment, and back again."""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path

import pytest

from gateway.server import WORKER_ENV, worker_command
from gateway.settings import _FLAGS, ENV_VARS, Settings, add_arguments

# Every field that comes from the command line or the environment, none at its default.
ALL_SET = Settings(
    routes=Path("/etc/gateway/routes.yaml"),
    host="127.0.0.3",
    port=18080,
    admin_host="0.0.0.0",
    admin_port=19901,
    workers=3,
    log_format="text",
    header_timeout=1.5,
    grace_period=0.25,
    admin_token="s3cret",
    redis_url="redis://:pw@redis:6379/1",
    idempotency_store="sqlite:////var/idem.db",
    watch_interval=0.1,
)


def test_command_line_options_are_the_first_fields() -> None:
    names = [f.name for f in fields(Settings)]
    assert list(_FLAGS) == names[: len(_FLAGS)]
    assert list(ENV_VARS) == names[len(_FLAGS) : len(_FLAGS) + len(ENV_VARS)]


def test_every_option_and_variable_is_set_in_the_example() -> None:
    default = Settings()
    for name in [*_FLAGS, *ENV_VARS]:
        assert getattr(ALL_SET, name) != getattr(default, name), name


def test_defaults_without_arguments_or_environment() -> None:
    assert Settings.parse([], {}) == Settings()


def test_argv_and_environ_parse_back_to_the_same_settings() -> None:
    assert Settings.parse(ALL_SET.argv(), ALL_SET.environ()) == ALL_SET
    assert Settings.parse(Settings().argv(), Settings().environ()) == Settings()


def test_a_worker_is_started_with_exactly_the_parents_settings() -> None:
    # The parent passes argv (every option, not only the ones it was given) and environ.
    command = worker_command(ALL_SET)
    assert command[1:4] == ["-m", "gateway", "serve"]
    assert Settings.parse(command[4:], ALL_SET.environ()) == ALL_SET
    assert WORKER_ENV not in ALL_SET.environ()  # the supervisor adds it


def test_empty_variables_mean_unset() -> None:
    env = dict.fromkeys(ENV_VARS.values(), "")
    assert Settings.parse([], env) == Settings()


@pytest.mark.parametrize("value", ["soon", "0", "-1"])
def test_a_bad_watch_interval_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_WATCH_INTERVAL"):
        Settings.parse([], {"GATEWAY_WATCH_INTERVAL": value})


@pytest.mark.parametrize(
    "argv",
    [
        ["--workers", "0"],
        ["--port", "70000"],
        ["--log-format", "xml"],
        ["--header-timeout", "0"],
        ["--grace-period", "-1"],
    ],
)
def test_bad_options_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        Settings.parse(argv, {})
    assert info.value.code == 2


def test_grace_period_zero_is_allowed() -> None:
    assert Settings.parse(["--grace-period", "0"], {}) == replace(Settings(), grace_period=0.0)


def test_secrets_stay_out_of_repr() -> None:
    text = repr(ALL_SET)
    assert "s3cret" not in text and "pw@" not in text and "idem.db" not in text


def test_help_shows_the_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "--header-timeout" in text and "(default 10.0)" in text
