"""`llem gpus`: what llem changed on this host's GPUs and has not put back (the host-wide
ledger, `orchestrator/machine/gpu_ledger.py`), and putting it back, for an administrator."""

from __future__ import annotations

import json

import typer
from rich.console import Console

from llenergymeasure.orchestrator.display import shown
from llenergymeasure.orchestrator.machine.gpu_ledger import GpuLedger, LedgerEntry
from llenergymeasure.orchestrator.machine.gpu_settings import (
    GpuSettingError,
    host_control,
    restore_host,
)

gpus_app = typer.Typer(
    help="This host's GPUs as llem changed them: what is still changed, and putting it back.",
    no_args_is_help=True,
)


@gpus_app.command("show")
def show(
    as_json: bool = typer.Option(False, "--json", help="The ledger's entries as JSON."),
) -> None:
    """Each change llem made to a GPU of this host and has not put back (its power limit as it
    was, the limit or clock lock llem set, which run of which study, its pid), from the
    host-wide ledger beside the host locks. Reads only: nothing is changed."""
    ledger = GpuLedger()
    entries = ledger.entries()
    if as_json:
        data = {
            "ledger": str(ledger.folder),
            "entries": [entry.model_dump(mode="json") for entry in entries],
        }
        typer.echo(json.dumps(data, indent=2))
        return
    console = Console(highlight=False)
    if not entries:
        console.print(f"no GPU setting of llem's is outstanding on this host ({ledger.folder})")
        return
    console.print(f"outstanding GPU settings ({ledger.folder}):")
    for entry in entries:
        console.print(shown(f"  {entry.describe()}"))
    console.print("`llem gpus restore` puts them back (a GPU another llem runs on is left to it)")


GPU_OPTION = typer.Option(
    None, "--gpu", help="Only this GPU (its UUID, as `llem gpus show` names it); repeatable."
)


@gpus_app.command("restore")
def restore(
    uuid: list[str] | None = GPU_OPTION,
) -> None:
    """Put back every change llem left on this host's GPUs (an llem killed with -9, or a
    put-back that failed), each under its GPU's host lock: a GPU whose lock a running llem holds
    is left to it. Setting a GPU needs root, as it did to change it. Exit 1 when a GPU was
    left as it is."""
    ledger = GpuLedger()
    console = Console(highlight=False)
    if not ledger.entries():
        console.print("nothing to put back: no GPU setting of llem's is outstanding on this host")
        return
    try:
        control = host_control()
    except GpuSettingError as error:
        raise GpuSettingError(
            f"cannot put the GPUs back: {error.message}", hint=error.hint or ""
        ) from None
    done = restore_host(ledger, control, set(uuid) if uuid else None)
    for entry in done.restored:
        console.print(shown(f"put back: {_as_it_was(entry)}"))
    for gpu, why in done.left.items():
        console.print(shown(f"left as it is: {gpu}: {why}"))
    if done.left:
        raise typer.Exit(1)


def _as_it_was(entry: LedgerEntry) -> str:
    parts = []
    if entry.power_limit_w_before is not None:
        parts.append(f"power limit {entry.power_limit_w_before:g} W")
    if entry.clocks_locked is not None:
        parts.append("clocks unlocked (the driver's default)")
    return f"GPU {entry.index} ({entry.uuid}): " + (", ".join(parts) or "nothing to change")
