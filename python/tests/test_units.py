"""Policies, config errors and role defaults as Python sees them (the rules are the Rust
crate's, through the binding): errors name the file and key."""

import os

import pytest

import framebus
from framebus import Policy
from framebus._camera import program_role

from conftest import synthetic_camera


def test_policies_parse_with_the_rust_messages():
    assert Policy.parse("newest") == Policy("newest")
    assert Policy.parse("max-fps", 5) == Policy("max-fps", 5.0)
    assert Policy.parse("max-fps=2.5") == Policy("max-fps", 2.5)
    assert str(Policy.parse("max-fps=2")) == "max-fps=2"
    for text, fps, message in (
        ("max-fps", None, "needs `max-fps"),
        ("max-fps", 0, "allowed more than 0"),
        ("every", 3, "only with policy"),
        ("latest", None, 'allowed "newest", "every"'),
    ):
        with pytest.raises(ValueError, match=message):
            Policy.parse(text, fps)


def test_config_errors_name_the_file_the_key_and_what_is_allowed(tmp_path):
    def error(body):
        path = tmp_path / "bad.toml"
        path.write_text(body)
        with pytest.raises(framebus.ConfigError) as e:
            framebus.load_config(path)
        assert str(path) in str(e.value)
        return str(e.value)

    assert "`camera[0].pixel-format`: unknown pixel format `BGRX`" in error(synthetic_camera(fmt="BGRX"))
    assert "`camera[0].colour`: unknown field `colour`" in error(synthetic_camera().replace("fps = 30", "fps = 30\ncolour = 1"))
    assert "no camera configured" in error('[deployment]\nname = "x"\n')
    bad_policy = synthetic_camera(extra='[[camera.reader]]\nname = "mine"\npolicy = "fastest"\n')
    assert '`camera[0].reader[0].policy`: unknown policy `fastest`' in error(bad_policy)
    deep = synthetic_camera(extra='[[camera.reader]]\nname = "mine"\nqueue-depth = 9\n')
    assert "`camera[0].reader[0].queue-depth`: invalid value 9: allowed 1 to 4" in error(deep)
    assert "invalid table header" in error("[[camera]\n")  # the TOML parser's own words, with line:column
    assert "cannot read the file" in str(pytest.raises(framebus.ConfigError, framebus.load_config, tmp_path / "none.toml").value)


def test_opening_fails_clearly_on_a_bad_camera_role_or_queue(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text(f'[deployment]\nname = "unit{os.getpid()}"\n\n' + synthetic_camera())
    with pytest.raises(framebus.ConfigError, match="no camera named `cam9` \\(cameras: `cam0`\\)"):
        framebus.open_camera(path, "cam9")
    with pytest.raises(framebus.FramebusError, match="invalid reader role name `Bad Role`"):
        framebus.open_camera(path, "cam0", role="Bad Role")
    with pytest.raises(framebus.FramebusError, match="queue depth 9 is not possible: allowed 1 to 4"):
        framebus.open_camera(path, "cam0", role="deep", queue_depth=9)
    with pytest.raises(ValueError, match="unknown policy"):
        framebus.open_camera(path, "cam0", role="p", policy="fastest")


def test_the_role_defaults_to_framebus_role_then_the_program_name(monkeypatch):
    monkeypatch.setenv("FRAMEBUS_ROLE", "from-env")
    assert program_role() == "from-env"
    monkeypatch.delenv("FRAMEBUS_ROLE")
    monkeypatch.setattr("sys.argv", ["/opt/x/Motion Detector.py"])
    assert program_role() == "motion-detector"
    monkeypatch.setattr("sys.argv", ["/opt/x/2fast.py"])
    assert program_role() == "reader"
