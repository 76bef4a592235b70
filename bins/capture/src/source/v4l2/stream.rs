//! Streaming I/O: the driver's buffers, single- or multi-planar, in one of two memories.
//!
//! - **mmap**: the driver allocates the buffers, capture maps them and copies (or converts)
//!   each frame once into a loaned shared-memory sample.
//! - **USERPTR**: the buffers *are* loaned shared-memory samples. The driver writes each frame
//!   straight into one; capture fills in the header and publishes it without touching a pixel,
//!   then queues a freshly loaned sample in its place.
//!
//! A loan queued at the driver is never dropped (returned to the publisher's pool) while the
//! driver may still write to it: [`Session`]'s drop stops streaming, frees the driver's buffers
//! and closes the device before the loans go.

use std::io;

use super::device::{sys, vidioc, Device, BUF_TYPE_CAPTURE_MPLANE, MAX_PLANES, MEMORY_MMAP, MEMORY_USERPTR};
use crate::source::Loan;

/// Which memory the driver's buffers live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// Driver buffers mapped into capture; one copy per frame into shared memory.
    Mmap,
    /// Loaned shared-memory samples queued as the driver's buffers; no copy.
    Userptr,
}

impl Memory {
    /// `mmap` or `userptr`, as in the config and the summary.
    pub fn name(self) -> &'static str {
        match self {
            Memory::Mmap => "mmap",
            Memory::Userptr => "userptr",
        }
    }

    fn code(self) -> u32 {
        match self {
            Memory::Mmap => MEMORY_MMAP,
            Memory::Userptr => MEMORY_USERPTR,
        }
    }
}

/// One memory plane of a driver buffer mapped into capture (mmap only).
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` come from a successful mmap and are unmapped once, here.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One driver buffer.
struct Slot {
    /// mmap: every memory plane, mapped.
    maps: Vec<Mapping>,
    /// USERPTR: the sample queued as this buffer (None while capture holds it or before the
    /// first queue).
    loan: Option<Loan>,
}

/// A dequeued buffer: which one, and what the driver says about its content.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dequeued {
    /// Buffer index.
    pub index: usize,
    /// The driver's frame counter.
    pub sequence: u32,
    /// `V4L2_BUF_FLAG_*`.
    pub flags: u32,
    /// Buffer timestamp (seconds, microseconds).
    pub timestamp: (i64, i64),
    /// Bytes the driver wrote in each memory plane (including `data_offset`).
    pub bytes_used: [u32; MAX_PLANES],
    /// Where the data starts in each memory plane.
    pub data_offset: [u32; MAX_PLANES],
}

/// Where each memory plane of a USERPTR buffer lies inside a loaned sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoanSplit {
    /// (offset, length) in the sample of each memory plane.
    pub planes: [(usize, usize); MAX_PLANES],
}

/// The driver's buffers and their state.
pub struct Stream {
    buf_type: u32,
    memory: Memory,
    planes: usize,
    split: LoanSplit,
    slots: Vec<Slot>,
    streaming: bool,
}

fn zeroed_buffer(buf_type: u32, memory: Memory, index: usize) -> sys::v4l2_buffer {
    // SAFETY: plain old data; all-zero is a valid value.
    let mut buf: sys::v4l2_buffer = unsafe { core::mem::zeroed() };
    buf.type_ = buf_type;
    buf.memory = memory.code();
    buf.index = index as u32;
    buf
}

impl Stream {
    /// REQBUFS `count` buffers of `memory` (the driver may grant fewer, at least 2); for mmap also
    /// maps every plane of every buffer. `split` places USERPTR planes in a sample.
    pub fn request(
        device: &Device,
        buf_type: u32,
        memory: Memory,
        planes: usize,
        count: u32,
        split: LoanSplit,
    ) -> io::Result<Stream> {
        // SAFETY: plain old data; all-zero is a valid value.
        let mut req: sys::v4l2_requestbuffers = unsafe { core::mem::zeroed() };
        req.count = count;
        req.type_ = buf_type;
        req.memory = memory.code();
        // SAFETY: the argument type matches the request.
        unsafe { device.ioctl(vidioc::VIDIOC_REQBUFS, &mut req) }?;
        let mut stream = Stream {
            buf_type,
            memory,
            planes: planes.clamp(1, MAX_PLANES),
            split,
            slots: Vec::new(),
            streaming: false,
        };
        if req.count < 2 {
            stream.release(device);
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("the driver granted {} buffers, capture needs at least 2", req.count),
            ));
        }
        for index in 0..req.count as usize {
            let maps = if memory == Memory::Mmap { stream.map(device, index)? } else { Vec::new() };
            stream.slots.push(Slot { maps, loan: None });
        }
        Ok(stream)
    }

    /// QUERYBUF + mmap of every plane of buffer `index`.
    fn map(&self, device: &Device, index: usize) -> io::Result<Vec<Mapping>> {
        let mut buf = zeroed_buffer(self.buf_type, self.memory, index);
        // SAFETY: plain old data; all-zero is a valid value.
        let mut planes: [sys::v4l2_plane; MAX_PLANES] = unsafe { core::mem::zeroed() };
        if self.buf_type == BUF_TYPE_CAPTURE_MPLANE {
            buf.m.planes = planes.as_mut_ptr();
            buf.length = self.planes as u32;
        }
        // SAFETY: the argument type matches the request; `planes` outlives the call and has
        // room for `buf.length` entries.
        unsafe { device.ioctl(vidioc::VIDIOC_QUERYBUF, &mut buf) }?;
        let mut maps = Vec::with_capacity(self.planes);
        for plane in &planes[..self.planes] {
            let (offset, len) = if self.buf_type == BUF_TYPE_CAPTURE_MPLANE {
                // SAFETY: for mmap buffers the driver filled `mem_offset`.
                (unsafe { plane.m.mem_offset }, plane.length as usize)
            } else {
                // SAFETY: for mmap buffers the driver filled `offset`.
                (unsafe { buf.m.offset }, buf.length as usize)
            };
            // SAFETY: maps a region the driver offers at `offset`; checked for failure below.
            let ptr = unsafe {
                libc::mmap(
                    core::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    device.fd(),
                    libc::off_t::from(offset),
                )
            };
            if ptr == libc::MAP_FAILED || len == 0 {
                return Err(io::Error::last_os_error());
            }
            maps.push(Mapping { ptr: ptr.cast(), len });
        }
        Ok(maps)
    }

    pub fn memory(&self) -> Memory {
        self.memory
    }

    /// Buffers the driver granted.
    pub fn count(&self) -> usize {
        self.slots.len()
    }

    /// USERPTR buffers that have no sample yet (each needs a [`Stream::queue_loan`]).
    pub fn missing_loans(&self) -> usize {
        if self.memory == Memory::Userptr {
            self.slots.iter().filter(|s| s.loan.is_none()).count()
        } else {
            0
        }
    }

    /// Whether STREAMON was issued.
    pub fn streaming(&self) -> bool {
        self.streaming
    }

    /// QBUF of mmap buffer `index`.
    pub fn queue(&mut self, device: &Device, index: usize) -> io::Result<()> {
        let mut buf = zeroed_buffer(self.buf_type, self.memory, index);
        // SAFETY: plain old data; all-zero is a valid value.
        let mut planes: [sys::v4l2_plane; MAX_PLANES] = unsafe { core::mem::zeroed() };
        if self.buf_type == BUF_TYPE_CAPTURE_MPLANE {
            for (plane, map) in planes.iter_mut().zip(&self.slots[index].maps) {
                plane.length = map.len as u32;
            }
            buf.m.planes = planes.as_mut_ptr();
            buf.length = self.planes as u32;
        }
        // SAFETY: the argument type matches the request; `planes` outlives the call.
        unsafe { device.ioctl(vidioc::VIDIOC_QBUF, &mut buf) }
    }

    /// QBUF of `loan` as the USERPTR buffer of the first slot without one. On failure the loan
    /// is dropped (returned to the publisher): the driver does not hold it.
    pub fn queue_loan(&mut self, device: &Device, mut loan: Loan) -> io::Result<()> {
        let Some(index) = self.slots.iter().position(|s| s.loan.is_none()) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "every buffer already has a sample"));
        };
        let payload = loan.payload_mut();
        let base = payload.as_mut_ptr() as usize;
        let total = payload.len();
        let mut buf = zeroed_buffer(self.buf_type, self.memory, index);
        // SAFETY: plain old data; all-zero is a valid value.
        let mut planes: [sys::v4l2_plane; MAX_PLANES] = unsafe { core::mem::zeroed() };
        if self.buf_type == BUF_TYPE_CAPTURE_MPLANE {
            for (plane, &(offset, len)) in planes.iter_mut().zip(&self.split.planes[..self.planes]) {
                if offset + len > total {
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, "plane does not fit in the sample"));
                }
                plane.m.userptr = (base + offset) as libc::c_ulong;
                plane.length = len as u32;
            }
            buf.m.planes = planes.as_mut_ptr();
            buf.length = self.planes as u32;
        } else {
            buf.m.userptr = base as libc::c_ulong;
            buf.length = total as u32;
        }
        // SAFETY: the argument type matches the request; `planes` outlives the call. The
        // memory handed to the driver is the loan's payload, which stays loaned (in
        // `slots[index]`) until the driver gives the buffer back or the device is closed.
        unsafe { device.ioctl(vidioc::VIDIOC_QBUF, &mut buf) }?;
        self.slots[index].loan = Some(loan);
        Ok(())
    }

    /// STREAMON.
    pub fn start(&mut self, device: &Device) -> io::Result<()> {
        let mut buf_type = self.buf_type as i32;
        // SAFETY: STREAMON takes a pointer to the buffer type.
        unsafe { device.ioctl(vidioc::VIDIOC_STREAMON, &mut buf_type) }?;
        self.streaming = true;
        Ok(())
    }

    /// DQBUF of the next filled buffer (the caller polled first: the fd is non-blocking).
    pub fn dequeue(&mut self, device: &Device) -> io::Result<Dequeued> {
        let mut buf = zeroed_buffer(self.buf_type, self.memory, 0);
        // SAFETY: plain old data; all-zero is a valid value.
        let mut planes: [sys::v4l2_plane; MAX_PLANES] = unsafe { core::mem::zeroed() };
        let multi = self.buf_type == BUF_TYPE_CAPTURE_MPLANE;
        if multi {
            buf.m.planes = planes.as_mut_ptr();
            buf.length = self.planes as u32;
        }
        // SAFETY: the argument type matches the request; `planes` outlives the call.
        unsafe { device.ioctl(vidioc::VIDIOC_DQBUF, &mut buf) }?;
        let index = buf.index as usize;
        if index >= self.slots.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("the driver returned buffer {index}")));
        }
        let mut out = Dequeued {
            index,
            sequence: buf.sequence,
            flags: buf.flags,
            timestamp: (buf.timestamp.tv_sec, buf.timestamp.tv_usec),
            ..Dequeued::default()
        };
        if multi {
            for (i, plane) in planes[..self.planes].iter().enumerate() {
                out.bytes_used[i] = plane.bytesused;
                out.data_offset[i] = plane.data_offset;
            }
        } else {
            out.bytes_used[0] = buf.bytesused;
        }
        Ok(out)
    }

    /// Memory plane `plane` of mmap buffer `index`, whole.
    pub fn mapped(&self, index: usize, plane: usize) -> &[u8] {
        match self.slots.get(index).and_then(|s| s.maps.get(plane)) {
            // SAFETY: the mapping is alive as long as `self`, and `len` bytes long.
            Some(map) => unsafe { core::slice::from_raw_parts(map.ptr, map.len) },
            None => &[],
        }
    }

    /// Takes the sample of USERPTR buffer `index` back from the stream (after DQBUF).
    pub fn take_loan(&mut self, index: usize) -> Option<Loan> {
        self.slots.get_mut(index).and_then(|s| s.loan.take())
    }

    /// Where USERPTR planes lie in a sample.
    pub fn split(&self) -> LoanSplit {
        self.split
    }

    /// Frees the driver's buffers of a stream that never held a sample (REQBUFS 0).
    pub fn free(mut self, device: &Device) {
        let loans = self.release(device);
        debug_assert!(loans.is_empty());
    }

    /// STREAMOFF, unmap, REQBUFS 0; errors are ignored (the device may be gone). Returns the
    /// samples that were queued: the caller drops them only after closing the device.
    fn release(&mut self, device: &Device) -> Vec<Loan> {
        if self.streaming {
            let mut buf_type = self.buf_type as i32;
            // SAFETY: STREAMOFF takes a pointer to the buffer type.
            let _ = unsafe { device.ioctl(vidioc::VIDIOC_STREAMOFF, &mut buf_type) };
            self.streaming = false;
        }
        let loans = self.slots.iter_mut().filter_map(|s| s.loan.take()).collect();
        self.slots.clear(); // unmaps
                            // SAFETY: plain old data; all-zero is a valid value.
        let mut req: sys::v4l2_requestbuffers = unsafe { core::mem::zeroed() };
        req.type_ = self.buf_type;
        req.memory = self.memory.code();
        // SAFETY: the argument type matches the request.
        let _ = unsafe { device.ioctl(vidioc::VIDIOC_REQBUFS, &mut req) };
        loans
    }
}

/// An open, configured device with its buffers.
pub struct Session {
    // Field order is drop order: the stream is already released in `drop`, then the device
    // closes, and only then do the samples the driver held go back to the publisher.
    pub stream: Stream,
    pub device: Device,
    retired: Vec<Loan>,
}

impl Session {
    pub fn new(stream: Stream, device: Device) -> Session {
        Session { stream, device, retired: Vec::new() }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.retired = self.stream.release(&self.device);
    }
}
