"""`servingbench <command>`: one entry point; each command is a thin module in `commands/`.

A command module has a docstring (its help), `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only when their command runs, so `servingbench stop-all` never pays for
importing pandas or MLServer.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, str] = {
    "train": "servingbench.commands.train",
    "add-model": "servingbench.commands.add_model",
    "serve-api": "servingbench.commands.serve_api",
    "serve": "servingbench.commands.serve",
    "serve-all": "servingbench.commands.serve_all",
    "stop-all": "servingbench.commands.stop_all",
    "status": "servingbench.commands.status",
    "parity": "servingbench.commands.parity",
    "bench": "servingbench.commands.bench",
    "calibrate": "servingbench.commands.calibrate",
    "report": "servingbench.commands.report",
    "compare": "servingbench.commands.compare",
    "worker": "servingbench.commands.worker",
}


def _build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="servingbench", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_path in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=f"see `servingbench {name} --help`")
            continue
        module = importlib.import_module(module_path)
        doc = (module.__doc__ or "").strip()
        cmd = sub.add_parser(
            name,
            help=doc.split("\n")[0],
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the examples' lines
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    args = _build_parser(command).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    code: int = args._run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
