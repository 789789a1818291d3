//! Extended attributes that tell an admin where a virtual file comes from:
//! `user.musicfs.origin` (the origin's name) and `user.musicfs.path` (the
//! path relative to the origin root). Directories carry none.

pub(crate) const ORIGIN: &[u8] = b"user.musicfs.origin";
pub(crate) const PATH: &[u8] = b"user.musicfs.path";

/// The NUL-terminated name list `listxattr` returns for a file.
pub(crate) fn file_names() -> Vec<u8> {
    let mut list = Vec::with_capacity(ORIGIN.len() + PATH.len() + 2);
    for name in [ORIGIN, PATH] {
        list.extend_from_slice(name);
        list.push(0);
    }
    list
}

/// How to answer a getxattr/listxattr request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The caller probed with size 0: tell it how big the value is.
    Size(u32),
    Data(Vec<u8>),
    Errno(i32),
}

/// Applies the size protocol: size 0 asks for the length, a buffer too
/// small gets ERANGE, a missing attribute ENODATA.
pub(crate) fn answer(value: Option<Vec<u8>>, size: u32) -> Answer {
    let Some(value) = value else {
        return Answer::Errno(libc::ENODATA);
    };
    let Ok(len) = u32::try_from(value.len()) else {
        return Answer::Errno(libc::E2BIG);
    };
    if size == 0 {
        Answer::Size(len)
    } else if len > size {
        Answer::Errno(libc::ERANGE)
    } else {
        Answer::Data(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_protocol() {
        assert_eq!(answer(None, 0), Answer::Errno(libc::ENODATA));
        assert_eq!(answer(Some(b"abc".to_vec()), 0), Answer::Size(3));
        assert_eq!(
            answer(Some(b"abc".to_vec()), 2),
            Answer::Errno(libc::ERANGE)
        );
        assert_eq!(
            answer(Some(b"abc".to_vec()), 3),
            Answer::Data(b"abc".to_vec())
        );
        assert_eq!(answer(Some(Vec::new()), 0), Answer::Size(0));
    }

    #[test]
    fn name_list_is_nul_terminated() {
        assert_eq!(
            file_names(),
            b"user.musicfs.origin\0user.musicfs.path\0".to_vec()
        );
    }
}
