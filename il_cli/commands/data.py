"""il data export / il data import: il's datasets as Minari datasets, and back (il_cli.interop)."""

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from il_cli.commands.common import Json, user_errors
from il_cli.ui import UI

data_app = typer.Typer(no_args_is_help=True, help=escape("Datasets in other tools' formats: Minari in and out "
                                                         "(pip install -e '.[minari]')."))


def _dataset(path: Path) -> Path:
    """An .npz, or the dataset inside a collect run's directory."""
    inside = path / "data" / "demos.npz"
    return inside if path.is_dir() and inside.is_file() else path


@data_app.command("export")
def export(
    dataset: Annotated[Path, typer.Argument(help="An il dataset (.npz), or an `il collect` run directory.")],
    minari: Annotated[str, typer.Option("--minari", help="The Minari dataset id to write, like "
                                                         "cartpole/il-expert-v0 (in MINARI_DATASETS_PATH, else "
                                                         "~/.minari/datasets).")],
    author: Annotated[Optional[str], typer.Option(help="Recorded as the dataset's author.")] = None,
    description: Annotated[Optional[str], typer.Option(help="The dataset's description (default: what "
                                                            "recorded it, on which environment).")] = None,
    json: Json = False,
):
    """Write an il dataset as a Minari dataset that minari.load_dataset reads (gymnasium's spaces and env spec)."""
    ui = UI(json)
    with user_errors(ui):
        from il_cli.interop import export_minari

        written = export_minari(str(_dataset(dataset)), minari, author, description)
    ui.print(f"wrote Minari dataset {written['dataset_id']} ({written['episodes']} episodes, {written['steps']} "
             f"steps, {written['env']}) in {written['path']}; read it with {written['load']} or "
             f"il bc --demos minari:{written['dataset_id']}")
    ui.emit_json(written)


@data_app.command("import")
def import_(
    source: Annotated[str, typer.Argument(help="minari:ID (a local Minari dataset) or a Minari dataset's "
                                               "directory.")],
    out: Annotated[Path, typer.Option("--out", help="The il dataset (.npz) to write.")],
    env: Annotated[Optional[str], typer.Option("--env", "-e", help="The environment (default: the one the "
                                                                   "dataset was recorded on).")] = None,
    json: Json = False,
):
    """Convert a Minari dataset into an il dataset, its provenance in the header (--demos minari:ID reads one)."""
    ui = UI(json)
    with user_errors(ui):
        from il_cli.data import save_dataset
        from il_cli.envs import resolve_env_id
        from il_cli.interop import load_any

        data = load_any(source, resolve_env_id(env) if env else None)
        header = save_dataset(out, data)
    ui.print(f"wrote {out}: {header['episodes']} episodes, {header['count']} steps of {header['env_id']}, "
             f"return {header['return_mean']:.1f} (from {source})")
    ui.emit_json({"path": str(out), **header})
