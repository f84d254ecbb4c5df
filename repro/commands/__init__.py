"""One module per command group: its arguments (`add_commands`) and what each command does with them
(`run_*`), calling the library modules. repro.cli lists the commands and loads a module only when its command
runs, so these modules import torch only inside the run functions."""
