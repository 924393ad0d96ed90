"""The ``flowzero`` command line: global options, plugin commands, and one place where errors become one line."""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from typing import Any, NoReturn

import click

from flowzero import __version__, plugins
from flowzero.cli.context import AppContext
from flowzero.cli.output import printable
from flowzero.errors import EXIT_CODES, FlowzeroError
from flowzero.redact import install_log_redaction, redact


class FlowzeroGroup(click.Group):
    """A group that turns every error into one line on stderr and an exit status, never a traceback."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            _usage_error(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            _usage_error(exc)
        except FlowzeroError as exc:
            _fail(ctx, exc.message, exc.hint, exc.exit_code, exc)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # the last line of defence: still one line
            _fail(ctx, f"unexpected {type(exc).__name__}: {redact(str(exc))}",
                  "rerun with --debug for details and report it", 1, exc)


def _usage_error(exc: click.UsageError) -> NoReturn:
    """Click's usage errors, one line like every other error (exit status 2)."""
    where = exc.ctx.command_path if exc.ctx else "flowzero"
    click.echo(f"Error: {exc.format_message()} (hint: run '{where} --help')", err=True)
    sys.exit(exc.exit_code)


def _fail(ctx: click.Context, message: str, hint: str | None, code: int, exc: BaseException) -> None:
    app = ctx.find_object(AppContext)
    if app is not None and app.debug:
        click.echo(redact("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))), err=True)
    line = f"Error: {message}"
    if hint:
        line += f" (hint: {hint})"

    click.echo(" ".join(part.strip() for part in printable(line).splitlines() if part.strip()), err=True)
    ctx.exit(code)


# The group's help; its last paragraph (kept as one line by \b) lists the exit statuses of flowzero.errors.
HELP = ("flowzero: Planet imagery for your AOIs, ordered once, delivered verified to S3 or a folder.\n\n\b\n"
        "Exit status: " + ", ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()) + ".")


@click.group(cls=FlowzeroGroup, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowzero")
@click.option("--config", "config_path", metavar="PATH", help="Config file (default: $FLOWZERO_CONFIG, ./config.yaml).")
@click.option("--api-key", envvar=None, metavar="KEY", help="Planet API key (default: $PL_API_KEY).")
@click.option("--database-path", metavar="PATH", help="SQLite order database (overrides database_path).")
@click.option("--debug", is_flag=True, help="Verbose logs and tracebacks (secrets stay redacted).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the final result.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, api_key: str | None, database_path: str | None,
        debug: bool, quiet: bool) -> None:
    """The group itself (its help is HELP): the application context and logging every command shares."""
    ctx.obj = AppContext(config_path=config_path, api_key=api_key, database_path=database_path,
                         debug=debug, quiet=quiet)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if debug:
        install_log_redaction()


# Core command modules (flowzero/cli/<name>.py), each with ``register(cli)``. They import at the top only what
# `flowzero --help` loads anyway (click, the CLI helpers, errors, plugins) so that it stays fast; the domain
# modules a command runs, and heavy libraries, are imported inside the commands.
CORE_COMMAND_MODULES = ("config_cmd", "plugins_cmd", "aoi_cmd", "db", "ordering", "delivery", "sandbox",
                        "generate_aoi", "demo", "destinations", "stac_cmd", "coverage")


def _add_core_commands() -> None:
    for name in CORE_COMMAND_MODULES:
        importlib.import_module(f"flowzero.cli.{name}").register(cli)


_add_core_commands()
plugins.add_commands(cli)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="flowzero")


if __name__ == "__main__":  # pragma: no cover
    main()
