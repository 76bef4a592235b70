"""The contract with the Rust side: the package has no rules of its own, so what it shows is
what the Rust crate resolves. Every shipped config opens from Python with the settings Rust
gives the same reader; the deployment's iceoryx2 prefix and folder are `ctl iox2-config`'s;
the public names are pinned (an API change is a failing test, not a surprise)."""

import json
import os
from pathlib import Path

import pytest

import framebus

from conftest import REPO, binary, synthetic_camera

CONFIGS = sorted((REPO / "configs").glob("*.toml"))


def test_python_uses_the_iceoryx2_settings_and_state_dir_of_ctl(deployment):
    d = deployment(synthetic_camera())
    code, out, err = d.ctl("iox2-config", "--json")
    assert code == 0, err
    rust = json.loads(out)
    assert framebus.iceoryx2_settings(d.name) == {"prefix": rust["prefix"], "root_path": rust["root_path"]}
    assert framebus.load_config(d.config).state_dir == rust["state_dir"]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_shipped_config_opens_from_python_with_the_rust_settings(config):
    """The README's first step on every shipped config: open each camera as a reader. The
    settings the opened reader has are the ones the Rust crate resolves for that reader
    (`CameraBuilder::settings`), and `ctl` agrees on the deployment's iceoryx2 files."""
    deployment = framebus.load_config(config)
    assert deployment.cameras, config
    code, out, err = _ctl(config, "iox2-config", "--json")
    assert code == 0, err
    iox = json.loads(out)
    for camera in deployment.cameras:
        role = f"parity{os.getpid() % 100000}"
        expected = deployment.reader_settings(camera.name, role)
        with framebus.open_camera(config, camera.name, role=role) as cam:
            got = cam.settings()
            assert got == expected, (config, camera.name)
            assert (str(cam.policy), cam.queue_depth) == (got["policy"], got["queue_depth"])
            assert (cam.config.width, cam.config.height, cam.config.pixel_format) == (
                got["width"], got["height"], got["pixel_format"])
            assert cam.service == got["service"] == f"framebus/{deployment.name}/{camera.name}/frames"
            assert cam.config.slot_layout().max_queue_depth == got["max_queue_depth"]
        assert got["iceoryx2_prefix"] == iox["prefix"] and got["iceoryx2_root_path"] == iox["root_path"]
        assert got["camera"] == camera.name and got["role"] == role


def test_a_configured_reader_entry_wins_over_the_arguments(tmp_path):
    path = tmp_path / "d.toml"
    path.write_text(
        f'[deployment]\nname = "cfg{os.getpid()}"\n\n'
        + synthetic_camera(extra='[[camera.reader]]\nname = "mine"\npolicy = "max-fps"\nmax-fps = 5\nqueue-depth = 2\n')
    )
    settings = framebus.load_config(path).reader_settings("cam0", "mine", framebus.Policy("every"), 1)
    assert (settings["policy"], settings["queue_depth"]) == ("max-fps=5", 2)
    other = framebus.load_config(path).reader_settings("cam0", "other", framebus.Policy("every"))
    assert (other["policy"], other["queue_depth"]) == ("every", other["max_queue_depth"])


def test_the_public_names_are_pinned():
    assert sorted(framebus.__all__) == sorted([
        "Box", "Camera", "CameraConfig", "ConfigError", "Deployment", "Frame", "FrameHeader",
        "FrameReleasedError", "FrameStillReferencedError", "FramebusError", "Gap", "IpcError", "Policy",
        "Result", "SlotLayout", "iceoryx2_settings", "load_config", "open_camera", "program_role",
    ])
    for name in framebus.__all__:
        assert getattr(framebus, name) is not None, name
    assert issubclass(framebus.ConfigError, framebus.FramebusError)
    assert [f for f in framebus.Result.__dataclass_fields__] == [
        "producer", "frame_id", "run_id", "capture_mono_ns", "publish_mono_ns", "score", "boxes", "data"]
    assert [f for f in framebus.Box.__dataclass_fields__] == ["x", "y", "w", "h", "label", "score"]
    package = Path(framebus.__file__).parent
    assert (package / "py.typed").is_file() and (package / "_framebus.pyi").is_file()


def test_python_parses_no_config_of_its_own():
    """One implementation: no module of the package reads TOML."""
    sources = list((REPO / "python").rglob("*.py"))
    assert sources
    needle = "toml" + "lib"  # spelled apart: this file is one of the sources
    assert [s for s in sources if needle in s.read_text()] == []


def _ctl(config: Path, *args):
    import subprocess

    done = subprocess.run([str(binary("ctl")), "--config", str(config), *args], capture_output=True, text=True,
                          timeout=30)
    return done.returncode, done.stdout, done.stderr
