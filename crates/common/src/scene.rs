//! The scene source's picture (`kind = "scene"`): a static textured background with shapes
//! moving on known paths, stamped with the frame id exactly like the test pattern.
//!
//! Everything is a function of the frame id, so the code that draws a frame is the code a test
//! (or a detector's author) calls to know where each object is: object `i` of frame `id` covers
//! [`Scene::object_box`]`(i, id)` (a circle the pixels [`SceneObject::covers`] says). Time along
//! a path is `t = (id − 1) / fps` seconds ([`UNPACED_FPS`] when the camera is unpaced).
//!
//! Rendering composes each row in a one-row scratch buffer (background row, object spans,
//! optional lighting and noise, stamp cells) and copies it once into the frame, so every byte of
//! the frame is written exactly once and nothing is allocated per frame.

use core::mem::MaybeUninit;

use crate::config::{CameraConfig, SceneObjectConfig, ScenePath, SceneShape, SceneSourceConfig};
use crate::format::PixelFormat;
use crate::pattern::{
    copy_into, planes, stamp_cell, stamp_row, write_pixel, Plane, MIN_SYNTHETIC_SIZE, STAMP_BITS, STAMP_GREY,
};

/// Frame rate the scene's time runs at when the camera is unpaced (`fps = 0`).
pub const UNPACED_FPS: f64 = 30.0;

/// Colours of objects that do not set `color`, by position in the list (repeating).
pub const PALETTE: [[u8; 3]; 6] =
    [[255, 40, 40], [40, 220, 60], [60, 90, 255], [255, 220, 40], [230, 60, 230], [40, 220, 230]];

/// The shape of an object and its size in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A filled rectangle.
    Rect {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A filled circle; its box is `2 · radius` square.
    Circle {
        /// Radius in pixels.
        radius: u32,
    },
}

impl Shape {
    /// Width and height of the shape's box.
    pub fn size(self) -> (u32, u32) {
        match self {
            Shape::Rect { width, height } => (width, height),
            Shape::Circle { radius } => (radius * 2, radius * 2),
        }
    }
}

/// How an object moves; `speed` of the object is in pixels per second along the path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Path {
    /// From top-left corner `start` in `direction_deg` (0 = right, 90 = down), reflected at the
    /// frame's edges: each axis is a triangle wave between 0 and frame − box (see [`bounce`]).
    Bounce {
        /// Top-left corner `[x, y]` at t = 0.
        start: [f64; 2],
        /// Direction of motion in degrees.
        direction_deg: f64,
    },
    /// The box's centre goes round `center` at `radius`, starting at angle `phase_deg`
    /// (0 = right, 90 = below), clockwise on screen.
    Orbit {
        /// Centre `[x, y]` of the circle.
        center: [f64; 2],
        /// Radius of the circle in pixels.
        radius: f64,
        /// Angle in degrees at t = 0.
        phase_deg: f64,
    },
}

/// One moving object of a scene.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneObject {
    /// Shape and size.
    pub shape: Shape,
    /// RGB colour.
    pub color: [u8; 3],
    /// The path it follows.
    pub path: Path,
    /// Pixels per second along the path.
    pub speed: f64,
}

/// Where an object is in one frame: its box's top-left corner (may be outside the frame for an
/// orbit) and size. A rectangle covers `x ≤ px < x + width`, `y ≤ py < y + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectBox {
    /// Left edge in pixels.
    pub x: i64,
    /// Top edge in pixels.
    pub y: i64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl ObjectBox {
    /// The pixel at the box's centre (rounded down).
    pub fn center(&self) -> (i64, i64) {
        (self.x + i64::from(self.width) / 2, self.y + i64::from(self.height) / 2)
    }
}

/// Position in `0 ..= range` of a point moving freely to `s`, reflected at 0 and `range` (a
/// triangle wave of period `2 · range`); 0 when `range` ≤ 0.
pub fn bounce(s: f64, range: f64) -> f64 {
    if range <= 0.0 {
        return 0.0;
    }
    let m = s.rem_euclid(2.0 * range);
    if m <= range {
        m
    } else {
        2.0 * range - m
    }
}

/// `cos` and `sin` of an angle in degrees, with results within 1e-12 of 0 made exactly 0 (so
/// a motion straight along an axis does not drift by rounding).
fn direction(deg: f64) -> (f64, f64) {
    let (sin, cos) = deg.to_radians().sin_cos();
    let snap = |v: f64| if v.abs() < 1e-12 { 0.0 } else { v };
    (snap(cos), snap(sin))
}

impl SceneObject {
    /// The object's box at `t` seconds in a `frame` (width, height) frame: the path's position
    /// rounded down to whole pixels.
    pub fn position_at(&self, t: f64, frame: (u32, u32)) -> ObjectBox {
        let (w, h) = self.shape.size();
        let (x, y) = match self.path {
            Path::Bounce { start, direction_deg } => {
                let (cos, sin) = direction(direction_deg);
                (
                    bounce(start[0] + self.speed * cos * t, f64::from(frame.0) - f64::from(w)),
                    bounce(start[1] + self.speed * sin * t, f64::from(frame.1) - f64::from(h)),
                )
            }
            Path::Orbit { center, radius, phase_deg } => {
                let turned = if radius > 0.0 { (self.speed * t / radius).to_degrees() } else { 0.0 };
                let (cos, sin) = direction(phase_deg + turned);
                (center[0] + radius * cos - f64::from(w) / 2.0, center[1] + radius * sin - f64::from(h) / 2.0)
            }
        };
        ObjectBox { x: x.floor() as i64, y: y.floor() as i64, width: w, height: h }
    }

    /// The pixels of row `y` the object covers when at `at`: `x0 .. x1` (half-open, not
    /// clipped to the frame), or `None`. A circle of radius `r` covers the pixels whose centre
    /// is within `r` of the box's centre: `(2px + 1 − 2x − 2r)² + (2py + 1 − 2y − 2r)² ≤ 4r²`.
    pub fn span(&self, at: ObjectBox, y: i64) -> Option<(i64, i64)> {
        match self.shape {
            Shape::Rect { width, height } => {
                (at.y..at.y + i64::from(height)).contains(&y).then_some((at.x, at.x + i64::from(width)))
            }
            Shape::Circle { radius } => {
                let r = i64::from(radius);
                let dy = 2 * y + 1 - 2 * at.y - 2 * r;
                let room = 4 * r * r - dy * dy;
                if room < 0 {
                    return None;
                }
                let m = room.isqrt();
                let c = 2 * at.x + 2 * r - 1;
                // |2px − c| ≤ m  ⇔  ceil((c − m) / 2) ≤ px ≤ floor((c + m) / 2).
                let x0 = -(-(c - m)).div_euclid(2);
                let x1 = (c + m).div_euclid(2) + 1;
                (x0 < x1).then_some((x0, x1))
            }
        }
    }

    /// Whether pixel (`x`, `y`) is the object's when it is at `at`.
    pub fn covers(&self, at: ObjectBox, x: i64, y: i64) -> bool {
        self.span(at, y).is_some_and(|(x0, x1)| (x0..x1).contains(&x))
    }
}

/// The background's colour at pixel (`x`, `y`) of a `width` × `height` frame: a vertical
/// gradient with a slight horizontal warm shift, 64-pixel tiles a little lighter on alternate
/// squares, and darker grid lines every 32 pixels (texture for feature trackers).
pub fn background_rgb(x: u32, y: u32, width: u32, height: u32) -> [u8; 3] {
    let (w, h) = (width.max(1), height.max(1));
    let mut r = 50 + 40 * y / h + 20 * x / w;
    let mut g = 60 + 50 * y / h;
    let mut b = 80 + 30 * (h - y.min(h)) / h;
    if (x / 64 + y / 64).is_multiple_of(2) {
        (r, g, b) = (r + 12, g + 12, b + 12);
    }
    if x.is_multiple_of(32) || y.is_multiple_of(32) {
        (r, g, b) = (r - 25, g - 25, b - 25);
    }
    [r as u8, g as u8, b as u8]
}

/// A scene: frame size, time base, objects and effects.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    width: u32,
    height: u32,
    fps: f64,
    objects: Vec<SceneObject>,
    noise: u8,
    lighting: f64,
    lighting_period_secs: f64,
}

impl Scene {
    /// A scene of `objects` (drawn in order, later over earlier) without noise or lighting
    /// changes; `fps` ≤ 0 means [`UNPACED_FPS`].
    pub fn new(width: u32, height: u32, fps: f64, objects: Vec<SceneObject>) -> Scene {
        let fps = if fps > 0.0 && fps.is_finite() { fps } else { UNPACED_FPS };
        Scene { width, height, fps, objects, noise: 0, lighting: 0.0, lighting_period_secs: 10.0 }
    }

    /// The scene a camera's `[camera.source]` table describes (validated config: values out of
    /// range are clamped, not refused).
    pub fn from_config(camera: &CameraConfig, config: &SceneSourceConfig) -> Scene {
        let (width, height) = (camera.width, camera.height);
        let objects = match &config.objects {
            None => Scene::default_objects(width, height),
            Some(list) => list.iter().enumerate().map(|(i, o)| object_from_config(i, o, width, height)).collect(),
        };
        let mut scene = Scene::new(width, height, camera.fps, objects);
        scene.noise = config.noise.min(64) as u8;
        scene.lighting = if config.lighting.is_finite() { config.lighting.clamp(0.0, 0.9) } else { 0.0 };
        scene.lighting_period_secs = if config.lighting_period_secs > 0.0 { config.lighting_period_secs } else { 10.0 };
        scene
    }

    /// The scene without `[[camera.source.object]]`: a red rectangle bouncing, a green circle
    /// orbiting the centre (one turn in 6 s) and a tall blue rectangle bouncing the other way,
    /// sized from the frame.
    pub fn default_objects(width: u32, height: u32) -> Vec<SceneObject> {
        let (w, h) = (f64::from(width), f64::from(height));
        let red = (width / 8, height / 8);
        let blue = (width / 12, height / 6);
        let radius = (height / 12).max(2);
        let orbit = w.min(h) / 4.0;
        vec![
            SceneObject {
                shape: Shape::Rect { width: red.0, height: red.1 },
                color: PALETTE[0],
                path: Path::Bounce { start: [(w / 10.0).floor(), (h / 5.0).floor()], direction_deg: 30.0 },
                speed: (w / 5.0).floor(),
            },
            SceneObject {
                shape: Shape::Circle { radius },
                color: PALETTE[1],
                path: Path::Orbit { center: [w / 2.0, h / 2.0], radius: orbit, phase_deg: 0.0 },
                speed: (2.0 * std::f64::consts::PI * orbit / 6.0).floor(),
            },
            SceneObject {
                shape: Shape::Rect { width: blue.0, height: blue.1 },
                color: PALETTE[2],
                path: Path::Bounce {
                    start: [(w * 0.75).floor().min(w - f64::from(blue.0)), (h / 2.0).floor()],
                    direction_deg: 200.0,
                },
                speed: (w / 8.0).floor(),
            },
        ]
    }

    /// Adds per-pixel brightness noise of amplitude `noise` (0 to 64) and a brightness change of
    /// depth `lighting` (0 to 0.9) with a period of `period_secs`.
    pub fn with_effects(mut self, noise: u8, lighting: f64, period_secs: f64) -> Scene {
        self.noise = noise.min(64);
        self.lighting = lighting.clamp(0.0, 0.9);
        self.lighting_period_secs = if period_secs > 0.0 { period_secs } else { 10.0 };
        self
    }

    /// Frame width and height.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The objects, in drawing order.
    pub fn objects(&self) -> &[SceneObject] {
        &self.objects
    }

    /// Seconds along the paths at frame `frame_id`: `(frame_id − 1) / fps`.
    pub fn time(&self, frame_id: u64) -> f64 {
        frame_id.saturating_sub(1) as f64 / self.fps
    }

    /// Where object `index` is in frame `frame_id` (`None` past the last object).
    pub fn object_box(&self, index: usize, frame_id: u64) -> Option<ObjectBox> {
        let t = self.time(frame_id);
        self.objects.get(index).map(|o| o.position_at(t, (self.width, self.height)))
    }

    /// The colour of pixel (`x`, `y`) in frame `frame_id` before noise, lighting and stamps: the
    /// last object covering it, else the background.
    pub fn rgb_at(&self, x: u32, y: u32, frame_id: u64) -> [u8; 3] {
        let t = self.time(frame_id);
        let frame = (self.width, self.height);
        self.objects
            .iter()
            .rev()
            .find(|o| o.covers(o.position_at(t, frame), i64::from(x), i64::from(y)))
            .map_or_else(|| background_rgb(x, y, self.width, self.height), |o| o.color)
    }

    /// Brightness factor of frame `frame_id`: `1 + lighting · sin(2π t / period)`.
    pub fn gain(&self, frame_id: u64) -> f64 {
        1.0 + self.lighting * (std::f64::consts::TAU * self.time(frame_id) / self.lighting_period_secs).sin()
    }
}

fn object_from_config(index: usize, o: &SceneObjectConfig, width: u32, height: u32) -> SceneObject {
    let fit = |v: Option<i64>, default: i64, max: u32| v.unwrap_or(default).clamp(1, i64::from(max.max(1))) as u32;
    let shape = match o.shape() {
        SceneShape::Rect => Shape::Rect { width: fit(o.width, 80, width), height: fit(o.height, 60, height) },
        SceneShape::Circle => Shape::Circle { radius: fit(o.radius, 30, width.min(height) / 2) },
    };
    let (bw, bh) = shape.size();
    let color = match o.color.as_deref() {
        Some([r, g, b]) => [*r, *g, *b].map(|c| c.clamp(0, 255) as u8),
        _ => PALETTE[index % PALETTE.len()],
    };
    let (w, h) = (f64::from(width), f64::from(height));
    let path = match o.path() {
        ScenePath::Bounce => Path::Bounce {
            start: o.start.unwrap_or([((w - f64::from(bw)) / 2.0).floor(), ((h - f64::from(bh)) / 2.0).floor()]),
            direction_deg: o.direction.unwrap_or(30.0),
        },
        ScenePath::Orbit => Path::Orbit {
            center: o.center.unwrap_or([w / 2.0, h / 2.0]),
            radius: o.orbit_radius.unwrap_or(w.min(h) / 4.0),
            phase_deg: o.phase.unwrap_or(0.0),
        },
    };
    SceneObject { shape, color, path, speed: o.speed.unwrap_or(120.0) }
}

/// A [`Scene`] ready to render in one pixel format: the background and each object's colour
/// precomputed in that format.
#[derive(Debug, Clone)]
pub struct SceneRenderer {
    scene: Scene,
    format: PixelFormat,
    cell: usize,
    planes: Vec<Plane>,
    /// The whole background frame in `format`.
    background: Vec<u8>,
    /// Per object: one row of each plane filled with its colour, planes back to back.
    colors: Vec<Vec<u8>>,
    /// The row being composed (the widest plane's row).
    row: Vec<u8>,
    /// One row of the stamp of the frame being rendered.
    stamp: Vec<u8>,
    /// Where each object is in the frame being rendered.
    boxes: Vec<ObjectBox>,
    luma_lut: [u8; 256],
    chroma_lut: [u8; 256],
}

impl SceneRenderer {
    /// Precomputes `scene` in `format`; `None` for the formats and sizes the synthetic pattern
    /// cannot produce either (MJPG, NV21, NV16, odd sizes of subsampled formats, below
    /// [`MIN_SYNTHETIC_SIZE`]).
    pub fn new(scene: Scene, format: PixelFormat) -> Option<SceneRenderer> {
        let (width, height) = scene.size();
        if width < MIN_SYNTHETIC_SIZE.0 || height < MIN_SYNTHETIC_SIZE.1 {
            return None;
        }
        let planes = planes(format, width, height)?;
        let mut background = vec![0u8; format.frame_bytes(width, height)];
        for (index, plane) in planes.iter().enumerate() {
            for row in 0..plane.rows {
                let at = plane.offset + row * plane.row_bytes;
                let line = &mut background[at..at + plane.row_bytes];
                let y = if index == 0 { row } else { row * 2 } as u32;
                for x in 0..width {
                    write_pixel(format, index, x as usize, background_rgb(x, y, width, height), line);
                }
            }
        }
        let colors = scene
            .objects()
            .iter()
            .map(|o| {
                let mut rows = Vec::with_capacity(planes.iter().map(|p| p.row_bytes).sum());
                for (index, plane) in planes.iter().enumerate() {
                    let mut line = vec![0u8; plane.row_bytes];
                    for x in 0..width as usize {
                        write_pixel(format, index, x, o.color, &mut line);
                    }
                    rows.extend_from_slice(&line);
                }
                rows
            })
            .collect();
        let widest = planes.iter().map(|p| p.row_bytes).max().unwrap_or(0);
        let boxes = Vec::with_capacity(scene.objects().len());
        Some(SceneRenderer {
            cell: stamp_cell(width) as usize,
            format,
            planes,
            background,
            colors,
            row: vec![0u8; widest],
            stamp: Vec::with_capacity(STAMP_BITS as usize * 16 * 3),
            boxes,
            luma_lut: core::array::from_fn(|v| v as u8),
            chroma_lut: core::array::from_fn(|v| v as u8),
            scene,
        })
    }

    /// The scene this renders.
    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    /// Bytes one rendered frame occupies.
    pub fn frame_bytes(&self) -> usize {
        let (width, height) = self.scene.size();
        self.format.frame_bytes(width, height)
    }

    /// Writes frame `frame_id` into `dst` (at least [`Self::frame_bytes`] long), every byte once.
    pub fn render(&mut self, frame_id: u64, dst: &mut [MaybeUninit<u8>]) {
        assert!(dst.len() >= self.frame_bytes(), "destination smaller than the frame");
        let SceneRenderer { scene, format, cell, planes, background, colors, row, stamp, boxes, luma_lut, chroma_lut } =
            self;
        let (format, cell) = (*format, *cell);
        let (width, height) = scene.size();
        boxes.clear();
        boxes.extend((0..scene.objects().len()).filter_map(|i| scene.object_box(i, frame_id)));
        let lit = scene.lighting > 0.0;
        if lit {
            let gain = scene.gain(frame_id);
            for v in 0..256usize {
                luma_lut[v] = (v as f64 * gain).round().clamp(0.0, 255.0) as u8;
                chroma_lut[v] = (128.0 + (v as f64 - 128.0) * gain).round().clamp(0.0, 255.0) as u8;
            }
        }
        stamp_row(format, cell, frame_id, stamp);
        let mut plane_row_offset = 0;
        for (index, plane) in planes.iter().enumerate() {
            for r in 0..plane.rows {
                let line = &mut row[..plane.row_bytes];
                let at = plane.offset + r * plane.row_bytes;
                line.copy_from_slice(&background[at..at + plane.row_bytes]);
                let luma_y = if index == 0 { r } else { r * 2 };
                for ((object, at_box), color) in scene.objects().iter().zip(boxes.iter()).zip(colors.iter()) {
                    if let Some((x0, x1)) = object.span(*at_box, luma_y as i64) {
                        let (x0, x1) = (x0.max(0) as usize, x1.min(i64::from(width)).max(0) as usize);
                        if x0 < x1 {
                            let (a, z) = (x0 * plane.bytes_per_px, x1 * plane.bytes_per_px);
                            line[a..z].copy_from_slice(&color[plane_row_offset + a..plane_row_offset + z]);
                        }
                    }
                }
                if lit || scene.noise > 0 {
                    let chroma_plane = index > 0;
                    let seed = splitmix(frame_id ^ ((index as u64) << 40) ^ ((r as u64) << 8));
                    finish_row(
                        format,
                        chroma_plane,
                        line,
                        lit.then_some((&*luma_lut, &*chroma_lut)),
                        scene.noise,
                        seed,
                    );
                }
                let in_band = luma_y < cell || luma_y >= height as usize - cell;
                if in_band {
                    if index == 0 {
                        line[..stamp.len()].copy_from_slice(stamp);
                    } else {
                        // Neutral chroma under the cells (NV12's UV rows of the bands).
                        line[..STAMP_BITS as usize * cell].copy_from_slice(&STAMP_GREY[..STAMP_BITS as usize * cell]);
                    }
                }
                copy_into(dst, at, line);
            }
            plane_row_offset += plane.row_bytes;
        }
    }
}

/// Applies the lighting tables and noise to one composed row: brightness bytes (RGB, grey, Y)
/// get both, chroma bytes (YUYV's U/V, NV12's UV plane) only the lighting, scaled about 128.
fn finish_row(
    format: PixelFormat,
    chroma_plane: bool,
    line: &mut [u8],
    luts: Option<(&[u8; 256], &[u8; 256])>,
    noise: u8,
    seed: u64,
) {
    let span = u64::from(noise) * 2 + 1;
    let mut state = seed | 1;
    let yuyv = format == PixelFormat::Yuyv;
    for (i, v) in line.iter_mut().enumerate() {
        if chroma_plane || (yuyv && i % 2 == 1) {
            if let Some((_, chroma)) = luts {
                *v = chroma[usize::from(*v)];
            }
            continue;
        }
        let mut value = i32::from(luts.map_or(*v, |(luma, _)| luma[usize::from(*v)]));
        if noise > 0 {
            // xorshift64: cheap, deterministic per frame and row.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            value += (state % span) as i32 - i32::from(noise);
        }
        *v = value.clamp(0, 255) as u8;
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
