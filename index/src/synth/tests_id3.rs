//! ID3v2.4 synthesis against real MP3s (tests follow).
