//! Read-only aliases of frame samples that can never show another frame.
//!
//! A received sample lives in iceoryx2's read-only mapping of capture's data segment and goes
//! back to capture (to be overwritten by a later frame) when the reader releases it. numpy
//! arrays cannot be invalidated, and a Python loop keeps the last iteration's
//! `img = frame.image` alive while it takes the next frame. So the arrays handed out point into
//! a mapping of our own of the same shared-memory pages (same physical memory: no copy),
//! read-only. When the frame is released:
//!
//! - no array of it is exported any more: the alias is kept for the next frame that lands in
//!   the same slot (its pages stay mapped, so reading that frame costs no page faults);
//! - an array is still alive: the alias is first replaced, in place and atomically
//!   (`mremap`), by a private copy of the same bytes, so the array keeps showing its own frame
//!   for as long as it lives; only then is the sample released.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Free shared aliases kept for reuse (address space only: the pages are capture's).
const CACHE: usize = 64;

/// Which slot an alias covers: (inode of the segment file, page-aligned file offset, length).
type Key = (u64, u64, usize);

/// One file mapping of iceoryx2's, from /proc/self/maps.
#[derive(Debug, Clone)]
struct Range {
    start: usize,
    end: usize,
    offset: u64,
    path: String,
    inode: u64,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// Our own read-only mapping of the pages of one sample: a shared alias, then, if an array
/// outlives its frame, a private copy in place. Unmapped when the last owner drops it.
#[derive(Debug)]
pub struct Mapping {
    address: usize,
    length: usize,
    key: Key,
    /// Buffers exported to numpy and not yet released.
    exports: AtomicUsize,
    /// Raised each time the alias is handed to a newer frame: a buffer object of an older one
    /// refuses to export it again.
    generation: AtomicU64,
}

impl Mapping {
    fn map(fd: &File, key: Key, base: u64, length: usize) -> io::Result<Mapping> {
        // SAFETY: a new read-only shared mapping of an open file at a page-aligned offset; the
        // kernel picks the address, nothing else is touched.
        let address = unsafe {
            libc::mmap(std::ptr::null_mut(), length, libc::PROT_READ, libc::MAP_SHARED, fd.as_raw_fd(), base as i64)
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            address: address as usize,
            length,
            key,
            exports: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
        })
    }

    /// First byte of the mapping.
    pub fn address(&self) -> usize {
        self.address
    }

    /// The current generation (see [`Mapping::generation`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A buffer over the mapping was exported.
    pub fn exported(&self) {
        self.exports.fetch_add(1, Ordering::AcqRel);
    }

    /// A buffer over the mapping was released.
    pub fn released(&self) {
        self.exports.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether an exported buffer (a numpy array) still uses the mapping.
    pub fn in_use(&self) -> bool {
        self.exports.load(Ordering::Acquire) > 0
    }

    /// Replaces the mapping in place, atomically (arrays over it may be read by other threads
    /// meanwhile), by a private copy of its bytes. Must run before the sample is released.
    pub fn privatize(&self) -> io::Result<()> {
        // SAFETY: a new private anonymous mapping; the kernel picks the address.
        let copy = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                self.length,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if copy == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both ranges are `length` bytes of live mappings of ours (the alias is
        // readable, the copy writable) and they do not overlap (distinct mappings).
        unsafe { std::ptr::copy_nonoverlapping(self.address as *const u8, copy as *mut u8, self.length) };
        // No mprotect to read-only (it costs a third of the copy at 1080p): the buffers we
        // export are read-only, numpy refuses writes to them.
        // SAFETY: moves our private copy over our own alias, same length: the old pages are
        // unmapped and the copy takes their place in one step.
        let moved = unsafe {
            libc::mremap(
                copy,
                self.length,
                self.length,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                self.address as *mut libc::c_void,
            )
        };
        if moved as usize != self.address {
            let error = io::Error::last_os_error();
            // SAFETY: the copy is still ours and unused.
            unsafe { libc::munmap(copy, self.length) };
            return Err(error);
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers to it any more (its last owner is
        // going).
        unsafe { libc::munmap(self.address as *mut libc::c_void, self.length) };
    }
}

/// Which file backs an address of iceoryx2's mappings (from /proc/self/maps), an open
/// read-only descriptor per file, and the free aliases of a reader, reused frame to frame.
///
/// The table is re-read whenever the capture run changes: a restarted capture has a new data
/// segment, which iceoryx2 may map at the very address range of the old one (a stale table
/// would map the dead capture's file: old frames).
#[derive(Debug, Default)]
pub struct Segments {
    ranges: Vec<Range>,
    files: HashMap<u64, File>,
    run: Option<u64>,
    cache: HashMap<Key, Arc<Mapping>>,
}

impl Segments {
    /// A read-only alias covering `length` bytes at `address` of iceoryx2's mapping (reused
    /// when one of the same slot is free), and the offset of `address` in it.
    pub fn alias(&mut self, address: usize, length: usize, run: u64) -> io::Result<(Arc<Mapping>, usize)> {
        if self.run != Some(run) {
            self.reload()?;
            self.run = Some(run);
        }
        let found = match self.find(address, length) {
            Some(found) => found,
            None => {
                self.reload()?;
                self.find(address, length).ok_or_else(|| {
                    io::Error::other(format!("no shared-memory file mapping holds address {address:#x}"))
                })?
            }
        };
        let file_offset = found.offset + (address - found.start) as u64;
        let page = page_size();
        let base = file_offset - file_offset % page;
        let delta = (file_offset - base) as usize;
        let key = (found.inode, base, delta + length);
        if let Some(mapping) = self.cache.remove(&key) {
            return Ok((mapping, delta));
        }
        if let Entry::Vacant(slot) = self.files.entry(found.inode) {
            let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC).open(&found.path)?;
            if file.metadata()?.ino() != found.inode {
                return Err(io::Error::other(format!("{} was replaced while mapped", found.path)));
            }
            slot.insert(file);
        }
        let file = self.files.get(&found.inode).ok_or_else(|| io::Error::other("segment file vanished"))?;
        Ok((Arc::new(Mapping::map(file, key, base, delta + length)?), delta))
    }

    /// Takes back an alias no array uses any more, for the next frame of its slot.
    pub fn put_back(&mut self, mapping: Arc<Mapping>) {
        mapping.generation.fetch_add(1, Ordering::AcqRel);
        let mapped = self.ranges.iter().any(|r| r.inode == mapping.key.0);
        if mapped && self.cache.len() < CACHE {
            self.cache.insert(mapping.key, mapping);
        }
    }

    fn find(&self, address: usize, length: usize) -> Option<Range> {
        self.ranges.iter().find(|r| r.start <= address && address + length <= r.end).cloned()
    }

    fn reload(&mut self) -> io::Result<()> {
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        self.ranges = maps.lines().filter_map(parse_maps_line).collect();
        // Segments no longer mapped by iceoryx2 (capture restarted): forget their aliases and files.
        let live: Vec<u64> = self.ranges.iter().map(|r| r.inode).collect();
        self.cache.retain(|key, _| live.contains(&key.0));
        self.files.retain(|inode, _| live.contains(inode));
        Ok(())
    }
}

/// A /proc/self/maps line of a file in /dev/shm: `start-end perms offset dev inode path`.
fn parse_maps_line(line: &str) -> Option<Range> {
    let mut parts = line.splitn(6, ' ');
    let range = parts.next()?;
    let _perms = parts.next()?;
    let offset = u64::from_str_radix(parts.next()?, 16).ok()?;
    let _dev = parts.next()?;
    let inode: u64 = parts.next()?.parse().ok()?;
    let path = parts.next()?.trim_start();
    if !path.starts_with("/dev/shm/") || path.ends_with(" (deleted)") {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    Some(Range {
        start: usize::from_str_radix(start, 16).ok()?,
        end: usize::from_str_radix(end, 16).ok()?,
        offset,
        path: path.to_string(),
        inode,
    })
}
