"""The embedded sample dataset (FRLL subset, CC BY 4.0 — see ATTRIBUTION.md)."""

from pathlib import Path

#: Folder of the embedded FRLL subset: ``neutral/``, ``smiling/``, ``london_info.csv``.
SAMPLE_DIR = Path(__file__).resolve().parent / "frll"


def sample_dir() -> Path:
    """Path of the embedded sample (12 identities, neutral + smiling, 600x600)."""
    if not (SAMPLE_DIR / "neutral").is_dir():
        raise FileNotFoundError(
            f"{SAMPLE_DIR}: the embedded sample is missing from this installation; "
            "reinstall morphlab or rebuild it with tools/make_sample.py"
        )
    return SAMPLE_DIR
