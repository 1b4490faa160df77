"""``morphlab import``: an attack-set manifest for morphs made by another tool."""

from __future__ import annotations

import click

from morphlab.cli import main
