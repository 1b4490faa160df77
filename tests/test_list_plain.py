"""``morphlab list`` shows its one-line summaries in plain text, without Sphinx markup."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from morphlab.cli import main
from morphlab.cli.info import plain_text


@pytest.mark.parametrize("text, plain", [
    ("Load a folder as a :class:`Dataset`.", "Load a folder as a Dataset."),
    ("geometry (:func:`morphlab.face.align.icao_crop`) from", "geometry (morphlab.face.align.icao_crop) from"),
    ("see :class:`~morphlab.datasets.folder.Dataset`", "see Dataset"),
    ("at quality ``q`` (the last)", "at quality q (the last)"),
    ("``width`` x ``height``", "width x height"),
    (":py:meth:`~a.B.fit` returns", "fit returns"),
    ("the :ref:`tour <detection-tour>` and `text`", "the tour and text"),
    (":data:`STRATEGIES`, ``a*b``", "STRATEGIES, a*b"),
    ("no markup: 3 < 4, a:b, time `", "no markup: 3 < 4, a:b, time `"),
])
def test_plain_text(text: str, plain: str):
    assert plain_text(text) == plain


def test_list_has_no_markup():
    res = CliRunner().invoke(main, ["list"])
    assert res.exit_code == 0, res.output
    assert "``" not in res.output
    assert not re.search(r":[a-z]+(:[a-z]+)?:`", res.output), res.output
    assert "`" not in res.output
    # summaries that had markup in their docstrings are still there, in plain text
    assert re.search(r"^  folder +Load a folder of face images as a Dataset\.$", res.output, re.M)
    assert re.search(r"^  jpeg +JPEG re-compression at quality\b", res.output, re.M)


def test_output_cut_short_by_a_pipe_ends_quietly():
    """`morphlab list | head -1`: no "Error: Broken pipe", no traceback, status 141 (the
    reader here, `true`, exits before morphlab has imported, so every write hits a closed
    pipe)."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "morphlab"
    res = subprocess.run(["bash", "-c", f"'{exe}' list | true; "
                                        "echo ${PIPESTATUS[0]}"],
                         capture_output=True, text=True, timeout=120)
    assert res.stderr == "" and res.stdout.strip() == "141", res
