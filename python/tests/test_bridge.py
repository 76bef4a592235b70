"""A camera of another deployment, imported over Zenoh (`[[remote-camera]]`), read from Python
like a local one: a site deployment exports `cam0` (raw frames, or its streamer's H.264), a
viewer deployment imports it as `site-cam0`, both under `ctl up` on 127.0.0.1; a Python reader
on the viewer gets frames of the configured size with rising ids, and a cut link (the site's
bridge stopped until the viewer reports the link down, then started) comes as a `framebus.Gap`
from `events()` before the next frame."""

import socket

import pytest

import framebus

from conftest import DEADLINE, binary, process_status


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _import_figures(status: dict) -> dict:
    """The importing bridge's figures of `site-cam0` in `ctl status --json` ({} when absent)."""
    cameras = process_status(status, "site-cam0", "capture").get("bridge") or [{}]
    return cameras[0]


def _next_event(cam, kind):
    """The next event of type `kind` (frames or gaps), failing after DEADLINE without one."""
    for _ in range(int(DEADLINE / 0.5)):
        event = cam.next_event(timeout=0.5)
        if isinstance(event, kind):
            return event
    pytest.fail(f"no {kind.__name__} of site-cam0 within {DEADLINE}s")


@pytest.mark.parametrize("video", ["raw", "h264"])
def test_a_python_reader_reads_an_imported_camera_and_sees_a_cut_link_as_a_gap(deployment, video):
    port = _free_port()
    streamer = '[camera.streamer]\nencoder = "x264"\ngop = 15\n' if video == "h264" else ""
    frames = "[camera.export.frames]\nmax-fps = 15\n" if video == "raw" else ""
    site = deployment(
        f'[zenoh]\nsite = "hq"\nlisten = ["tcp/127.0.0.1:{port}"]\n\n'
        '[[camera]]\nname = "cam0"\nwidth = 320\nheight = 240\nfps = 30\n'
        f'[camera.source]\nkind = "synthetic"\n{streamer}[camera.export]\n{frames}'
    )
    viewer = deployment(
        f'[zenoh]\nsite = "desk"\nlisten = []\nconnect = ["tcp/127.0.0.1:{port}"]\n\n'
        f'[[remote-camera]]\nname = "site-cam0"\nsite = "hq"\ndeployment = "{site.name}"\ncamera = "cam0"\n'
        f'video = "{video}"\nwidth = 320\nheight = 240\nfps = 30\n'
    )
    site_up = site.spawn("site-up", [binary("ctl"), "--config", site.config, "up"])
    viewer_up = viewer.spawn("viewer-up", [binary("ctl"), "--config", viewer.config, "up"])
    viewer.wait_status(lambda s: _import_figures(s).get("link") == "up")

    with framebus.open_camera(viewer.config, "site-cam0", role="py-remote") as cam:
        ids = []
        for frame in cam.frames():
            assert (frame.width, frame.height, frame.pixel_format) == (320, 240, "BGR3")
            assert frame.image.shape == (240, 320, 3)
            assert frame.header.sequence > 0, "the origin's frame id"
            ids.append(frame.id)
            if len(ids) == 20:
                break
        assert all(b > a for a, b in zip(ids, ids[1:])), ids

        code, _, err = site.ctl("stop", "bridge")
        assert code == 0, err
        viewer.wait_status(lambda s: _import_figures(s).get("link") == "degraded")
        code, _, err = site.ctl("start", "bridge")
        assert code == 0, err
        gap = _next_event(cam, framebus.Gap)
        assert not gap.restarted and gap.duration > 0, gap
        after = _next_event(cam, framebus.Frame)
        assert after.id > ids[-1] and after.width == 320, (after.id, ids[-1])
        stats = cam.stats()
        assert stats["out_of_order"] == 0, stats

    status = viewer.wait_status(lambda s: _import_figures(s).get("link") == "up")
    assert _import_figures(status)["link_downs"] >= 1, status
    assert viewer_up.terminate() == 0, viewer_up.stderr_text()
    assert site_up.terminate() == 0, site_up.stderr_text()
    viewer.assert_no_leftovers()
    site.assert_no_leftovers()
