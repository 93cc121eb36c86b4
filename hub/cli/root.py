"""The ``hub`` command group; each command group lives in its own module of this package."""

from __future__ import annotations

import click
from sqlalchemy.exc import OperationalError, ProgrammingError


class _Commands(click.Group):
    """Database trouble ends a command with one line that says what to do, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (OperationalError, ProgrammingError) as exc:
            raise click.ClickException(database_problem(exc)) from exc


def database_problem(exc: OperationalError | ProgrammingError) -> str:
    """One line for an operator: what the database said, and the fix where it is known."""
    said = str(exc.orig or exc).strip().splitlines()[0]
    if "no such table" in said or ("relation" in said and "does not exist" in said):
        return f"the database has no tables for this version ({said}): run `hub migrate`"
    return f"the database refused or did not answer: {said}"


EXIT_CODES = (
    "Exit codes: 0 done; 1 refused or failed, with one line saying why (a database or Kafka"
    " that does not answer, a port in use, bad input); 2 wrong usage of the command."
)


@click.group(cls=_Commands, epilog=EXIT_CODES)
def main() -> None:
    """Talent Hub: referrals and status between the Amt, UDE, the chambers and the Jobcenter."""
