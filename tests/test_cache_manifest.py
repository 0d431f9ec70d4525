"""musicgen.cache_manifest: the manifest's text, read back, and other formats read as empty (the store stamp and
``tokens_current`` are covered with the token store in ``tests/test_cache.py``)."""

import json

from musicgen.cache_manifest import MANIFEST_FORMAT, load_manifest, manifest_text


def test_manifest_text_reads_back_and_other_formats_read_as_empty(tmp_path):
    manifest = {"format": MANIFEST_FORMAT, "counts": {"kept": 1}, "files": [{"path": "a.mid"}, {"path": "b.mid"}],
                "clusters": []}
    text = manifest_text(manifest)
    assert text.splitlines()[:4] == ['{', f' "format": {MANIFEST_FORMAT},', ' "counts": {"kept": 1},', ' "files": [']
    (tmp_path / "manifest.json").write_text(text)
    assert load_manifest(tmp_path / "manifest.json") == manifest
    for content in (json.dumps({**manifest, "format": MANIFEST_FORMAT - 1}), "[1, 2]", "{not json"):
        (tmp_path / "manifest.json").write_text(content)
        assert load_manifest(tmp_path / "manifest.json") == {}
    assert load_manifest(tmp_path / "missing.json") == {}
