"""``hub audit``: check the log, prove a leaf, publish and rotate its key, run its sequencer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from hub.bootstrap import Hub, bootstrap
from hub.db import unit_of_work


def _hub() -> Hub:
    from hub.cli.common import settings_from_env

    return bootstrap(settings_from_env())


@click.group()
def audit() -> None:
    """Check, prove and sign the audit log.

    Check and read the audit log; prove a record's inclusion; manage its signing key.
    """


@audit.command("verify")
@click.option(
    "--checkpoints",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint file kept outside the database; its keys are the only ones trusted.",
)
@click.option("--key", "keys", multiple=True, help="Trust only this verifier key (repeatable).")
def audit_verify(checkpoint_file: Path | None, keys: tuple[str, ...]) -> None:
    """Check the whole audit log; exit 1 on the first failure.

    Rebuild the tree from the leaves and check every signed checkpoint; exit 1 and name
    the first leaf or checkpoint that fails."""
    from hub.audit.note import NoteError, VerifierKey
    from hub.audit.verify import verify

    try:
        pinned = [VerifierKey.parse(k) for k in keys]
    except NoteError as exc:
        raise click.BadParameter(str(exc), param_hint="--key") from exc
    hub = _hub()
    with hub.session_factory() as session:
        report = verify(
            session,
            checkpoint_file=checkpoint_file,
            trusted_keys=pinned or None,
            progress=lambda n: click.echo(f"… {n} leaves checked", err=True),
        )
    waiting = f"; {report.waiting} newer records wait for the sequencer" if report.waiting else ""
    if report.ok:
        click.echo(
            f"audit log intact: {report.checked} leaves, {report.checkpoints} signed "
            f"checkpoints{waiting}"
        )
        return
    for problem in report.problems:
        click.echo(problem)
    click.echo(
        f"audit log NOT intact: {len(report.problems)} problems in {report.checked} leaves",
        err=True,
    )
    sys.exit(1)


@audit.command("show")
@click.option("--person", help="Only records about this person (pseudonym).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
def audit_show(person: str | None, limit: int) -> None:
    """Print the newest audit records as JSON lines, oldest first."""
    from hub.audit.service import list_records

    hub = _hub()
    with hub.session_factory() as session:
        entries = list_records(session, person_id=person, limit=limit)
    for entry in entries:
        click.echo(json.dumps(entry.as_dict(), ensure_ascii=False))
    if not entries:
        click.echo("no audit records" + (f" about {person}" if person else ""), err=True)


@audit.command("prove")
@click.argument("leaf", type=click.IntRange(min=0))
def audit_prove(leaf: int) -> None:
    """Print an inclusion proof of one leaf.

    Print, as JSON, an inclusion proof of leaf LEAF against the newest signed checkpoint.
    """
    from hub.audit.verify import prove

    hub = _hub()
    with hub.session_factory() as session:
        try:
            proof = prove(session, leaf_index=leaf)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(proof, indent=2, ensure_ascii=False))


@audit.command("keys")
def audit_keys() -> None:
    """Print every audit verifier key.

    Print every audit verifier key, oldest first; the last one signs new checkpoints.
    """
    from hub.audit.keys import published_keys

    hub = _hub()
    with hub.session_factory() as session:
        keys = published_keys(session)
    for key in keys:
        click.echo(key.text())
    if not keys:
        click.echo(
            "no audit key yet: the sequencer creates one with its first checkpoint", err=True
        )


@audit.command("rotate-key")
def audit_rotate_key() -> None:
    """Make a new audit signing key.

    Make a new signing key; the old one is retired but stays published.
    """
    from hub.audit.keys import create_key

    hub = _hub()
    with unit_of_work(hub.session_factory) as session:
        verifier, _ = create_key(session, name=hub.settings.audit_origin)
    click.echo(verifier.text())


@audit.command("sequence")
@click.option("--once", is_flag=True, help="Sequence what waits now, then stop.")
@click.option(
    "--batch-size",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Most records numbered under one checkpoint.",
)
def audit_sequence(once: bool, batch_size: int) -> None:
    """Run the audit log's sequencer.

    Run the sequencer: number committed records and sign checkpoints (one leader).
    """
    from hub import runtime
    from hub.cli.common import run_until_signal

    hub = _hub()
    sequencer = runtime.build_sequencer(hub)
    sequencer.batch_size = batch_size
    if not once:
        run_until_signal(sequencer.run)
        return
    total = 0
    while (batch := sequencer.step()).leaves:
        total += batch.leaves
    click.echo(f"sequenced {total} records; tree size {max(batch.tree_size, 0)}")
