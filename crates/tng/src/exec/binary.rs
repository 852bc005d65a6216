//! Will the preloaded library see the command's connections? Only when the program calls
//! `connect` / `bind` through the dynamic C library. A statically linked program, or a Go
//! program (Go makes its socket system calls itself), would run with no protection at all,
//! so such commands are refused before anything starts.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The file `command` runs, as `execvp` would find it.
pub fn resolve(command: &OsStr) -> Result<PathBuf, String> {
    let name = Path::new(command);
    if command.as_bytes().contains(&b'/') {
        return if name.is_file() {
            Ok(name.to_path_buf())
        } else {
            Err(format!("{}: no such file", name.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Ok(candidate);
            }
        }
    }
    Err(format!("{}: command not found in PATH", name.display()))
}

/// Checks the program at `path` (following `#!` interpreters) can be hooked; the error says
/// why not.
pub fn check_hookable(path: &Path) -> Result<(), String> {
    check_depth(path, 0)
}

fn check_depth(path: &Path, depth: usize) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if let Some(rest) = data.strip_prefix(b"#!") {
        if depth >= 4 {
            return Err(format!(
                "{}: too many levels of #! interpreters",
                path.display()
            ));
        }
        let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let Some(interpreter) = words.next() else {
            return Ok(());
        };
        check_depth(Path::new(interpreter), depth + 1)?;
        if Path::new(interpreter).file_name() == Some(OsStr::new("env")) {
            if let Some(program) = words.find(|w| !w.starts_with('-') && !w.contains('=')) {
                let program = resolve(OsStr::new(program))?;
                check_depth(&program, depth + 1)?;
            }
        }
        return Ok(());
    }
    match inspect(&data) {
        // Not an ELF file we understand: the kernel or a shell decides how it runs.
        None => Ok(()),
        Some(elf) => {
            let why = if elf.go {
                Some("it is a Go program, and Go makes its network system calls directly instead of through the C library")
            } else if !elf.interpreter {
                Some("it is statically linked (no program interpreter), so it makes its system calls without the dynamic C library")
            } else if !elf.links_libc {
                Some("it does not link the C library (no libc.so in its DT_NEEDED entries)")
            } else {
                None
            };
            match why {
                Some(why) => Err(format!(
                    "refusing to run {}: {why}; the hook library could not see its connections and they would bypass the tunnel",
                    path.display()
                )),
                None => Ok(()),
            }
        }
    }
}

/// What matters about an executable.
#[derive(Debug, PartialEq, Eq)]
struct ElfFacts {
    interpreter: bool,
    links_libc: bool,
    go: bool,
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
/// `NT_GO_BUILDID`, in a note named "Go".
const NT_GO_BUILDID: u32 = 4;

/// Reads a little-endian ELF file's program headers, dynamic section and section names.
fn inspect(data: &[u8]) -> Option<ElfFacts> {
    if data.get(..4)? != b"\x7fELF" || *data.get(5)? != 1 {
        return None;
    }
    let wide = match data.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let r = Reader { data, wide };
    let (phoff, phentsize, phnum) = if wide {
        (r.u64(0x20)?, r.u16(0x36)?, r.u16(0x38)?)
    } else {
        (r.u32(0x1c)? as u64, r.u16(0x2a)?, r.u16(0x2c)?)
    };
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (r.u64(0x28)?, r.u16(0x3a)?, r.u16(0x3c)?, r.u16(0x3e)?)
    } else {
        (
            r.u32(0x20)? as u64,
            r.u16(0x2e)?,
            r.u16(0x30)?,
            r.u16(0x32)?,
        )
    };
    let mut facts = ElfFacts {
        interpreter: false,
        links_libc: false,
        go: false,
    };
    let mut loads = Vec::new();
    let mut dynamic = None;
    for i in 0..u64::from(phnum) {
        let at = usize::try_from(phoff + i * u64::from(phentsize)).ok()?;
        let kind = r.u32(at)?;
        let (offset, vaddr, filesz) = if wide {
            (r.u64(at + 8)?, r.u64(at + 16)?, r.u64(at + 32)?)
        } else {
            (
                r.u32(at + 4)? as u64,
                r.u32(at + 8)? as u64,
                r.u32(at + 16)? as u64,
            )
        };
        match kind {
            PT_INTERP => facts.interpreter = true,
            PT_LOAD => loads.push((vaddr, offset, filesz)),
            PT_DYNAMIC => dynamic = Some((offset, filesz)),
            PT_NOTE => facts.go |= has_go_note(&r, offset, filesz),
            _ => {}
        }
    }
    if let Some((offset, size)) = dynamic {
        let entry = if wide { 16 } else { 8 };
        let mut needed = Vec::new();
        let mut strtab = None;
        for k in 0..size / entry {
            let at = usize::try_from(offset + k * entry).ok()?;
            let (tag, value) = if wide {
                (r.u64(at)?, r.u64(at + 8)?)
            } else {
                (r.u32(at)? as u64, r.u32(at + 4)? as u64)
            };
            match tag {
                0 => break,
                DT_NEEDED => needed.push(value),
                DT_STRTAB => strtab = Some(value),
                _ => {}
            }
        }
        let strtab = strtab.and_then(|addr| {
            loads
                .iter()
                .find(|(vaddr, _, filesz)| addr >= *vaddr && addr < vaddr + filesz)
                .map(|(vaddr, offset, _)| addr - vaddr + offset)
        });
        if let Some(strtab) = strtab {
            facts.links_libc = needed.iter().any(|name| {
                r.cstr(strtab + name)
                    .is_some_and(|n| n.starts_with(b"libc.so") || n.starts_with(b"libc.musl"))
            });
        }
    }
    // Section names, for Go binaries whose notes were stripped.
    if shnum > 0 && shstrndx < shnum {
        let header = |i: u64| usize::try_from(shoff + i * u64::from(shentsize)).ok();
        let names_at = header(u64::from(shstrndx))?;
        let names = if wide {
            r.u64(names_at + 0x18)?
        } else {
            r.u32(names_at + 0x10)? as u64
        };
        for i in 0..u64::from(shnum) {
            let Some(at) = header(i) else { break };
            let Some(name) = r.u32(at) else { break };
            if r.cstr(names + u64::from(name)) == Some(b".go.buildinfo".as_slice()) {
                facts.go = true;
            }
        }
    }
    Some(facts)
}

fn has_go_note(r: &Reader<'_>, offset: u64, size: u64) -> bool {
    let mut at = offset;
    let end = offset + size;
    while at + 12 <= end {
        let Ok(pos) = usize::try_from(at) else {
            return false;
        };
        let (Some(namesz), Some(descsz), Some(kind)) = (r.u32(pos), r.u32(pos + 4), r.u32(pos + 8))
        else {
            return false;
        };
        let name = r.data.get(pos + 12..pos + 12 + namesz as usize);
        if kind == NT_GO_BUILDID && name == Some(b"Go\0\0".as_slice()) {
            return true;
        }
        at += 12 + u64::from(namesz.next_multiple_of(4)) + u64::from(descsz.next_multiple_of(4));
    }
    false
}

struct Reader<'a> {
    data: &'a [u8],
    wide: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.data.get(at..at.checked_add(N)?)?.try_into().ok()
    }
    fn u16(&self, at: usize) -> Option<u16> {
        self.bytes(at).map(u16::from_le_bytes)
    }
    fn u32(&self, at: usize) -> Option<u32> {
        self.bytes(at).map(u32::from_le_bytes)
    }
    fn u64(&self, at: usize) -> Option<u64> {
        let _ = self.wide;
        self.bytes(at).map(u64::from_le_bytes)
    }
    fn cstr(&self, at: u64) -> Option<&[u8]> {
        let rest = self.data.get(usize::try_from(at).ok()?..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        Some(&rest[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_c_programs_are_hookable() {
        let sh = resolve(OsStr::new("sh")).unwrap();
        check_hookable(&sh).unwrap();
        let facts = inspect(&std::fs::read(&sh).unwrap()).unwrap();
        assert_eq!(
            facts,
            ElfFacts {
                interpreter: true,
                links_libc: true,
                go: false
            }
        );
    }

    #[test]
    fn garbage_is_not_an_elf() {
        assert_eq!(inspect(b"hello"), None);
        assert_eq!(inspect(b"\x7fELF\x02\x01"), None);
    }

    #[test]
    fn missing_commands_are_reported() {
        let err = resolve(OsStr::new("no-such-command-tng")).unwrap_err();
        assert_eq!(err, "no-such-command-tng: command not found in PATH");
    }
}
