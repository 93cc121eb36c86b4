"""``hub`` for an operator: whole first sentences in every command list, at 80 columns.

click cuts a command's help in a list at the column limit (ending it with "...") or at the
first word ending in a full stop ("Art."); either leaves the operator guessing.
"""

from __future__ import annotations

import click
from click.testing import CliRunner

from hub.cli import main


def groups(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += groups(command, (*path, name))
    return found


def listed(path: tuple[str, ...]) -> list[str]:
    """The lines of the "Commands:" section of ``hub <path> --help`` at 80 columns."""
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    section = result.output.split("Commands:\n", 1)[1]
    return [line for line in section.splitlines() if line.startswith("  ")]


def test_every_command_list_shows_whole_first_sentences() -> None:
    cut = []
    for path in groups(main):
        for line in listed(path):
            text = line.strip()
            if text.endswith("...") or text.endswith(" Art.") or text.endswith("e.g."):
                cut.append(f"hub {' '.join(path)}: {text}")
    assert cut == []


def test_the_check_sees_a_cut_sentence() -> None:
    @click.group()
    def probe() -> None:
        """Probe."""

    @probe.command()
    def long() -> None:
        """A first sentence far too long for the list of commands at eighty columns, surely."""

    result = CliRunner().invoke(probe, ["--help"], terminal_width=80)
    assert result.output.rstrip().endswith("...")
