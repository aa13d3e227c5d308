"""llem's fetch image is built from the fetch module and exactly the llem modules it imports,
and named by a hash of those: a change to one of them is a new image."""

from __future__ import annotations

from llenergymeasure.imagebuild import fetch_image


def test_the_fetch_image_holds_the_fetch_module_and_what_it_imports_only() -> None:
    files = fetch_image.module_files()
    assert "llenergymeasure/experiment/fetch.py" in files
    assert "llenergymeasure/contract/hub.py" in files
    assert "llenergymeasure/__init__.py" in files  # a package's parents come along
    assert not any(path.startswith("llenergymeasure/orchestrator/") for path in files)
    assert not any(path.startswith("llenergymeasure/imagebuild/") for path in files)


def test_a_changed_module_names_another_image() -> None:
    files = fetch_image.module_files()
    key = fetch_image.inputs_key(files)
    assert fetch_image.inputs_key(dict(files)) == key
    changed = {**files, "llenergymeasure/experiment/fetch.py": b"# another fetch\n"}
    assert fetch_image.inputs_key(changed) != key
    assert fetch_image.requirements()[0].startswith("huggingface_hub")
    assert any(spec.startswith("pydantic") for spec in fetch_image.requirements())
