"""`onenat`: NAT gateway and Elastic IPs (commands arrive with the nat subsystem)."""

from __future__ import annotations

import click

from onemetal import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)
def main() -> None:
    """Manage the NAT gateway and Elastic IP mappings of onemetal."""


if __name__ == "__main__":
    main()
