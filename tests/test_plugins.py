"""The plugin framework as a third-party package author meets it: entry points, failures, commands, listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def install_fake_plugin(site: Path, name: str, module_source: str) -> None:
    """Make an importable distribution with a `flowzero` entry point, as `pip install` would leave it."""
    (site / f"{name}.py").write_text(textwrap.dedent(module_source), encoding="utf-8")
    dist = site / f"{name}-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(f"[flowzero]\n{name} = {name}\n", encoding="utf-8")


def run_cli(site: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "flowzero", *args], capture_output=True, text=True, env=env)


GOOD_PLUGIN = '''
    import click
    from flowzero import hookimpl

    class EchoDownloader:
        name = "echo"
        description = "test downloader"

    @hookimpl
    def register_downloaders(register):
        register(EchoDownloader)

    @hookimpl
    def register_commands(cli):
        @cli.command("hello")
        def hello():
            """Say hello from a plugin."""
            click.echo("hello from plugin")
'''


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    return path


def test_third_party_plugin_adds_command_and_downloader(site: Path) -> None:
    install_fake_plugin(site, "fz_good", GOOD_PLUGIN)
    result = run_cli(site, "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from plugin"
    listing = run_cli(site, "plugins", "list", "--json")
    plugins = {p["name"]: p for p in json.loads(listing.stdout)}
    assert plugins["fz_good"]["package"] == "fz_good"
    assert plugins["fz_good"]["version"] == "1.2.3"
    assert "downloader:echo" in plugins["fz_good"]["registers"]
    assert "commands:hello" in plugins["fz_good"]["registers"]


def test_builtin_plugins_are_listed_like_third_party_ones(site: Path) -> None:
    listing = run_cli(site, "plugins", "list", "--json")
    assert listing.returncode == 0, listing.stderr
    plugins = {p["name"]: p for p in json.loads(listing.stdout)}
    assert plugins["sqlite"]["package"] == "flowzero"
    assert "storage_backend:sqlite" in plugins["sqlite"]["registers"]
    assert "downloader:threads" in plugins["threads"]["registers"]
    assert "provider:psscope" in plugins["psscope"]["registers"]
    assert "provider:basemap" in plugins["basemap"]["registers"]


def test_plugin_failing_to_import_warns_once_and_cli_keeps_working(site: Path) -> None:
    install_fake_plugin(site, "fz_broken", "import this_module_does_not_exist\n")
    install_fake_plugin(site, "fz_good", GOOD_PLUGIN)
    result = run_cli(site, "hello")
    assert result.returncode == 0
    assert result.stdout.strip() == "hello from plugin"
    warnings = [line for line in result.stderr.splitlines() if "fz_broken" in line]
    assert len(warnings) == 1
    assert "Traceback" not in result.stderr
    listing = run_cli(site, "plugins", "list", "--json")
    assert listing.returncode == 0
    assert "fz_broken" not in {p["name"] for p in json.loads(listing.stdout)}


def test_plugin_failing_in_a_hook_only_loses_its_own_contribution(site: Path) -> None:
    install_fake_plugin(site, "fz_raises", '''
        from flowzero import hookimpl

        @hookimpl
        def register_downloaders(register):
            raise RuntimeError("boom")

        @hookimpl
        def register_commands(cli):
            raise RuntimeError("boom too")
    ''')
    result = run_cli(site, "plugins", "list", "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "fz_raises" in result.stderr and "register_commands" in result.stderr
    registered = {p["name"]: p for p in json.loads(result.stdout)}
    assert "downloader:threads" in registered["threads"]["registers"]


BUILT_INS = ["basemap", "fast", "psscope", "sqlite", "threads"]


def test_load_plugins_env_var_limits_third_party_loading(site: Path) -> None:
    """FLOWZERO_LOAD_PLUGINS picks among installed packages; the built-ins (DEFAULT_PLUGINS) are always there."""
    install_fake_plugin(site, "fz_good", GOOD_PLUGIN)
    install_fake_plugin(site, "fz_other", GOOD_PLUGIN.replace('"echo"', '"echo2"').replace('"hello"', '"hi"'))
    none = run_cli(site, "plugins", "list", "--json", extra_env={"FLOWZERO_LOAD_PLUGINS": ""})
    assert [p["name"] for p in json.loads(none.stdout)] == BUILT_INS
    one = run_cli(site, "plugins", "list", "--json", extra_env={"FLOWZERO_LOAD_PLUGINS": "fz_other"})
    assert [p["name"] for p in json.loads(one.stdout)] == sorted([*BUILT_INS, "fz_other"])


def test_a_misspelled_hook_is_reported_and_the_plugin_left_out(site: Path) -> None:
    install_fake_plugin(site, "fz_typo", '''
        from flowzero import hookimpl

        @hookimpl
        def register_downloder(register):
            pass
    ''')
    result = run_cli(site, "plugins", "list", "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    [warning] = [line for line in result.stderr.splitlines() if "fz_typo" in line]
    assert "register_downloder" in warning
    assert "fz_typo" not in {p["name"] for p in json.loads(result.stdout)}


def test_a_name_registered_twice_keeps_the_first_and_says_so(site: Path) -> None:
    install_fake_plugin(site, "fz_clash", '''
        from flowzero import hookimpl

        class Impostor:
            name = "threads"
            description = "not the built-in"

        @hookimpl
        def register_downloaders(register):
            register(Impostor)
    ''')
    result = run_cli(site, "plugins", "list", "--json")
    assert "downloader 'threads' is registered by 'threads' and by 'fz_clash'" in result.stderr
    registered = {p["name"]: p for p in json.loads(result.stdout)}
    assert "downloader:threads" in registered["threads"]["registers"]
    assert registered["fz_clash"]["registers"] == [] and registered["fz_clash"]["hooks"] == ["register_downloaders"]


def test_register_commands_runs_once(site: Path) -> None:
    install_fake_plugin(site, "fz_counter", '''
        import os
        from flowzero import hookimpl

        @hookimpl
        def register_commands(cli):
            with open(os.environ["COUNT_FILE"], "a") as handle:
                handle.write("x")
    ''')
    count = site / "count"
    result = run_cli(site, "plugins", "list", "--json", extra_env={"COUNT_FILE": str(count)})
    assert result.returncode == 0
    assert count.read_text() == "x"


def test_unknown_downloader_is_a_clear_error() -> None:
    from flowzero import plugins
    from flowzero.errors import PluginError

    with pytest.raises(PluginError, match=r"no downloader named 'nope'.*available: .*threads"):
        plugins.get("downloaders", "nope")


def test_help_does_not_import_heavy_libraries() -> None:
    code = textwrap.dedent('''
        import sys
        from flowzero.cli import cli
        try:
            cli.main(["--help"], standalone_mode=False)
        except SystemExit:
            pass
        heavy = ["boto3", "botocore", "shapely", "pyproj", "flowzero._fast", "httpx", "apsw", "yaml", "rich.table"]
        print("HEAVY:" + ",".join(m for m in heavy if m in sys.modules))
    ''')
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY:"


SECOND_SCENE_PROVIDER = '''
    from flowzero import hookimpl
    from flowzero.providers.psscope import PSScopeProvider

    class OtherScenes(PSScopeProvider):
        name = "otherscenes"
        description = "a second scene provider"

    @hookimpl
    def register_providers(register):
        register(OtherScenes)
'''


def test_commands_pick_providers_by_kind_and_provider_chooses_among_several(site: Path) -> None:
    """No command names a provider: with one of a kind it is used; with two, --provider chooses."""
    from flowzero import plugins
    from flowzero.ordering.providers import MOSAICS, SCENES

    assert plugins.provider_for(SCENES).name == "psscope" and plugins.provider_for(MOSAICS).name == "basemap"
    install_fake_plugin(site, "fz_scenes", SECOND_SCENE_PROVIDER)
    aoi = Path(__file__).parent / "data" / "aoi" / "geojson" / "DrySpy_AOI_SalinasRiver.geojson"
    args = ("search-scenes", "--geojson", str(aoi), "--start-date", "2024-01-01", "--end-date", "2024-01-31")
    env = {"PL_API_KEY": "k", "FLOWZERO_PLANET_API_URL": "http://127.0.0.1:9/data/v1",
           "FLOWZERO_PLANET_MAX_RETRIES": "0"}
    both = run_cli(site, *args, extra_env=env)
    assert both.returncode == 2 and "2 providers of scenes are installed (otherscenes, psscope)" in both.stderr
    assert "--provider NAME" in both.stderr
    wrong = run_cli(site, *args, "--provider", "basemap", extra_env=env)
    assert wrong.returncode == 2 and "provider 'basemap' does not provide scenes" in wrong.stderr
    unknown = run_cli(site, *args, "--provider", "nope", extra_env=env)
    assert unknown.returncode == 2 and "providers of scenes: otherscenes, psscope" in unknown.stderr
    chosen = run_cli(site, *args, "--provider", "otherscenes", extra_env=env)
    assert chosen.returncode == 1 and "could not reach Planet" in chosen.stderr  # chosen, then it searched
