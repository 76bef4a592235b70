//! The scene's path math, circle coverage and rendering in every raw format.

use super::*;
use crate::pattern::{verify_stamps, write_pixel};

fn rect(width: u32, height: u32, path: Path, speed: f64) -> SceneObject {
    SceneObject { shape: Shape::Rect { width, height }, color: [255, 0, 0], path, speed }
}

fn render(renderer: &mut SceneRenderer, id: u64, fill: u8) -> Vec<u8> {
    let mut buf = vec![MaybeUninit::new(fill); renderer.frame_bytes()];
    renderer.render(id, &mut buf);
    // SAFETY: every byte was initialised by `vec!` (and overwritten by the renderer).
    buf.into_iter().map(|b| unsafe { b.assume_init() }).collect()
}

/// The bounce is a triangle wave between 0 and the range, reflected at both ends.
#[test]
fn bounce_reflects_at_both_edges() {
    for (s, expected) in [(0.0, 0.0), (5.0, 5.0), (10.0, 10.0), (12.0, 8.0), (20.0, 0.0), (25.0, 5.0), (-3.0, 3.0)] {
        assert_eq!(bounce(s, 10.0), expected, "s = {s}");
    }
    assert_eq!(bounce(7.0, 0.0), 0.0, "an object as wide as the frame stays at 0");
}

/// A bouncing box moves `speed` pixels per second from its start, at `(id − 1) / fps` seconds,
/// and comes back from the right edge (hand-computed positions).
#[test]
fn a_bouncing_box_is_where_the_formula_says() {
    let path = |deg| Path::Bounce { start: [10.0, 20.0], direction_deg: deg };
    let scene = Scene::new(640, 480, 30.0, vec![rect(100, 50, path(0.0), 300.0), rect(100, 50, path(90.0), 300.0)]);
    let at = |i, id| scene.object_box(i, id).map(|b| (b.x, b.y));
    assert_eq!(at(0, 1), Some((10, 20)), "frame 1 is t = 0");
    assert_eq!(at(0, 31), Some((310, 20)), "1 s later: 300 px to the right");
    assert_eq!(at(0, 61), Some((470, 20)), "610 px along a 540 px range: 70 px back from the edge");
    assert_eq!(at(1, 31), Some((10, 320)), "90° is straight down");
    assert_eq!(at(1, 46), Some((10, 390)), "470 along a 430 px range: 40 back from the bottom");
    assert_eq!(at(2, 1), None);
    assert_eq!(scene.object_box(0, 16).map(|b| (b.width, b.height)), Some((100, 50)));
    let diagonal = Scene::new(640, 480, 10.0, vec![rect(40, 40, path(45.0), 100.0 * 2f64.sqrt())]);
    assert_eq!(diagonal.object_box(0, 11).map(|b| (b.x, b.y)), Some((110, 120)), "45°: 100 px on each axis");
}

/// An orbiting circle's box is centred on the orbit: a quarter turn per `π r / 2` pixels.
#[test]
fn an_orbiting_box_goes_round_its_centre() {
    let orbit = Path::Orbit { center: [320.0, 240.0], radius: 100.0, phase_deg: 0.0 };
    let circle = SceneObject {
        shape: Shape::Circle { radius: 10 },
        color: [0, 255, 0],
        path: orbit,
        speed: 100.0 * std::f64::consts::FRAC_PI_2,
    };
    let scene = Scene::new(640, 480, 25.0, vec![circle]);
    let at = |id| scene.object_box(0, id).map(|b| (b.x, b.y, b.width, b.height));
    assert_eq!(at(1), Some((410, 230, 20, 20)), "phase 0: right of the centre");
    assert_eq!(at(26), Some((310, 330, 20, 20)), "1 s: a quarter turn, below the centre");
    assert_eq!(at(51), Some((210, 230, 20, 20)), "2 s: left of the centre");
    assert_eq!(at(76), Some((310, 130, 20, 20)), "3 s: above the centre");
    let unpaced = Scene::new(640, 480, 0.0, vec![circle]);
    assert_eq!(unpaced.time(31), 1.0, "an unpaced camera's scene runs at 30 fps");
}

/// A circle covers exactly the pixels whose centre lies within its radius of the box's centre.
#[test]
fn a_circle_covers_the_pixels_within_its_radius() {
    for radius in 1..=13u32 {
        let circle = SceneObject {
            shape: Shape::Circle { radius },
            color: [0, 0, 0],
            path: Path::Bounce { start: [0.0, 0.0], direction_deg: 0.0 },
            speed: 0.0,
        };
        let at = ObjectBox { x: 7, y: -3, width: radius * 2, height: radius * 2 };
        let (cx, cy) = (7.0 + f64::from(radius), -3.0 + f64::from(radius));
        for y in -6..30i64 {
            for x in 0..40i64 {
                let (dx, dy) = (x as f64 + 0.5 - cx, y as f64 + 0.5 - cy);
                let inside = dx * dx + dy * dy <= f64::from(radius * radius);
                assert_eq!(circle.covers(at, x, y), inside, "radius {radius} pixel ({x}, {y})");
            }
        }
    }
}

/// In every raw format, every row between the stamp bands equals the scene's colours (objects
/// over the background) converted as the test pattern converts them, both stamps carry the
/// frame id, and every byte of the frame is written.
#[test]
fn frames_show_the_scene_and_the_stamp_in_every_raw_format() {
    let (width, height) = (320u32, 240u32);
    for format in [PixelFormat::Bgr3, PixelFormat::Rgb3, PixelFormat::Grey, PixelFormat::Yuyv, PixelFormat::Nv12] {
        let scene = Scene::new(width, height, 30.0, Scene::default_objects(width, height));
        let mut renderer = SceneRenderer::new(scene.clone(), format).expect("supported format");
        let planes = planes(format, width, height).expect("planes");
        let cell = stamp_cell(width) as usize;
        for id in [1u64, 2, 45, 300] {
            let frame = render(&mut renderer, id, 0xAA);
            assert_eq!(frame, render(&mut renderer, id, 0x55), "{format}: every byte is written");
            assert_eq!(verify_stamps(format, width, height, id, &frame), Ok(()), "{format} id {id}");
            assert!(verify_stamps(format, width, height, id + 1, &frame).is_err(), "{format} id {id}+1");
            for (index, plane) in planes.iter().enumerate() {
                let mut expected = vec![0u8; plane.row_bytes];
                for r in 0..plane.rows {
                    let y = if index == 0 { r } else { r * 2 };
                    if y < cell || y >= height as usize - cell {
                        continue;
                    }
                    for x in 0..width {
                        write_pixel(format, index, x as usize, scene.rgb_at(x, y as u32, id), &mut expected);
                    }
                    let at = plane.offset + r * plane.row_bytes;
                    assert!(frame[at..at + plane.row_bytes] == expected[..], "{format} id {id} plane {index} row {r}");
                }
            }
        }
    }
}

/// The objects of a BGR frame are at the boxes the formula gives: their centre pixels have
/// their colour, and they move between frames.
#[test]
fn objects_are_drawn_at_their_computed_boxes() {
    let (width, height) = (640u32, 480u32);
    let scene = Scene::new(width, height, 30.0, Scene::default_objects(width, height));
    let mut renderer = SceneRenderer::new(scene.clone(), PixelFormat::Bgr3).expect("BGR3");
    for id in [1u64, 20, 77] {
        let frame = render(&mut renderer, id, 0);
        for (i, object) in scene.objects().iter().enumerate() {
            let b = scene.object_box(i, id).expect("object");
            let (x, y) = b.center();
            let at = (y as usize * width as usize + x as usize) * 3;
            let [r, g, bl] = object.color;
            assert_eq!(frame[at..at + 3], [bl, g, r], "object {i} at {b:?} in frame {id}");
        }
        let moved = (0..3).all(|i| scene.object_box(i, id) != scene.object_box(i, id + 10));
        assert!(moved, "every default object moves");
    }
}

/// Noise and lighting change the picture, deterministically per frame id, and never the stamps.
#[test]
fn noise_and_lighting_keep_the_stamps() {
    let (width, height) = (320u32, 240u32);
    for format in [PixelFormat::Bgr3, PixelFormat::Yuyv, PixelFormat::Nv12] {
        let clean = Scene::new(width, height, 10.0, Vec::new());
        let mut plain = SceneRenderer::new(clean.clone(), format).expect("format");
        let mut noisy = SceneRenderer::new(clean.clone().with_effects(20, 0.0, 10.0), format).expect("format");
        let mut lit = SceneRenderer::new(clean.with_effects(0, 0.5, 4.0), format).expect("format");
        let id = 11; // t = 1 s: a quarter of the lighting period, the brightest.
        let base = render(&mut plain, id, 0);
        let a = render(&mut noisy, id, 0);
        assert_ne!(a, base, "{format}: noise changes pixels");
        assert_eq!(a, render(&mut noisy, id, 0), "{format}: the same frame id, the same noise");
        assert_eq!(verify_stamps(format, width, height, id, &a), Ok(()), "{format}");
        let bright = render(&mut lit, id, 0);
        assert_eq!(verify_stamps(format, width, height, id, &bright), Ok(()), "{format}");
        let row = (height as usize / 2) * format.stride(width) as usize;
        // Brightness bytes only (YUYV's chroma is scaled about 128).
        let step = if format == PixelFormat::Yuyv { 2 } else { 1 };
        let sum = |f: &[u8]| f[row..row + width as usize].iter().step_by(step).map(|&v| u64::from(v)).sum::<u64>();
        assert!(sum(&bright) > sum(&base) * 5 / 4, "{format}: gain 1.5 at the peak");
        assert_eq!(render(&mut lit, 1, 0), render(&mut plain, 1, 0), "{format}: gain 1 at t = 0");
    }
}

/// The default scene fits frames from the smallest to full HD: its boxes start inside.
#[test]
fn the_default_scene_fits_every_frame_size() {
    for (width, height) in [(128u32, 64u32), (320, 240), (640, 480), (1920, 1080)] {
        let scene = Scene::new(width, height, 30.0, Scene::default_objects(width, height));
        assert_eq!(scene.objects().len(), 3);
        for i in 0..3 {
            let b = scene.object_box(i, 1).expect("object");
            assert!(b.width > 0 && b.height > 0, "{width}x{height} object {i}: {b:?}");
            assert!(b.x >= 0 && b.y >= 0, "{width}x{height} object {i}: {b:?}");
            assert!(b.x + i64::from(b.width) <= i64::from(width), "{width}x{height} object {i}: {b:?}");
            assert!(b.y + i64::from(b.height) <= i64::from(height), "{width}x{height} object {i}: {b:?}");
        }
        assert!(SceneRenderer::new(scene, PixelFormat::Nv12).is_some());
    }
    assert!(SceneRenderer::new(Scene::new(640, 480, 30.0, Vec::new()), PixelFormat::Mjpg).is_none());
}
