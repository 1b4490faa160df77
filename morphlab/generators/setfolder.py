"""The output folder of a manifest run: checked, continued or wiped under its lock.

``run.json`` and the configuration a run may continue, the PNG level a continued run
keeps, stray temp files of a killed run, the contributors' records, and the contact page
(see :mod:`morphlab.generators.runner` for the rules).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from morphlab.generators.manifest import MANIFEST_NAME, _inside, _parse_loose
from morphlab.io import PNG_FPNG, atomic_write_text, check_png_compression, sha256_file

log = logging.getLogger(__name__)

RUN_NAME = "run.json"
#: run.json keys that must agree for a run to be continued.
CONFIG_KEYS = (
    "generator", "generator_version", "params", "run_seed", "image_format", "jpeg_quality",
    "png_compression", "output_tags", "pairs_sha256",
)
#: PNG compression of new attack sets (lossless; see :data:`morphlab.io.PNG_FPNG`).
PNG_COMPRESSION = PNG_FPNG
#: the PNG level of runs whose run.json records none (morphlab before it was recorded).
_LEGACY_PNG_COMPRESSION = 3
#: run.json ``format`` values of the folders morphlab writes with a manifest.
RUN_FORMATS = ("morphlab-attack-set", "morphlab-postprocessed")


class RunConflictError(ValueError):
    """The output folder holds something this run may not continue or replace."""


# ----------------------------------------------------------------------------------------
# the output folder
# ----------------------------------------------------------------------------------------
_TEMP_RE = re.compile(r"^\.(.+)\.[A-Za-z0-9_]+\.tmp$")


def _remove_temp_files(out: Path, names: Sequence[str]) -> None:
    """Remove what a killed run left: ``atomic_open`` temp files of the files in ``names``."""
    names = {*names, RUN_NAME, MANIFEST_NAME}
    for f in out.glob(".*.tmp"):
        m = _TEMP_RE.match(f.name)
        if m and m.group(1) in names and f.is_file() and not f.is_symlink():
            log.info("removing stray temporary file %s", f)
            f.unlink()


def _wipe(out: Path) -> int:
    """Delete the files the manifest in ``out`` lists, the manifest and run.json.

    Only files still holding what morphlab wrote (the sha256 the manifest records) are
    deleted; if a listed file was changed or replaced since, nothing is deleted.
    """
    manifest = out / MANIFEST_NAME
    ours, changed = [], []
    if manifest.is_file():
        for rec in _parse_loose(manifest):
            f = _inside(out, rec.get("file"))
            if f is None or not (f.exists() or f.is_symlink()):
                continue
            (ours if not f.is_symlink() and _verified(out, rec) else changed).append(f)
    if changed:
        names = ", ".join(f.name for f in changed[:5]) + (" …" if len(changed) > 5 else "")
        raise RunConflictError(
            f"{out}: --overwrite would delete {names}, changed since morphlab wrote "
            f"{'it' if len(changed) == 1 else 'them'} (sha256 differs from {manifest}); "
            "move them away first, or choose another output folder"
        )
    n = 0
    for f in dict.fromkeys(ours):
        if f.is_file():
            f.unlink()
            n += 1
    manifest.unlink(missing_ok=True)
    (out / RUN_NAME).unlink(missing_ok=True)
    log.info("%s: removed the previous run (%d files its manifest lists)", out, n)
    return n


def _config_diff(
    old: Mapping[str, Any], new: Mapping[str, Any], keys: Sequence[str] = CONFIG_KEYS
) -> list[str]:
    diffs = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if key == "png_compression" and a is None and "png_compression" not in old:
            a = _legacy_png_compression(old)
        if a == b:
            continue
        if key == "params" and isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k, "<unset>") != b.get(k, "<unset>"):
                    diffs.append(f"params.{k}: {a.get(k, '<unset>')!r} → {b.get(k, '<unset>')!r}")
        elif key == "pairs_sha256":
            diffs.append("the pairs file's content differs")
        else:
            diffs.append(f"{key}: {a!r} → {b!r}")
    return diffs


def _legacy_png_compression(run: Mapping[str, Any]) -> Optional[int]:
    """The PNG level of a run.json written before the level was recorded."""
    return _LEGACY_PNG_COMPRESSION if run.get("image_format", "png") == "png" else None


def _resolve_png_compression(out: Path, config: dict, overwrite: bool) -> None:
    """Fill ``config["png_compression"]`` when not given: the level of the run continued
    in ``out`` (so its files and the new ones are encoded alike), else the default."""
    if config["image_format"] != "png" or config["png_compression"] is not None:
        return
    level = PNG_COMPRESSION
    run_file = out / RUN_NAME
    if not overwrite and run_file.is_file():
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, OSError):
            previous = None  # _prepare_out_dir reports it
        if isinstance(previous, dict) and previous.get("image_format", "png") == "png":
            old = previous.get("png_compression", _legacy_png_compression(previous))
            try:
                check_png_compression(old)
                level = old
            except ValueError:
                pass  # not a level: the configurations differ, _prepare_out_dir says so
    config["png_compression"] = level


def check_out_path(out: Path) -> None:
    """Refuse an output path that exists and is not a folder."""
    if out.exists() and not out.is_dir():
        raise RunConflictError(f"{out}: exists and is not a folder")


def _prepare_out_dir(
    out: Path,
    config: dict,
    *,
    resume: bool,
    overwrite: bool,
    keys: Sequence[str] = CONFIG_KEYS,
    outputs: Sequence[str] = (),
) -> list[dict]:
    """Create/check ``out``; write run.json; return the previous run's records to continue.

    Call it holding the folder's lock (:func:`morphlab.outdir.locked_folder`).

    Args:
        keys: the run.json keys that must agree for a run to be continued.
        outputs: the file names the run will write; in a folder holding no run, an
            existing file of one of these names is refused (morphlab would replace it).
    """
    check_out_path(out)
    out.mkdir(parents=True, exist_ok=True)
    run_file, manifest = out / RUN_NAME, out / MANIFEST_NAME
    previous: Optional[dict] = None
    if run_file.is_file() or run_file.is_symlink():
        try:
            previous = json.loads(run_file.read_text(encoding="utf-8"))
            if not isinstance(previous, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError, RecursionError, OSError) as exc:
            if not overwrite:
                raise RunConflictError(
                    f"{run_file}: unreadable ({exc}); pass --overwrite to replace the run "
                    "in this folder, or choose another output folder"
                ) from None
            previous = {}
        if previous and previous.get("format") not in RUN_FORMATS:
            raise RunConflictError(
                f"{run_file}: not a morphlab run (format {previous.get('format')!r}); "
                "morphlab never replaces files it did not write: choose another output folder"
            )
    else:
        visible = [f.name for f in out.iterdir() if not f.name.startswith(".")]
        if visible and not overwrite:
            raise RunConflictError(
                f"{out}: the folder is not empty and holds no morphlab run ({RUN_NAME}); "
                "choose an empty or new output folder (or pass --overwrite to write into it "
                "anyway: its files are kept)"
            )
        clash = sorted(set(visible) & {MANIFEST_NAME, *outputs})
        if clash:
            raise RunConflictError(
                f"{out}: holds no morphlab run ({RUN_NAME}) but files named like this run's "
                f"outputs ({', '.join(clash[:5])}{' …' if len(clash) > 5 else ''}); morphlab "
                "never replaces files it did not write: move them away or choose another "
                "output folder"
            )

    if previous is None:
        if resume:
            raise RunConflictError(f"{out}: nothing to resume (no {RUN_NAME}); drop --resume")
        records: list[dict] = []
    else:
        diffs = _config_diff(previous, config, keys)
        if overwrite:
            _wipe(out)
            records = []
        elif diffs:
            listed = "\n  ".join(diffs)
            action = "cannot resume it" if resume else "refusing to mix runs"
            raise RunConflictError(
                f"{out} holds a run with a different configuration ({action}):\n  {listed}\n"
                "Pass --overwrite to replace it (deletes the morphs its manifest lists), or "
                "choose another output folder."
            )
        else:
            records = _parse_loose(manifest) if manifest.is_file() else []
    _remove_temp_files(out, outputs)
    atomic_write_text(run_file, json.dumps(config, indent=2, sort_keys=True) + "\n")
    if not manifest.exists():
        atomic_write_text(manifest, "")
    return records


def _contributor(path: Path, subject: str, root: Path, hashes: dict[Path, str]) -> dict:
    if path not in hashes:
        try:
            hashes[path] = sha256_file(path)
        except OSError:  # unreadable: its pairs fail on their own (ImageError), the run goes on
            hashes[path] = None
    return {
        "id": subject,
        "path": str(path),
        "relpath": Path(os.path.relpath(path, root)).as_posix(),
        "sha256": hashes[path],
    }


def _same_contributor(old: Any, new: Mapping[str, Any]) -> bool:
    return isinstance(old, dict) and all(old.get(k) == new[k] for k in ("id", "relpath", "sha256"))


def _remove_verified(out: Path, recs: Any) -> None:
    """Delete the files of previous manifest lines that a failed redo leaves stale.

    Only files still holding what morphlab wrote (their recorded sha256) go.
    """
    for rec in recs:
        f = _inside(out, rec.get("file"))
        if f is not None and not f.is_symlink() and _verified(out, rec):
            log.info("%s: removing the previous output of a pair that failed now", f)
            f.unlink()


def _verified(out: Path, rec: Mapping[str, Any]) -> bool:
    f = _inside(out, rec.get("file"))
    if f is None or not f.is_file():
        return False
    return sha256_file(f) == rec.get("sha256")


def write_set_contact_page(out: Path, *, thumbs: Optional[Mapping[str, str]] = None
                           ) -> Optional[Path]:
    """Write ``contact.html`` (subject A | morph(s) | subject B per pair, 256 px thumbnails
    linking to the full-size morphs) into a manifest folder, and record it as morphlab's
    (:func:`morphlab.outdir.record_owned`). Skipped when the page already shows the
    manifest as it is; the bytes depend on the set only, not on where it lies.
    ``thumbs``: thumbnails already made, by the sha256 of their image file."""
    from morphlab.outdir import record_owned
    from morphlab.reports.contact import CONTACT_PAGE, contact_page_current, write_contact_page

    manifest, page = out / MANIFEST_NAME, out / CONTACT_PAGE
    if contact_page_current(manifest, page):
        return page
    gens = sorted({str(r.get("generator")) for r in _parse_loose(manifest)})
    write_contact_page(manifest, page, title=f"Contact sheet: {', '.join(gens)} morphs",
                       link_contributors=False, thumbs=thumbs)
    record_owned(out, [CONTACT_PAGE])
    return page


# ----------------------------------------------------------------------------------------
# the same folder rules for other writers of manifest folders (morphlab.postprocess)
# ----------------------------------------------------------------------------------------
prepare_out_dir = _prepare_out_dir
verified_record = _verified
remove_verified = _remove_verified
