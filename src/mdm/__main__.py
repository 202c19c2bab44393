from mdm.cli.main import app

app(prog_name="mdm")
