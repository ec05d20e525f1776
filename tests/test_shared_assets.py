"""The rule for tests that need ../shared: fail in CI, skip elsewhere, say why."""

import pytest
from conftest import require_shared


def test_missing_assets_fail_in_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("KFT_SHARED", str(tmp_path / "nowhere"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        require_shared()


def test_missing_assets_skip_elsewhere_with_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("KFT_SHARED", str(tmp_path / "nowhere"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="set KFT_SHARED"):
        require_shared()


def test_present_assets_are_returned(monkeypatch, tmp_path):
    (tmp_path / "README.md").write_text("assets")
    monkeypatch.setenv("KFT_SHARED", str(tmp_path))
    assert require_shared() == tmp_path
