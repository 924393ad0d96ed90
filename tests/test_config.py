"""Layered configuration: defaults < file < environment < flags, clear errors, masked secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowzero.config import load_config, mask_url_password
from flowzero.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(env={})
    assert cfg.source == "built-in defaults"
    assert cfg.planet.orders_url == "https://api.planet.com/compute/ops/orders/v2"
    assert cfg.downloads.min_coverage_pct == 98.0
    assert cfg.api_key == ""


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg_file = write(tmp_path / "c.yaml", "planet:\n  timeout: 10\n  max_retries: 2\ns3:\n  bucket_name: from-file\n")
    env = {"FLOWZERO_PLANET_TIMEOUT": "20", "PL_API_KEY": "env-key"}
    cfg = load_config(str(cfg_file), overrides={"planet.timeout": 30.0}, env=env)
    assert cfg.planet.timeout == 30.0  # flag beats env beats file
    assert cfg.planet.max_retries == 2  # file beats default
    assert cfg.s3.bucket_name == "from-file"
    assert cfg.api_key == "env-key"
    assert load_config(str(cfg_file), env=env).planet.timeout == 20.0
    assert load_config(str(cfg_file), overrides={"api_key": "flag-key"}, env=env).api_key == "flag-key"


def test_config_file_found_through_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "config.yaml", "downloads:\n  max_workers: 3\n")
    other = write(tmp_path / "other.yaml", "downloads:\n  max_workers: 5\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).downloads.max_workers == 3
    assert load_config(env={"FLOWZERO_CONFIG": str(other)}).downloads.max_workers == 5


def test_aws_endpoint_variables_are_honoured() -> None:
    assert load_config(env={"AWS_ENDPOINT_URL": "http://a"}).s3.endpoint_url == "http://a"
    both = {"AWS_ENDPOINT_URL": "http://a", "AWS_ENDPOINT_URL_S3": "http://s3"}
    assert load_config(env=both).s3.endpoint_url == "http://s3"
    assert load_config(env={"AWS_DEFAULT_REGION": "eu-west-1"}).s3.region == "eu-west-1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("planet:\n  api_url: [unclosed\n", "not valid YAML at line"),
        ("planet:\n  colour: blue\n", "unknown key 'planet.colour'"),
        ("bogus: 1\n", "unknown key 'bogus'"),
        ("downloads:\n  max_workers: many\n", "downloads.max_workers': expected a int"),
        ("- a\n- b\n", "expected a mapping"),
        ("planet: 3\n", "'planet' must be a mapping"),
    ],
)
def test_bad_config_files_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_config(str(path), env={})
    assert expected in str(err.value)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "nope.yaml"), env={})


def test_bad_environment_value_names_variable() -> None:
    with pytest.raises(ConfigError, match="FLOWZERO_DOWNLOADS_MAX_WORKERS"):
        load_config(env={"FLOWZERO_DOWNLOADS_MAX_WORKERS": "lots"})


def test_to_dict_masks_secrets() -> None:
    cfg = load_config(overrides={"api_key": "PLAK-super-secret"},
                      env={"FLOWZERO_DATABASE_URL": "postgresql://fz:hunter2@db:5432/orders"})
    text = json.dumps(cfg.to_dict())
    assert "PLAK-super-secret" not in text and "hunter2" not in text
    assert cfg.to_dict()["api_key"] == "****"
    assert mask_url_password("postgresql://u:p@h:5/d") == "postgresql://u:****@h:5/d"


@pytest.mark.parametrize(("given", "shown"), [
    ("postgresql://u:p%40ss@[::1]:5432/d", "postgresql://u:****@[::1]:5432/d"),
    ("postgresql://u@h/d?sslmode=require&password=s3cr3t", "postgresql://u@h/d?sslmode=require&password=****"),
    ("host=h port=5432 password=s3cr3t dbname=d", "host=h port=5432 password=**** dbname=d"),
    ("host=h password = 'it\\'s a \\\\ x' dbname=d", "host=h password = **** dbname=d"),
    ("PASSWORD=s3cr3t host=h", "PASSWORD=**** host=h"),
    ("sqlite:///tmp/orders.db", "sqlite:///tmp/orders.db"),
    ("host=h user=u dbname=d", "host=h user=u dbname=d"),
])
def test_database_passwords_are_masked_in_every_libpq_form(given: str, shown: str) -> None:
    assert mask_url_password(given) == shown


def test_config_show_cli_masks_key_and_reports_errors(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PL_API_KEY": "PLAK-visible-nowhere",
           "AWS_SECRET_ACCESS_KEY": "aws-secret-value"}
    run = subprocess.run([sys.executable, "-m", "flowzero", "config", "show", "--json"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)
    assert shown["api_key"] == "****" and shown["aws_secret_access_key"] == "****"
    assert "PLAK-visible-nowhere" not in run.stdout + run.stderr
    assert "aws-secret-value" not in run.stdout + run.stderr

    write(tmp_path / "config.yaml", "s3:\n  bucket: typo\n")
    bad = subprocess.run([sys.executable, "-m", "flowzero", "config", "show"],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0
    assert "unknown key 's3.bucket'" in bad.stderr and "Traceback" not in bad.stderr
