//! Helpers shared by the control crate's integration tests.
use std::path::Path;

/// A short, valid 16-bit mono PCM WAV with a LIST/INFO title, written by hand.
pub fn write_wav(path: &Path, title: &str) {
    let samples: Vec<u8> = (0..8000u32)
        .flat_map(|i| (((i % 40) as i16 - 20) * 500).to_le_bytes())
        .collect();
    let mut info = Vec::new();
    let mut text = title.as_bytes().to_vec();
    text.push(0);
    if text.len() % 2 == 1 {
        text.push(0);
    }
    info.extend_from_slice(b"INFO");
    info.extend_from_slice(b"INAM");
    info.extend_from_slice(&(text.len() as u32).to_le_bytes());
    info.extend_from_slice(&text);
    let mut body = Vec::new();
    body.extend_from_slice(b"WAVE");
    body.extend_from_slice(b"fmt ");
    body.extend_from_slice(&16u32.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes()); // PCM
    body.extend_from_slice(&1u16.to_le_bytes()); // mono
    body.extend_from_slice(&8000u32.to_le_bytes());
    body.extend_from_slice(&16000u32.to_le_bytes());
    body.extend_from_slice(&2u16.to_le_bytes());
    body.extend_from_slice(&16u16.to_le_bytes());
    body.extend_from_slice(b"LIST");
    body.extend_from_slice(&(info.len() as u32).to_le_bytes());
    body.extend_from_slice(&info);
    body.extend_from_slice(b"data");
    body.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    body.extend_from_slice(&samples);
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend_from_slice(&body);
    std::fs::write(path, file).expect("write wav");
}
