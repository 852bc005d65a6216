//! Everything `unsafe` of the library: the exported overrides, the real libc functions they
//! fall back to, and safe wrappers around the socket calls the hooks make.
//!
//! Each exported function reads its pointer arguments under the same contract as the libc
//! function it replaces (the caller promises that), turns them into safe values, asks
//! [`crate::hooks`] what to do, and either calls the real function with the original
//! arguments or returns the hook's result with `errno` set.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr};
use std::mem::{size_of, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::OnceLock;
use std::time::Duration;

use libc::{sockaddr, sockaddr_in, sockaddr_in6, socklen_t, ssize_t};

use crate::hooks::{self, Outcome};

type ConnectFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
type BindFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
type GetsocknameFn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
type SendtoFn =
    unsafe extern "C" fn(c_int, *const c_void, usize, c_int, *const sockaddr, socklen_t) -> ssize_t;

/// The next definitions of the overridden functions (libc's).
struct Real {
    connect: ConnectFn,
    bind: BindFn,
    getsockname: GetsocknameFn,
    sendto: SendtoFn,
}

static REAL: OnceLock<Option<Real>> = OnceLock::new();

fn lookup(name: &CStr) -> *mut c_void {
    // SAFETY: `name` is a NUL-terminated string; RTLD_NEXT asks for the next definition
    // after this library in the lookup order, which is libc's.
    unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
}

fn real() -> Option<&'static Real> {
    REAL.get_or_init(|| {
        let (c, b, g, s) = (
            lookup(c"connect"),
            lookup(c"bind"),
            lookup(c"getsockname"),
            lookup(c"sendto"),
        );
        if c.is_null() || b.is_null() || g.is_null() || s.is_null() {
            return None;
        }
        // SAFETY: each pointer is libc's definition of the function of that name, whose C
        // signature is exactly the one transmuted to.
        unsafe {
            Some(Real {
                connect: std::mem::transmute::<*mut c_void, ConnectFn>(c),
                bind: std::mem::transmute::<*mut c_void, BindFn>(b),
                getsockname: std::mem::transmute::<*mut c_void, GetsocknameFn>(g),
                sendto: std::mem::transmute::<*mut c_void, SendtoFn>(s),
            })
        }
    })
    .as_ref()
}

fn set_errno(errno: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot, always valid to write.
    unsafe { *libc::__errno_location() = errno }
}

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Runs when the library is loaded (ELF constructor).
extern "C" fn on_load() {
    hooks::init();
}

#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;

/// Reads an IPv4 or IPv6 socket address.
///
/// # Safety
/// `addr` is null or points to `len` readable bytes.
unsafe fn read_addr(addr: *const sockaddr, len: socklen_t) -> Option<SocketAddr> {
    if addr.is_null() || (len as usize) < size_of::<libc::sa_family_t>() {
        return None;
    }
    // SAFETY: at least the family field is readable (checked above); unaligned reads
    // because callers may pass any byte buffer.
    let family = unsafe { std::ptr::read_unaligned(addr.cast::<libc::sa_family_t>()) };
    match c_int::from(family) {
        libc::AF_INET if len as usize >= size_of::<sockaddr_in>() => {
            // SAFETY: `len` covers a whole sockaddr_in.
            let sin = unsafe { std::ptr::read_unaligned(addr.cast::<sockaddr_in>()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<sockaddr_in6>() => {
            // SAFETY: `len` covers a whole sockaddr_in6.
            let sin6 = unsafe { std::ptr::read_unaligned(addr.cast::<sockaddr_in6>()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// An owned C socket address for `addr`.
enum RawAddr {
    V4(sockaddr_in),
    V6(sockaddr_in6),
}

impl RawAddr {
    fn new(addr: SocketAddr) -> RawAddr {
        match addr {
            SocketAddr::V4(v4) => {
                // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
                let mut sin: sockaddr_in = unsafe { MaybeUninit::zeroed().assume_init() };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = v4.port().to_be();
                sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
                RawAddr::V4(sin)
            }
            SocketAddr::V6(v6) => {
                // SAFETY: sockaddr_in6 is plain data; all-zero is a valid value.
                let mut sin6: sockaddr_in6 = unsafe { MaybeUninit::zeroed().assume_init() };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = v6.port().to_be();
                sin6.sin6_addr.s6_addr = v6.ip().octets();
                sin6.sin6_flowinfo = v6.flowinfo();
                sin6.sin6_scope_id = v6.scope_id();
                RawAddr::V6(sin6)
            }
        }
    }

    fn as_ptr(&self) -> (*const sockaddr, socklen_t) {
        match self {
            RawAddr::V4(sin) => (
                (sin as *const sockaddr_in).cast(),
                size_of::<sockaddr_in>() as socklen_t,
            ),
            RawAddr::V6(sin6) => (
                (sin6 as *const sockaddr_in6).cast(),
                size_of::<sockaddr_in6>() as socklen_t,
            ),
        }
    }
}

/// # Safety
/// Same contract as connect(2): `addr` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some(real) = real() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: the caller's connect(2) contract.
    let outcome = match unsafe { read_addr(addr, len) } {
        Some(dst) => hooks::on_connect(fd, dst),
        None => Outcome::PassThrough,
    };
    match outcome {
        // SAFETY: the caller's arguments, unchanged, to libc's connect.
        Outcome::PassThrough => unsafe { (real.connect)(fd, addr, len) },
        Outcome::Done(Ok(())) => 0,
        Outcome::Done(Err(errno)) => {
            set_errno(errno);
            -1
        }
    }
}

/// # Safety
/// Same contract as bind(2).
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some(real) = real() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    // SAFETY: the caller's bind(2) contract.
    let replaced = unsafe { read_addr(addr, len) }.and_then(hooks::on_bind);
    match replaced {
        Some(new) => {
            let raw = RawAddr::new(new);
            let (ptr, raw_len) = raw.as_ptr();
            // SAFETY: `ptr` points to `raw`, alive for the call, of `raw_len` bytes.
            unsafe { (real.bind)(fd, ptr, raw_len) }
        }
        // SAFETY: the caller's arguments, unchanged, to libc's bind.
        None => unsafe { (real.bind)(fd, addr, len) },
    }
}

/// # Safety
/// Same contract as getsockname(2): `addr` points to `*len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let Some(real) = real() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    let capacity = if len.is_null() {
        0
    } else {
        // SAFETY: the caller's getsockname(2) contract: a non-null `len` is readable.
        unsafe { *len }
    };
    // SAFETY: the caller's arguments, unchanged, to libc's getsockname.
    let ret = unsafe { (real.getsockname)(fd, addr, len) };
    if ret != 0 || addr.is_null() || len.is_null() {
        return ret;
    }
    // The kernel wrote min(capacity, full length) bytes and set `*len` to the full length.
    // SAFETY: `len` is readable (checked non-null above).
    let written = unsafe { *len }.min(capacity);
    // SAFETY: `addr` holds `written` initialised bytes; read_addr refuses lengths shorter
    // than the whole structure.
    let Some(current) = (unsafe { read_addr(addr, written) }) else {
        return ret;
    };
    if let Some(origin) = hooks::on_getsockname(current) {
        let port = origin.to_be();
        // The port field sits at the same offset in sockaddr_in and sockaddr_in6.
        let offset = std::mem::offset_of!(sockaddr_in, sin_port);
        // SAFETY: read_addr succeeded, so the buffer holds a whole sockaddr_in(6), which
        // contains the 2-byte port at `offset`.
        unsafe {
            std::ptr::write_unaligned(addr.cast::<u8>().add(offset).cast::<u16>(), port);
        }
    }
    ret
}

/// # Safety
/// Same contract as sendto(2).
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: usize,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    let Some(real) = real() else {
        set_errno(libc::ENOSYS);
        return -1;
    };
    if flags & libc::MSG_FASTOPEN == 0 || addr.is_null() {
        // SAFETY: the caller's arguments, unchanged, to libc's sendto.
        return unsafe { (real.sendto)(fd, buf, n, flags, addr, len) };
    }
    // SAFETY: the caller's sendto(2) contract.
    let outcome = match unsafe { read_addr(addr, len) } {
        Some(dst) => hooks::on_connect(fd, dst),
        None => Outcome::PassThrough,
    };
    match outcome {
        // SAFETY: the caller's arguments, unchanged, to libc's sendto.
        Outcome::PassThrough => unsafe { (real.sendto)(fd, buf, n, flags, addr, len) },
        // Connected through the tunnel: a plain send of the data.
        // SAFETY: the caller's buffer, no address.
        Outcome::Done(Ok(())) => unsafe {
            (real.sendto)(fd, buf, n, flags & !libc::MSG_FASTOPEN, std::ptr::null(), 0)
        },
        Outcome::Done(Err(errno)) => {
            set_errno(errno);
            -1
        }
    }
}

/// libc's connect, for the hooks' own connection to the engine.
pub fn real_connect(fd: c_int, addr: SocketAddr) -> Result<(), c_int> {
    let real = real().ok_or(libc::ENOSYS)?;
    let raw = RawAddr::new(addr);
    let (ptr, len) = raw.as_ptr();
    loop {
        // SAFETY: `ptr` points to `raw`, alive for the call, of `len` bytes.
        if unsafe { (real.connect)(fd, ptr, len) } == 0 {
            return Ok(());
        }
        match errno() {
            libc::EINTR => continue,
            e => return Err(e),
        }
    }
}

pub fn socket_type(fd: c_int) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: `value` and `len` are valid for writes of the sizes given.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut value as *mut c_int).cast(),
            &mut len,
        )
    };
    (ret == 0).then_some(value)
}

pub fn get_flags(fd: c_int) -> Result<c_int, c_int> {
    // SAFETY: F_GETFL takes no argument and touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        Err(errno())
    } else {
        Ok(flags)
    }
}

pub fn set_flags(fd: c_int, flags: c_int) -> Result<(), c_int> {
    // SAFETY: F_SETFL takes an int argument and touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

pub fn get_rcvtimeo(fd: c_int) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    let mut len = size_of::<libc::timeval>() as socklen_t;
    // SAFETY: `tv` and `len` are valid for writes of the sizes given.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&mut tv as *mut libc::timeval).cast(),
            &mut len,
        )
    };
    (ret == 0).then(|| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    })
}

pub fn set_rcvtimeo(fd: c_int, timeout: Duration) -> Result<(), c_int> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: `tv` is a valid timeval for reads of its size.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

pub fn send_all(fd: c_int, mut data: &[u8]) -> Result<(), c_int> {
    while !data.is_empty() {
        // SAFETY: `data` is valid for reads of its length.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            match errno() {
                libc::EINTR => continue,
                e => return Err(e),
            }
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// One byte, `None` at end of stream.
pub fn recv_byte(fd: c_int) -> Result<Option<u8>, c_int> {
    let mut byte = 0u8;
    loop {
        // SAFETY: `byte` is valid for a write of one byte.
        let n = unsafe { libc::recv(fd, (&mut byte as *mut u8).cast(), 1, 0) };
        match n {
            1 => return Ok(Some(byte)),
            0 => return Ok(None),
            _ => match errno() {
                libc::EINTR => continue,
                e => return Err(e),
            },
        }
    }
}

/// The IPv4 addresses of the local interfaces (empty when they cannot be listed).
pub fn local_ipv4s() -> Vec<Ipv4Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is valid for a write of one pointer.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not freed yet.
        let node = unsafe { &*cur };
        let addr = node.ifa_addr;
        // SAFETY: a non-null ifa_addr points to a sockaddr whose family says its type.
        if !addr.is_null() && c_int::from(unsafe { (*addr).sa_family }) == libc::AF_INET {
            // SAFETY: an AF_INET ifa_addr is a whole sockaddr_in.
            let sin = unsafe { std::ptr::read_unaligned(addr.cast::<sockaddr_in>()) };
            out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
        }
        cur = node.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}
