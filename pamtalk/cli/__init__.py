"""The ``pamtalk`` command. Each group lives in its own module and only parses arguments,
then calls into the packages."""

from __future__ import annotations

import typer

from pamtalk.cli import batch, db, gpu, ledger, loadtest, models, serve, train, worker

app = typer.Typer(help="PAM-TALK serving: API, models, batch scoring.", no_args_is_help=True)
app.command()(db.init)
app.command()(serve.serve)
app.command(name="train")(train.train)
app.command()(serve.scale)
app.command()(worker.worker)
app.command()(worker.beat)
app.command(name="loadtest")(loadtest.loadtest)
app.add_typer(db.app, name="db")
app.add_typer(models.app, name="models")
app.add_typer(batch.app, name="batch")
app.add_typer(gpu.app, name="gpu")
app.add_typer(ledger.app, name="ledger")

if __name__ == "__main__":
    app()
