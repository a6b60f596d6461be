"""The training commands, one module each; importing this package registers them in
:data:`mixkit.command.COMMANDS` (a third method is one more module here)."""

from mixkit.commands import mixtrain, mixtraining  # noqa: F401  (registration)
