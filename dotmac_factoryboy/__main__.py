"""``python -m dotmac_factoryboy``: the same commands as ``dotmac-factoryboy``."""

from .cli import main

main(prog_name="dotmac-factoryboy")
