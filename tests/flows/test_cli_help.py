"""Help text speaks to users: what each command is for, and examples, never the modules' docstrings."""

import argparse

import pytest

from flows import cli
from flows.cli import build_parser, main


def _help(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """(argv, parser, help line) of every subcommand and nested action, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*prefix, name), sub, helps[name]
                yield from _commands(sub, (*prefix, name))


def test_top_level_help_names_every_command_with_its_purpose(capsys):
    out = _help(capsys, [])
    assert "flows/commands" not in out and "``" not in out and cli.__doc__.strip() not in out
    flat = " ".join(out.split())
    top = [(argv[0], purpose) for argv, _, purpose in _commands(build_parser()) if len(argv) == 1]
    assert sorted(name for name, _ in top) == sorted(cli.COMMAND_MODULES)
    for name, purpose in top:
        assert purpose and f"{name} {purpose}" in flat, name
    assert "examples:" in out and "omnicurate curate --input" in out and "omnicurate demo" in out


@pytest.mark.parametrize("argv", [argv for argv, _, _ in _commands(build_parser())], ids=" ".join)
def test_every_command_help_says_what_it_is_for_and_shows_an_example(capsys, argv):
    out = _help(capsys, list(argv))
    description, _, examples = out.partition("\nexamples:\n")
    assert examples, f"omnicurate {' '.join(argv)} --help has no examples"
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    command = f"omnicurate {' '.join(argv)}"
    assert any(line == command or line.startswith(f"{command} ") for line in lines), lines
    assert "``" not in out and "flows/commands" not in out
    intro = description.split("\n\n")[1]  # after the usage lines
    assert len(intro.split()) >= 6 and not intro.lstrip().startswith(("positional", "options")), intro
